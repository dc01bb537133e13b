// mailgate: `journal verify` and `journal checkpoint`: re-walk the sent journal, check it against checkpoints,
// time-stamps and the Sent folder, and print its head for anchoring.
import ArgumentParser
import Config
import Crypto
import Foundation
import Gateway
import Logging
import MailCore
import Store

struct JournalVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-walk the journal's hash chain and re-hash every archived sent message.",
        discussion: """
            Exit status 0 when the chain and the archive are intact, 1 when something was altered, removed or \
            inserted (the first broken entry is named). Entries whose fate is unknown are listed for checking by hand. \
            --checkpoint and --checkpoints fail when the chain no longer contains a head anchored earlier (a \
            truncated or rebuilt chain); with [journal] tsa_ca_file the time-stamp tokens beside the checkpoint \
            file are verified too. --against-server checks over IMAP that every journaled sent message is still in \
            the account's Sent folder (or a folder below it), by Message-ID.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        help: ArgumentHelp(
            "Report only this account's entries (the whole chain is still checked).",
            valueName: "EMAIL"))
    var account: String?

    @Flag(
        name: .customLong("against-server"),
        help: "Also check by Message-ID that every journaled message is still in the Sent folder.")
    var againstServer = false

    @Option(
        name: .customLong("checkpoint"),
        help: ArgumentHelp(
            "A head kept elsewhere (`journal checkpoint` prints it); fail when the chain no longer contains it.",
            valueName: "SEQ:HASH"))
    var checkpoints: [String] = []

    @Option(
        name: .customLong("checkpoints"),
        help: ArgumentHelp(
            "A checkpoint file (serve writes STATE/checkpoints/checkpoints.txt); fail when the chain lacks any.",
            valueName: "FILE"))
    var checkpointFile: String?

    /// Where sent messages are archived, named by their SHA-256.
    static func archiveDirectory(_ state: String) -> String { ArchiveLayout.directory(stateDirectory: state) }

    func validate() throws {
        for text in checkpoints where JournalCheckpoint.parseArgument(text) == nil {
            throw ValidationError(
                "--checkpoint \(text.prefix(100)) is not SEQ:HASH (a sequence number, a colon, 64 hex digits).")
        }
    }

    func run() throws {
        let (configuration, state, database) = try global.openStore()
        let entries = try database.journalEntries()
        var checks = JournalChecks()
        try checks.chain(entries: entries, state: state, database: database, account: account)
        checks.print()
        var extra = false
        if !checkpoints.isEmpty {
            extra = true
            checks.checkpoints(
                entries: entries, checkpoints: checkpoints.compactMap(JournalCheckpoint.parseArgument),
                source: "--checkpoint")
        }
        if let checkpointFile {
            extra = true
            checks.checkpointFile(entries: entries, path: checkpointFile, caFile: configuration.journal.tsaCAFile)
        }
        checks.print()
        if againstServer {
            extra = true
            try checks.againstServer(
                entries: entries, configuration: configuration, state: state, database: database, account: account)
        }
        if extra { checks.summary() }
        checks.print()
        if !checks.problems.isEmpty {
            throw CommandFailure.failed(
                "journal verify: \(checks.problems.count) problem\(checks.problems.count == 1 ? "" : "s") "
                    + "(listed above): \(checks.problems[0])")
        }
    }
}

/// The checks of `journal verify`, collecting what to print and what fails; `journal export` writes the same
/// lines as its verification report.
struct JournalChecks {
    /// Lines not yet printed.
    var pendingLines: [String] = []
    /// Every line, for a report file.
    var allLines: [String] = []
    /// One sentence per finding that makes the exit status 1.
    var problems: [String] = []
    var chained = 0
    var checkpointsContained = 0
    var tokensVerified = 0
    var tokensMissing = 0
    var sentChecked = 0
    var sentFound = 0

    mutating func say(_ line: String) {
        pendingLines.append(line)
        allLines.append(line)
    }

    mutating func fail(_ line: String) {
        problems.append(line)
        say(line)
    }

    mutating func print() {
        for line in pendingLines { Swift.print(line) }
        pendingLines.removeAll()
    }

    /// The chain and the archive; a broken chain is thrown (exit 1 with the first broken entry), as before.
    mutating func chain(
        entries: [JournalEntry], state: String, database: MailGateDatabase, account: String?
    ) throws {
        let result = JournalVerifier.verify(entries: entries, archiveDirectory: ArchiveLayout.directory(stateDirectory: state))
        let mine = account.map { wanted in
            Set(entries.filter { $0.accountEmail == wanted.lowercased() }.map(\.sequence))
        }
        let unknown = result.unknownFate.filter { mine?.contains($0) ?? true }
        let pending = result.pending.filter { mine?.contains($0) ?? true }
        switch result.outcome {
        case .broken(let sequence, let reason):
            throw CommandFailure.failed("journal BROKEN at entry \(sequence): \(reason).")
        case .ok(let count):
            chained = count
            let shown =
                mine.map { "\($0.count) entries of \(account!.lowercased()) (\(count) in the chain)" }
                ?? "\(count) entries"
            var line = "OK: \(shown)"
            if let head = try database.journalHead() { line += "; head \(head.sequence) \(head.hash)" }
            say(line)
            for sequence in unknown {
                say(
                    "entry \(sequence): fate unknown (MailGate stopped before the server answered); check the Sent "
                        + "folder and the recipients.")
            }
            let reasons = JournalVerifier.pendingReasons(entries: entries)
            for sequence in pending {
                say("entry \(sequence): \(reasons[sequence] ?? "still pending (a send in progress)").")
            }
        }
    }

    /// Heads kept elsewhere must still be in the chain.
    mutating func checkpoints(
        entries: [JournalEntry], checkpoints: [(sequence: Int64, entryHash: String)], source: String
    ) {
        let found = JournalCheckpointCheck.problems(entries: entries, checkpoints: checkpoints)
        for problem in found { fail("CHECKPOINT MISSING (\(source)): \(problem).") }
        checkpointsContained += checkpoints.count - found.count
        if found.isEmpty {
            say("checkpoints (\(source)): the chain contains all \(checkpoints.count)")
        }
    }

    /// A checkpoint file and, with `caFile`, the time-stamp tokens beside it.
    mutating func checkpointFile(entries: [JournalEntry], path: String, caFile: String?) {
        let parsed: [JournalCheckpoint]
        do {
            parsed = try JournalCheckpointFile.read(path: path)
        } catch {
            fail("CHECKPOINT FILE DAMAGED: \(path): \(error).")
            return
        }
        checkpoints(entries: entries, checkpoints: parsed.map { ($0.sequence, $0.entryHash) }, source: path)
        guard let caFile else {
            say("time-stamps: not checked ([journal] tsa_ca_file is not set)")
            return
        }
        let directory = (path as NSString).deletingLastPathComponent
        let (verified, tokenProblems) = JournalCheckpointCheck.tokenProblems(
            checkpoints: parsed, directory: directory.isEmpty ? "." : directory, caFile: caFile)
        for (sequence, token) in verified {
            let time = UTCTimestamp.format(Date(timeIntervalSince1970: Double(token.genTime)))
            say("time-stamp of checkpoint \(sequence): verified, TSA time \(time), serial \(token.serial)")
        }
        tokensVerified += verified.count
        for problem in tokenProblems {
            if problem.contains("is missing") {
                // A TSA that was down leaves a checkpoint without a token; that alone is not tampering.
                tokensMissing += 1
                say("warning: \(problem)")
            } else {
                fail("TIME-STAMP INVALID: \(problem).")
            }
        }
    }

    /// Every journaled sent message of `account` (or of every account in the journal) must be in its Sent folder.
    mutating func againstServer(
        entries: [JournalEntry], configuration: MailGateConfiguration, state: String, database: MailGateDatabase,
        account: String?
    ) throws {
        let directory = try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: state,
            logger: Logger(label: "mailgate.journal"))
        let accounts =
            account.map { [$0.lowercased()] }
            ?? Array(Set(entries.filter { $0.status == .sent }.map(\.accountEmail))).sorted()
        for email in accounts {
            let mine = entries.filter { $0.accountEmail == email && $0.status == .sent }
            guard !mine.isEmpty else {
                say("server: \(email) has no sent entries to look for")
                continue
            }
            let server: ServerSettings
            do {
                server = try directory.server(for: try directory.account(email))
            } catch {
                fail("SERVER CHECK IMPOSSIBLE for \(email): \(error)")
                continue
            }
            guard let endpoint = AccountDirectory.imapEndpoint(server) else {
                fail("SERVER CHECK IMPOSSIBLE for \(email): its server [server.\(server.name)] has no imap address.")
                continue
            }
            let audit = SentFolderAudit(
                endpoint: endpoint, sentFolder: server.sentFolder, credentials: directory,
                timeout: configuration.limits.connectTimeoutSeconds)
            let report: SentFolderAudit.Report
            do {
                report = try runBlocking {
                    try await audit.run(account: email, entries: mine) { done, total in
                        guard total > SentFolderAudit.batchSize else { return }
                        FileHandle.standardError.write(
                            Data("journal verify: \(email): \(done) of \(total) sent messages found so far\n".utf8))
                    }
                }
            } catch {
                fail("SERVER CHECK FAILED for \(email): \(error)")
                continue
            }
            sentChecked += report.checked
            sentFound += report.checked - report.missing.count
            let folders = report.folders.map { "\"\($0)\"" }.joined(separator: ", ")
            for entry in report.missing {
                fail(
                    "MISSING FROM SENT: entry \(entry.sequence), sent \(UTCTimestamp.format(entry.createdAt)) by "
                        + "\(entry.accountEmail) to \(entry.rcptTo.joined(separator: ", ")), Message-ID "
                        + "\(entry.messageID): not in \(folders).")
            }
            if report.missing.isEmpty {
                say("server: all \(report.checked) sent messages of \(email) are in \(folders)")
            }
        }
    }

    mutating func summary() {
        var parts = ["chain of \(chained) entries intact"]
        if checkpointsContained > 0 || problems.contains(where: { $0.hasPrefix("CHECKPOINT") }) {
            parts.append("\(checkpointsContained) checkpoints contained")
        }
        if tokensVerified > 0 || tokensMissing > 0 {
            parts.append("\(tokensVerified) time-stamps verified, \(tokensMissing) missing")
        }
        if sentChecked > 0 { parts.append("\(sentFound) of \(sentChecked) sent messages found on the server") }
        let verdict = problems.isEmpty ? "OK" : "FAILED (\(problems.count) problems)"
        say("summary: \(verdict): " + parts.joined(separator: ", "))
    }
}

struct JournalCheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Print the journal's head (sequence and hash) to keep outside MailGate, so truncation shows.",
        discussion: """
            Prints `SEQUENCE HASH`; an empty journal prints `0` and 64 zeros. `journal verify --checkpoint \
            SEQUENCE:HASH` later fails if the chain no longer contains it. serve writes checkpoints by itself too \
            (STATE/checkpoints/checkpoints.txt, see [journal]).
            """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let (_, _, database) = try global.openStore()
        if let head = try database.journalHead() {
            print("\(head.sequence) \(head.hash)")
        } else {
            print("0 \(JournalEntry.genesisHash)")
        }
    }
}
