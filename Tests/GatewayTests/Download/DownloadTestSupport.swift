// GatewayTests/Download: delivering mail to the stand-in over SMTP and reading what the local store holds.
import Config
import Crypto
import Foundation
import MailGateTesting
import MailCore
import Store
import Testing

@testable import Gateway

/// Every download test against the stand-in, one at a time: they share the download mailboxes.
@Suite("Download against the stand-in", .serialized)
struct DownloadAgainstStandIn {}

enum DownloadTesting {
    /// The stand-in's mailboxes that only these tests use (they delete what they download).
    static let dora = "dora@contoso.test"
    static let dirk = "dirk@contoso.test"

    /// Empties `user`'s INBOX on the server, so that a test sees only its own mail.
    static func emptyInbox(_ standIn: StandIn, _ user: String) throws {
        try doveadm(standIn, ["expunge", "-u", user, "mailbox", "INBOX", "all"])
    }

    /// Runs doveadm against the stand-in's Dovecot.
    static func doveadm(_ standIn: StandIn, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/doveadm")
        process.arguments = ["-c", standIn["DOVECOT_CONF"]] + arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw StandInError("doveadm \(arguments.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))")
        }
    }

    /// A message with a unique Message-ID and about `size` bytes of body (CRLF lines).
    static func message(_ label: String, size: Int = 2_000) -> (messageID: String, bytes: [UInt8]) {
        let id = "<dl-\(label)-\(UInt64.random(in: 0...UInt64.max))@contoso.test>"
        var text =
            "From: <alice@contoso.test>\r\nTo: <alice@contoso.test>\r\nSubject: download \(label)\r\n"
            + "Message-ID: \(id)\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
        let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;:!?=+*/()[]<>\r\n"
        // A line starting with "." checks that nothing un-stuffs or stuffs on the way into the store.
        text += ".leading dot line\r\n"
        while text.utf8.count < size { text += line }
        return (id, Array(text.utf8))
    }

    /// Submits `count` messages to `user` over the stand-in's SMTP and waits until all are in its INBOX.
    static func deliver(
        _ standIn: StandIn, to user: String, count: Int, size: Int = 2_000, label: String = "m"
    ) async throws -> [String] {
        let token = try standIn.accessToken(for: user)
        var ids: [String] = []
        for index in 0..<count {
            let (id, bytes) = message("\(label)\(index)", size: size)
            try await submitDirectly(standIn, user: user, token: token, to: user, message: bytes)
            ids.append(id)
        }
        let deadline = Date().addingTimeInterval(60)
        let client = try await CheckingIMAPClient.open(standIn, user: user, token: token)
        for id in ids {
            while try await client.messages(in: "INBOX", messageID: id).isEmpty {
                guard Date() < deadline else {
                    await client.close()
                    throw StandInError("\(id) was not delivered to \(user) within 60 s")
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        await client.close()
        return ids
    }

    /// The server's copies of `messageID` in INBOX.
    static func onServer(_ standIn: StandIn, user: String, messageID: String) async throws -> [FetchedMessage] {
        let client = try await CheckingIMAPClient.open(standIn, user: user, token: try standIn.accessToken(for: user))
        let found = try await client.messages(in: "INBOX", messageID: messageID)
        await client.close()
        return found
    }

    /// What the local store holds for `account`: the rows still present and the files of `new/`.
    struct Holdings {
        var rows: [DownloadedMessage]
        var files: [String]
        var store: MaildirStore

        /// Rows per Message-ID that are locally present.
        func present(_ messageID: String) -> [DownloadedMessage] {
            rows.filter { $0.messageID == messageID && $0.deletedLocallyAt == nil }
        }

        /// Every present row has its file, of its size and hash, and there is no file without a row.
        func consistent() -> Bool {
            let present = rows.filter { $0.deletedLocallyAt == nil }
            guard Set(present.map(\.fileName)) == Set(files), present.count == files.count else { return false }
            return present.allSatisfy { row in
                guard let data = FileManager.default.contents(atPath: store.path(of: row.fileName)) else { return false }
                return data.count == Int(row.size) && SHA256.hex([UInt8](data)) == row.sha256
            }
        }
    }

    static func holdings(stateDirectory: String, account: String) throws -> Holdings {
        let database = try MailGateDatabase(stateDirectory: stateDirectory)
        let store = MaildirStore(stateDirectory: stateDirectory, account: account)
        let rows = try database.downloadedMessages(account: account, mailbox: "INBOX")
        let files = DurableFile.list(store.newDirectory)
        return Holdings(rows: rows, files: files, store: store)
    }

    /// Waits until `condition` holds on the store (polling), or fails after `timeout` seconds.
    static func waitFor(
        stateDirectory: String, account: String, timeout: Double = 60, _ condition: (Holdings) -> Bool
    ) async throws -> Holdings {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let holdings = try? holdings(stateDirectory: stateDirectory, account: account), condition(holdings) {
                return holdings
            }
            guard Date() < deadline else {
                throw StandInError("the local store of \(account) did not reach the expected state in \(timeout) s")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// An installation whose server downloads on a schedule; `download` lines go into `[download]`.
    static func installation(
        _ standIn: StandIn, smtpPort: Int, accounts: [String], extraServer: String = "", download: String = ""
    ) throws -> MailGateInstallation {
        let installation = try MailGateInstallation(
            standIn, smtpPort: smtpPort, extraServer: extraServer + "\n\n[download]\n" + download,
            incoming: "imap-download")
        for account in accounts { try installation.addAndConnect(account, password: EndToEnd.password) }
        return installation
    }

    /// The configuration and an in-memory-free state directory for in-process runner tests against the stand-in.
    static func configuration(
        _ standIn: StandIn, stateDirectory: String, deleteAfterLoading: Bool = false, deleteAfterDays: Int = 0,
        download: DownloadSettings = DownloadSettings()
    ) throws -> MailGateConfiguration {
        let server = ServerSettings(
            name: "standin", oauth: "standin",
            smtp: HostPortSpec(host: standIn.host, port: Int(standIn["SUBMISSION_PORT"])!),
            imap: HostPortSpec(host: standIn.host, port: Int(standIn["IMAPS_PORT"])!), imapSecurity: .tls,
            incoming: .imapDownload, deleteAfterLoading: deleteAfterLoading, deleteAfterDays: deleteAfterDays,
            caFile: standIn.caFile)
        return MailGateConfiguration(
            sourceFile: stateDirectory + "/mailgate.toml", stateDirectory: stateDirectory, listen: ListenSettings(),
            oauth: ["standin": OAuthSettings(name: "standin", clientID: standIn["CLIENT_ID"])],
            servers: ["standin": server], download: download)
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "mailgate-download-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw StandInError("cannot make a temporary directory") }
        return String(cString: made)
    }
}

/// A clock the test moves.
final class TestClock: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date = Date()) { current = start }

    var now: Date { lock.withLock { current } }

    func advance(days: Double) { lock.withLock { current = current.addingTimeInterval(days * 86_400) } }
}
