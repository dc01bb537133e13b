// mailgate: the command line (DESIGN.md §4): the root command, its subcommands and exit-status mapping.
import ArgumentParser

/// The `mailgate` command.
@main
struct MailGate: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "mailgate",
        abstract: "A local gateway that lets password-only SMTP, IMAP and POP3 clients use Microsoft 365 (OAuth 2.0).",
        discussion: """
            Every command reads the configuration from --config (default: $MAILGATE_CONFIG, else \
            conf/mailgate.toml) and keeps its state in --state-dir (default: the configuration's state_dir).
            Exit status: 0 success, 1 a failed check or operation, 2 bad usage or bad configuration.
            """,
        version: version,
        subcommands: [
            Serve.self, AccountCommand.self, Stats.self, JournalCommand.self, Download.self, ConfigCommand.self,
        ])

    /// Parses, runs, and maps every failure to the documented exit status with one sentence on stderr.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            Exit.terminate(with: error)
        }
    }
}

/// `mailgate account …`
struct AccountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Add, connect, list, test and remove the accounts clients log in with.",
        subcommands: [
            AccountAdd.self, AccountConnect.self, AccountList.self, AccountTest.self, AccountPassword.self,
            AccountRemove.self,
        ])
}

/// `mailgate journal …`
struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Check and anchor the hash-chained journal of sent messages (lock after send).",
        subcommands: [JournalVerify.self, JournalCheckpointCommand.self, JournalExport.self])
}

/// `mailgate config …`
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check the configuration file.",
        subcommands: [ConfigCheck.self])
}
