// GatewayTests/Faults: the state directory's file system is full while a message is archived (issue 13 point 3).
// The state directory is a small tmpfs mounted for the test (root only; the row is disabled where mount fails),
// filled to the last few KiB after the database is set up; the real SentMailRecorder and database are used.
import Foundation
import Logging
import MailCore
import MailGateTesting
import Policy
import Store
import SMTP
import Testing
import Transport

@testable import Gateway

/// A tmpfs of `size` mounted on a fresh directory; unmounted (and the directory removed) by `unmount()`.
private final class SmallFileSystem {
    let path: String

    init?(size: String) {
        var template = Array((NSTemporaryDirectory() + "mailgate-diskfull-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { return nil }
        path = String(cString: made)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]) == 0 else {
            rmdir(path)
            return nil
        }
    }

    /// Fills the file system up to `leaving` free bytes with a filler file.
    func fill(leaving: Int) throws {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { throw CocoaError(.fileReadUnknown) }
        let free = Int(stats.f_bavail) * Int(stats.f_frsize)
        let filler = max(0, free - leaving)
        FileManager.default.createFile(atPath: path + "/filler", contents: Data(count: filler))
    }

    func emptyFiller() { try? FileManager.default.removeItem(atPath: path + "/filler") }

    func unmount() {
        _ = Self.run("/bin/umount", ["-l", path])
        rmdir(path)
    }

    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whether this process may mount a tmpfs (root in a container that allows it).
    static let available: Bool = {
        guard getuid() == 0, let probe = SmallFileSystem(size: "64k") else { return false }
        probe.unmount()
        return true
    }()
}

@Suite("Faults: the disk is full while a message is archived", .serialized)
struct DiskFullTests {
    @Test(
        "state directory full: the client gets 451 4.3.0, the upstream never gets the final dot, no journal row says sent",
        .enabled(if: SmallFileSystem.available, "needs root and tmpfs mounts"))
    func diskFullWhileArchiving() async throws {
        let disk = try #require(SmallFileSystem(size: "8m"))
        defer { disk.unmount() }
        let upstream = try FakeSMTPUpstream()
        defer { upstream.stop() }
        let database = try MailGateDatabase(stateDirectory: disk.path)
        let recorder = SentMailRecorder(
            database: database, stateDirectory: disk.path, limits: .standard, credentials: FakeCredentials(),
            logger: quietLogger)
        recorder.start()
        defer { recorder.stop(timeout: 5) }
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        var settings = LocalAuthenticator.Settings()
        settings.initialFailureDelay = 0.05
        let caFile = upstream.certificates.caFile
        let address = upstream.address
        let gateway = try SMTPGateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: false, tls: nil,
            configuration: SMTPGatewayConfiguration(
                listenerName: "smtp", hostname: "mailgate.test", relayAccount: nil, isRelayClient: { _ in false }),
            authenticator: LocalAuthenticator(lookup: passwords, settings: settings), credentials: FakeCredentials(),
            recorder: recorder,
            resolver: { _ in
                SMTPUpstreamSettings(
                    server: address, security: .starttls, caFile: caFile, serverName: "localhost",
                    ehloHostname: "mailgate.test",
                    sentMailPolicy: SentMailPolicy(
                        lockAfterSend: true, sentCopy: .never, messageIDDomain: "contoso.com", imap: nil))
            }, logger: quietLogger)
        defer { gateway.stop(drain: false) }

        func send(_ subject: String, size: Int) async throws -> String? {
            let client = try await RawClient(gateway.boundAddress)
            defer { client.close() }
            #expect(try await client.login()?.hasPrefix("235") == true)
            try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            for expected in ["250", "250", "354"] { #expect(try await client.reply()?.hasPrefix(expected) == true) }
            var text = "From: <alice@contoso.com>\r\nTo: <bob@example.com>\r\nSubject: \(subject)\r\n"
            text += "Message-ID: <\(subject)-\(UInt64.random(in: 0...UInt64.max))@contoso.com>\r\n\r\n"
            while text.utf8.count < size { text += String(repeating: "d", count: 78) + "\r\n" }
            try await client.send(text + ".\r\n")
            return try await client.reply(within: 20)
        }

        // A message while there is room: sent and journaled (the database and directories exist now).
        #expect(try await send("before", size: 10_000)?.hasPrefix("250 ") == true)
        #expect(try database.journalEntries().map(\.status) == [.sent])

        // Fill the file system to its last 16 KiB: a 2 MiB message cannot be spooled or archived.
        try disk.fill(leaving: 16_384)
        let reply = try #require(try await send("full", size: 2 * 1_048_576), "no reply with the disk full")
        #expect(reply == "451 4.3.0 The message could not be recorded; it was not sent", "\(reply)")
        #expect(upstream.snapshot.messages.count == 1, "the final dot of the second message never went upstream")
        let entries = try database.journalEntries()
        #expect(entries.filter { $0.status == .sent }.count == 1, "only the first message is journaled as sent: \(entries)")

        // Room again: the next message goes through (nothing stuck).
        disk.emptyFiller()
        #expect(try await send("after", size: 10_000)?.hasPrefix("250 ") == true)
        #expect(upstream.snapshot.messages.count == 2)
    }
}
