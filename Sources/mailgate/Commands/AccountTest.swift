// mailgate: `account test`: check an account's token, SMTP AUTH and IMAP/POP3 login (the lead wires it here).
import ArgumentParser

struct AccountTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Check an account end to end: token, SMTP AUTH, IMAP (or POP3) login; one line each.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    func run() throws {
        _ = try global.openStore()
        throw CommandFailure.failed("account test: upstream checks are not wired into this build yet.")
    }
}
