// GatewayTests: SMTP smuggling and long lines through the whole gateway, against a scripted upstream that reads a
// bare LF as a line end (the kind of upstream a smuggled second message needs).
import Foundation
import MailCore
import Synchronization
import Testing

@testable import Gateway

@Suite("SMTP gateway: smuggling and long lines", .serialized)
struct SMTPSmugglingGatewayTests {
    /// One DATA that, read with bare LF as a line end, holds a second transaction as the same user.
    static let smuggling =
        "Subject: one\r\n\r\nhello\r\n\n.\nMAIL FROM:<alice@contoso.com>\nRCPT TO:<victim@example.com>\nDATA\n"
        + "Subject: smuggled\n\nsecond\n.\n\r\n.\r\n"

    private static func lenientScript() -> FakeSMTPUpstream.Script {
        var script = FakeSMTPUpstream.Script()
        script.lenientLineEnds = true
        return script
    }

    private static func envelope(_ client: RawClient) async throws {
        try await client.send("MAIL FROM:<alice@contoso.com>\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("RCPT TO:<bob@example.com>\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("DATA\r\n")
        #expect(try await client.reply()?.hasPrefix("354") == true)
    }

    /// Waits until the upstream has seen `count` messages (or a short while has passed).
    private static func settle(_ upstream: FakeSMTPUpstream, messages count: Int) async throws {
        for _ in 0..<50 where upstream.snapshot.messages.count < count {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        try await Task.sleep(nanoseconds: 200_000_000)
    }

    @Test("by default the smuggling DATA gets 550 5.5.2 and the upstream sees no message from it; the next one is one")
    func smugglingRefusedByDefault() async throws {
        let harness = try Harness(script: Self.lenientScript())
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await Self.envelope(client)
        try await client.send(Self.smuggling)
        #expect(try await client.reply() == "550 5.5.2 Message refused: bare CR or LF in the text; lines must end with CRLF")
        try await Self.envelope(client)
        try await client.send("Subject: clean\r\n\r\nfine\r\n.\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("QUIT\r\n")
        _ = try await client.reply()
        try await Self.settle(harness.upstream, messages: 1)
        let record = harness.upstream.snapshot
        #expect(record.messages.count == 1)
        #expect(record.messages.first.map { String(decoding: $0.wireBytes, as: UTF8.self) } == "Subject: clean\r\n\r\nfine\r\n")
        // The refused DATA's upstream connection was dropped (a DATA cannot be taken back), the next used a new one.
        #expect(record.connections == 2)
        #expect(!record.commands.contains("RCPT TO:<victim@example.com>"))
        #expect(harness.recorder.committed.withLock { $0.count } == 1)
    }

    @Test("with smtp_bare_newline = normalize the upstream sees exactly one message, the smuggled part as its text")
    func smugglingNormalizedIsOneMessage() async throws {
        var limits = Limits.standard
        limits.smtpBareNewline = .normalize
        let harness = try Harness(script: Self.lenientScript(), limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await Self.envelope(client)
        try await client.send(Self.smuggling)
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("QUIT\r\n")
        _ = try await client.reply()
        try await Self.settle(harness.upstream, messages: 2)
        let record = harness.upstream.snapshot
        #expect(record.messages.count == 1)
        #expect(!record.commands.contains("RCPT TO:<victim@example.com>"))
        #expect(record.messages.first?.recipients == ["bob@example.com"])
        let text = String(decoding: try #require(record.messages.first).wireBytes, as: UTF8.self)
        #expect(text.contains("\r\nMAIL FROM:<alice@contoso.com>\r\nRCPT TO:<victim@example.com>\r\n"))
        let wire = Array(text.utf8)
        #expect(wire.indices.allSatisfy { wire[$0] != 0x0A || ($0 > 0 && wire[$0 - 1] == 0x0D) }, "no bare LF upstream")
        #expect(harness.recorder.committed.withLock { $0.count } == 1)
    }

    @Test("a 64 KiB text line is relayed byte-exact; one past the configured bound gets a clear 500 5.5.2")
    func longLine() async throws {
        var limits = Limits.standard
        limits.smtpTextLine = 65_538
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        let line = (0..<65_536).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let message = Array("Subject: wide\r\n\r\n".utf8) + line + [0x0D, 0x0A]
        try await Self.envelope(client)
        try await client.send(bytes: message + Array(".\r\n".utf8))
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(harness.upstream.snapshot.messages.first?.wireBytes == message)
        #expect(harness.recorder.committed.withLock { $0.first?.bytes } == message)

        try await Self.envelope(client)
        try await client.send(bytes: Array("Subject: wider\r\n\r\n".utf8) + line + Array("x\r\n.\r\n".utf8))
        #expect(try await client.reply() == "500 5.5.2 Line too long: message lines may have at most 65538 octets")
        try await client.send("NOOP\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await Self.settle(harness.upstream, messages: 2)
        #expect(harness.upstream.snapshot.messages.count == 1)
    }

    @Test("the default text line bound takes a 64 KiB line")
    func defaultBoundTakesA64KiBLine() async throws {
        let harness = try Harness()
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        let message = Array("Subject: wide\r\n\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "z"), count: 65_536) + [0x0D, 0x0A]
        try await Self.envelope(client)
        try await client.send(bytes: message + Array(".\r\n".utf8))
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(harness.upstream.snapshot.messages.first?.wireBytes == message)
    }
}
