// mailgate: `journal export`: the archived originals of a time range with a manifest, the checkpoints and their
// time-stamps and the verification report, checkable by an auditor with sha256sum and openssl alone.
import ArgumentParser
import Config
import Crypto
import Foundation
import Store

struct JournalExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export the archived originals of a time range with a manifest, for auditors.",
        discussion: """
            Writes into DIR (which must not exist or be empty): messages/SEQ.eml (the exact bytes sent), \
            manifest.csv and manifest.json (every journal field and the SHA-256 of each file), checkpoints/ (the \
            checkpoint file and the RFC 3161 tokens, with the TSA's CA when configured), verification-report.txt \
            (what `journal verify --checkpoints` says) and SHA256SUMS. Check it with `sha256sum -c SHA256SUMS` and \
            `openssl ts -verify -digest HASH -in checkpoints/SEQ.tsr -CAfile checkpoints/tsa-ca.pem` (HOW-TO-CHECK.txt \
            lists the commands). DATE is 2026-12-01 (a whole UTC day for --until) or 2026-12-01T10:00:00Z.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Entries created at or after this time.", valueName: "DATE"))
    var since: String

    @Option(help: ArgumentHelp("Entries created up to this time (a bare date includes that day).", valueName: "DATE"))
    var until: String?

    @Option(help: ArgumentHelp("Only this account's entries.", valueName: "EMAIL"))
    var account: String?

    @Argument(help: ArgumentHelp("The directory to write (created; must be empty if it exists).", valueName: "DIR"))
    var directory: String

    /// Parses `2026-12-01`, `2026-12-01T10:00:00Z` or `2026-12-01T10:00:00.123Z`; `endOfDay` makes a bare date
    /// mean the end of that day (exclusive bound: the next midnight).
    static func parseDate(_ text: String, endOfDay: Bool) -> Date? {
        if text.utf8.count == 10, let midnight = UTCTimestamp.parse(text + "T00:00:00.000Z") {
            return endOfDay ? midnight.addingTimeInterval(86_400) : midnight
        }
        if text.utf8.count == 20, text.hasSuffix("Z"), let time = UTCTimestamp.parse(String(text.dropLast()) + ".000Z") {
            return time
        }
        return UTCTimestamp.parse(text)
    }

    func validate() throws {
        guard Self.parseDate(since, endOfDay: false) != nil else {
            throw ValidationError("--since \(since.prefix(80)) is not a date such as 2026-12-01 or 2026-12-01T10:00:00Z.")
        }
        if let until, Self.parseDate(until, endOfDay: true) == nil {
            throw ValidationError("--until \(until.prefix(80)) is not a date such as 2026-12-31 or 2026-12-31T18:00:00Z.")
        }
    }

    func run() throws {
        let (configuration, state, database) = try global.openStore()
        let start = Self.parseDate(since, endOfDay: false)!
        let end = until.flatMap { Self.parseDate($0, endOfDay: true) } ?? Date.distantFuture
        let target = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        let files = FileManager.default
        if files.fileExists(atPath: target) {
            let contents = (try? files.contentsOfDirectory(atPath: target)) ?? ["?"]
            guard contents.isEmpty else {
                throw CommandFailure.failed("journal export: \(target) exists and is not empty; name a new directory.")
            }
        }
        do {
            try files.createDirectory(
                atPath: target + "/messages", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try files.createDirectory(
                atPath: target + "/checkpoints", withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw CommandFailure.failed("journal export: cannot create \(target): \(error.localizedDescription)")
        }

        let entries = try database.journalEntries()
        let selected = entries.filter { entry in
            entry.createdAt >= start && entry.createdAt < end
                && (account.map { entry.accountEmail == $0.lowercased() } ?? true)
        }
        var sums: [(hash: String, path: String)] = []
        var rows: [ExportRow] = []
        var notes: [String] = []
        let archive = ArchiveLayout.directory(stateDirectory: state)
        for entry in selected {
            var row = ExportRow(entry: entry)
            let source = ArchiveLayout.path(sha256: entry.sha256, directory: archive)
            if files.fileExists(atPath: source) {
                let name = "messages/\(entry.sequence).eml"
                let hash = try Self.copy(source, to: target + "/" + name)
                row.file = name
                row.fileSHA256 = hash
                sums.append((hash, name))
                if hash != entry.sha256 {
                    notes.append("entry \(entry.sequence): the archived file's SHA-256 \(hash) is not the journal's \(entry.sha256)")
                }
            } else if entry.status == .sent {
                notes.append("entry \(entry.sequence): sent, but its archived original \(source) is missing")
            }
            rows.append(row)
        }

        // The checkpoints and their tokens, and the TSA's CA so that `openssl ts -verify` has it at hand.
        let checkpointFolder = JournalCheckpointFile.directory(stateDirectory: state)
        var copiedCheckpoints = false
        if files.fileExists(atPath: JournalCheckpointFile.path(stateDirectory: state)) {
            let names = ((try? files.contentsOfDirectory(atPath: checkpointFolder)) ?? []).filter {
                $0 == "checkpoints.txt" || ($0.hasSuffix(".tsr") && Int64($0.dropLast(4)) != nil)
            }.sorted()
            for name in names {
                let hash = try Self.copy(checkpointFolder + "/" + name, to: target + "/checkpoints/" + name)
                sums.append((hash, "checkpoints/" + name))
            }
            copiedCheckpoints = true
        }
        if let caFile = configuration.journal.tsaCAFile, files.fileExists(atPath: caFile) {
            let hash = try Self.copy(caFile, to: target + "/checkpoints/tsa-ca.pem")
            sums.append((hash, "checkpoints/tsa-ca.pem"))
        }

        // The verification report: the same checks as `journal verify --checkpoints`.
        var checks = JournalChecks()
        var report: [String] = [
            "MailGate journal export, made \(UTCTimestamp.format(Date()))",
            "range: entries created from \(UTCTimestamp.format(start))"
                + (until == nil ? "" : " to before \(UTCTimestamp.format(end))")
                + (account.map { ", account \($0.lowercased())" } ?? "") + "; \(selected.count) entries exported",
            "",
        ]
        do {
            try checks.chain(entries: entries, state: state, database: database, account: account)
            if copiedCheckpoints {
                checks.checkpointFile(
                    entries: entries, path: JournalCheckpointFile.path(stateDirectory: state),
                    caFile: configuration.journal.tsaCAFile)
            } else {
                checks.say("checkpoints: none written yet")
            }
            checks.summary()
        } catch {
            checks.fail("\(error)")
        }
        report += checks.allLines
        report += notes.map { "note: " + $0 }
        let reportText = report.joined(separator: "\n") + "\n"
        sums.append(try Self.write(Array(reportText.utf8), to: target, name: "verification-report.txt"))

        sums.append(try Self.write(Array(ExportRow.csv(rows).utf8), to: target, name: "manifest.csv"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let manifest = ExportManifest(
            generatedAt: UTCTimestamp.format(Date()), since: UTCTimestamp.format(start),
            until: until == nil ? nil : UTCTimestamp.format(end), account: account?.lowercased(),
            head: try database.journalHead().map { ExportManifest.Head(sequence: $0.sequence, entryHash: $0.hash) },
            entries: rows)
        let json = try encoder.encode(manifest)
        sums.append(try Self.write([UInt8](json) + [0x0A], to: target, name: "manifest.json"))
        sums.append(try Self.write(Array(Self.howToCheck.utf8), to: target, name: "HOW-TO-CHECK.txt"))
        let sumsText = sums.map { "\($0.hash)  \($0.path)\n" }.joined()
        _ = try Self.write(Array(sumsText.utf8), to: target, name: "SHA256SUMS")

        print(
            "exported \(selected.count) entries (\(rows.filter { $0.file != nil }.count) messages) to \(target); "
                + "check with: cd \(target) && sha256sum -c SHA256SUMS")
        for note in notes { print("note: \(note)") }
        if !checks.problems.isEmpty {
            throw CommandFailure.failed(
                "journal export: written, but the verification found \(checks.problems.count) problems "
                    + "(see verification-report.txt): \(checks.problems[0])")
        }
    }

    static let howToCheck = """
        How to check this export without MailGate

        1. Every file is unchanged:
               sha256sum -c SHA256SUMS
        2. Each message is the one the journal names: in manifest.csv the columns sha256 (the journal's) and
           fileSHA256 (this file's) are equal for every row with a file.
        3. Each time-stamp token is a TSA's signature over the checkpoint's entry hash, made at the time it says
           (take HASH from checkpoints/checkpoints.txt, the second field of the line whose first field is SEQ; use
           the TSA's CA from a source you trust rather than only the copy here):
               openssl ts -verify -digest HASH -in checkpoints/SEQ.tsr -CAfile checkpoints/tsa-ca.pem
               openssl ts -reply -in checkpoints/SEQ.tsr -text
        4. verification-report.txt is what MailGate's own check said when the export was made.

        """

    /// Copies `source` to `destination` (mode 0600), fsynced, and returns the SHA-256 of the bytes copied.
    static func copy(_ source: String, to destination: String) throws -> String {
        guard let input = FileHandle(forReadingAtPath: source) else {
            throw CommandFailure.failed("journal export: cannot read \(source)")
        }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: destination, contents: nil, attributes: [.posixPermissions: 0o600]),
            let output = FileHandle(forWritingAtPath: destination)
        else { throw CommandFailure.failed("journal export: cannot create \(destination)") }
        defer { try? output.close() }
        let hasher = SHA256Hasher()
        while true {
            let chunk = input.readData(ofLength: JournalVerifier.readChunk)
            if chunk.isEmpty { break }
            hasher.update([UInt8](chunk))
            output.write(chunk)
        }
        try output.synchronize()
        return SHA256.hexString(hasher.finalize())
    }

    /// Writes `bytes` as `name` in `directory` and returns its line for SHA256SUMS.
    static func write(_ bytes: [UInt8], to directory: String, name: String) throws -> (hash: String, path: String) {
        let path = directory + "/" + name
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        else { throw CommandFailure.failed("journal export: cannot write \(path)") }
        return (SHA256.hex(bytes), name)
    }
}

/// One entry of the export's manifest: every journal field, and the exported file with its SHA-256.
struct ExportRow: Encodable {
    var sequence: Int64
    var status: String
    var createdAt: String
    var completedAt: String?
    var accountEmail: String
    var listener: String
    var mailFrom: String
    var rcptTo: [String]
    var messageID: String
    var size: Int64
    var sha256: String
    var upstreamReply: String?
    var sentCopyState: String
    var previousHash: String
    var entryHash: String
    var file: String?
    var fileSHA256: String?

    init(entry: JournalEntry) {
        sequence = entry.sequence
        status = entry.status.rawValue
        createdAt = UTCTimestamp.format(entry.createdAt)
        completedAt = entry.completedAt.map(UTCTimestamp.format)
        accountEmail = entry.accountEmail
        listener = entry.listener
        mailFrom = entry.mailFrom
        rcptTo = entry.rcptTo
        messageID = entry.messageID
        size = entry.size
        sha256 = entry.sha256
        upstreamReply = entry.upstreamReply
        sentCopyState = entry.sentCopyState.rawValue
        previousHash = entry.previousHash
        entryHash = entry.entryHash
    }

    enum CodingKeys: String, CodingKey {
        case sequence, status, createdAt, completedAt, accountEmail, listener, mailFrom, rcptTo, messageID, size, sha256
        case upstreamReply, sentCopyState, previousHash, entryHash, file, fileSHA256
    }

    /// Every field, absent ones as `null` (an auditor's tool should see the field, not guess it).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(status, forKey: .status)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(completedAt, forKey: .completedAt)
        try container.encode(accountEmail, forKey: .accountEmail)
        try container.encode(listener, forKey: .listener)
        try container.encode(mailFrom, forKey: .mailFrom)
        try container.encode(rcptTo, forKey: .rcptTo)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(size, forKey: .size)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(upstreamReply, forKey: .upstreamReply)
        try container.encode(sentCopyState, forKey: .sentCopyState)
        try container.encode(previousHash, forKey: .previousHash)
        try container.encode(entryHash, forKey: .entryHash)
        try container.encode(file, forKey: .file)
        try container.encode(fileSHA256, forKey: .fileSHA256)
    }

    static let csvHeader = [
        "sequence", "status", "createdAt", "completedAt", "accountEmail", "listener", "mailFrom", "rcptTo",
        "messageID", "size", "sha256", "upstreamReply", "sentCopyState", "previousHash", "entryHash", "file",
        "fileSHA256",
    ]

    /// RFC 4180 CSV with CRLF line ends; recipients are joined by a space (addresses hold none).
    static func csv(_ rows: [ExportRow]) -> String {
        func field(_ text: String?) -> String {
            guard let text else { return "" }
            let needsQuotes = text.contains { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == " " }
            return needsQuotes ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var out = csvHeader.joined(separator: ",") + "\r\n"
        for row in rows {
            let fields: [String?] = [
                String(row.sequence), row.status, row.createdAt, row.completedAt, row.accountEmail, row.listener,
                row.mailFrom, row.rcptTo.joined(separator: " "), row.messageID, String(row.size), row.sha256,
                row.upstreamReply, row.sentCopyState, row.previousHash, row.entryHash, row.file, row.fileSHA256,
            ]
            out += fields.map(field).joined(separator: ",") + "\r\n"
        }
        return out
    }
}

/// manifest.json.
struct ExportManifest: Encodable {
    struct Head: Encodable {
        var sequence: Int64
        var entryHash: String
    }
    var generatedAt: String
    var since: String
    var until: String?
    var account: String?
    var head: Head?
    var entries: [ExportRow]
}
