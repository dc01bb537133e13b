// GatewayTests/EndToEnd: the upstream dying during a message, with the real sent-mail recorder and a real database:
// the client gets 451 and the journal never says "sent".

import Foundation
import Logging
import MailCore
import MailGateTesting
import Policy
import SMTP
import Store
import Testing
import Transport

@testable import Gateway

@Suite("SMTP upstream lost during a message, real recorder and journal", .serialized)
struct SMTPUpstreamLossTests {
    /// SMTPGateway on 127.0.0.1:0 relaying to the fake upstream through the real `SentMailRecorder`, journaling into
    /// `<state>/mailgate.sqlite` with `lock_after_send` on and no sent copy.
    struct RealRecorderHarness {
        let upstream: FakeSMTPUpstream
        let gateway: SMTPGateway
        let state: TemporaryStateDirectory
        let database: MailGateDatabase
        let recorder: SentMailRecorder

        init(script: FakeSMTPUpstream.Script) throws {
            upstream = try FakeSMTPUpstream(script: script)
            state = try TemporaryStateDirectory()
            database = try MailGateDatabase(stateDirectory: state.path)
            recorder = SentMailRecorder(
                database: database, stateDirectory: state.path, limits: .standard,
                credentials: FakeCredentials(), logger: quietLogger)
            recorder.start()
            let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
            var settings = LocalAuthenticator.Settings()
            settings.initialFailureDelay = 0.05
            let caFile = upstream.certificates.caFile
            let address = upstream.address
            gateway = try SMTPGateway(
                listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: false, tls: nil,
                configuration: SMTPGatewayConfiguration(
                    listenerName: "smtp", hostname: "mailgate.test", relayAccount: nil, isRelayClient: { _ in false },
                    limits: .standard),
                authenticator: LocalAuthenticator(lookup: passwords, settings: settings),
                credentials: FakeCredentials(), recorder: recorder,
                resolver: { _ in
                    SMTPUpstreamSettings(
                        server: address, security: .starttls, caFile: caFile, serverName: "localhost",
                        ehloHostname: "mailgate.test",
                        sentMailPolicy: SentMailPolicy(
                            lockAfterSend: true, sentCopy: .never, messageIDDomain: "contoso.com", imap: nil))
                }, counters: StoreCounters(batch: CounterBatch(database: database, logger: quietLogger)), logger: quietLogger)
        }

        func stop() {
            gateway.stop(drain: false)
            upstream.stop()
            recorder.stop(timeout: 5)
        }

        /// Logs in and sends MAIL, RCPT, DATA and `message` (plus the final dot); returns the final reply.
        func send(_ message: String, pauseBeforeDot: Bool) async throws -> String? {
            let client = try await RawClient(gateway.boundAddress)
            defer { client.close() }
            #expect(try await client.login()?.hasPrefix("235") == true)
            try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            for expected in ["250", "250", "354"] { #expect(try await client.reply()?.hasPrefix(expected) == true) }
            try await client.send(message)
            if pauseBeforeDot { try await Task.sleep(nanoseconds: 200_000_000) }
            try await client.send(".\r\n")
            return try await client.reply()
        }
    }

    static func message(lines: Int) -> String {
        var text = "From: <alice@contoso.com>\r\nTo: <bob@example.com>\r\nSubject: lost\r\n"
        text += "Message-ID: <lost-\(UInt64.random(in: 0...UInt64.max))@contoso.com>\r\n\r\n"
        for index in 0..<lines { text += "line \(index) " + String(repeating: "x", count: 60) + "\r\n" }
        return text
    }

    @Test("the upstream drops mid-DATA: 451 4.4.x, no journal row, nothing archived or left in the spool")
    func dropMidData() async throws {
        var script = FakeSMTPUpstream.Script()
        script.dropAfterDataBytes = 10_000
        let harness = try RealRecorderHarness(script: script)
        defer { harness.stop() }
        let reply = try #require(try await harness.send(Self.message(lines: 1_000), pauseBeforeDot: true))
        #expect(reply.hasPrefix("451 4.4."), "\(reply)")
        let entries = try harness.database.journalEntries()
        #expect(!entries.contains { $0.status == .sent }, "\(entries)")
        #expect(entries.isEmpty, "the message never reached its final dot: \(entries)")
        // The recorder makes the 256 folders at start; none may hold a file.
        #expect(harness.state.files(in: "archive").allSatisfy { harness.state.files(in: "archive/" + $0).isEmpty })
        #expect(await eventually(5) { harness.state.files(in: "spool").isEmpty }, "\(harness.state.files(in: "spool"))")
        #expect(try counter(harness.database, "messages_relayed", account: "alice@contoso.com") == 0)
    }

    @Test("the upstream drops after the final dot, before its verdict: 451, the journal row is unknown, not sent")
    func dropAfterFinalDot() async throws {
        let text = Self.message(lines: 200)
        var script = FakeSMTPUpstream.Script()
        // Everything up to and including the final ".\r\n" arrives, then the fake hangs up without a reply.
        script.dropAfterDataBytes = text.utf8.count + 3
        let harness = try RealRecorderHarness(script: script)
        defer { harness.stop() }
        let reply = try #require(try await harness.send(text, pauseBeforeDot: false))
        #expect(reply.hasPrefix("451 4.4.2 ") && reply.hasSuffix("it may have been sent"), "\(reply)")
        var entries: [JournalEntry] = []
        _ = try await eventually(5) {
            entries = try harness.database.journalEntries()
            return entries.first.map { $0.status != .pending } ?? false
        }
        #expect(!entries.contains { $0.status == .sent }, "\(entries)")
        #expect(entries.map(\.status) == [.unknown], "\(entries)")
        let verification = JournalVerifier.verify(
            entries: entries, archiveDirectory: harness.state.path + "/archive")
        #expect(verification.isOK)
        #expect(verification.unknownFate == [1])
        #expect(try counter(harness.database, "messages_relayed", account: "alice@contoso.com") == 0)
        #expect(try counter(harness.database, "messages_fate_unknown", account: "alice@contoso.com") == 1)
    }
}
