// GatewayTests/Faults: the upstream resets (RST) or stalls in the middle of IMAP FETCH and APPEND, SMTP DATA and BDAT,
// and POP3 RETR (issue 13 point 3). A `FaultProxy` sits between the gateway and the in-process fake upstream and
// misbehaves on cue. Each row asserts what the client is told, that nothing is recorded as sent that was not, and
// that another session on the same gateway is served meanwhile and afterwards.
import Dispatch
import Foundation
import Logging
import MailCore
import MailGateTesting
import Policy
import Synchronization
import SMTP
import Testing
import Transport

@testable import Gateway

private func secondsSince(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

/// Everything until the peer closes; nil if it is still open after `seconds`.
private func drain(_ connection: AsyncConnection, within seconds: Double) async throws -> [UInt8]? {
    do {
        return try await withTimeout(seconds) { () async -> [UInt8] in
            var all: [UInt8] = []
            while let chunk = try? await connection.readAvailable() { all += chunk }
            return all
        }
    } catch is TimedOut {
        return nil
    }
}

// MARK: - SMTP

/// SMTPGateway on 127.0.0.1:0 relaying through a `FaultProxy` to the fake upstream, with the recording fake.
private struct SMTPFaultHarness {
    let upstream: FakeSMTPUpstream
    let proxy: FaultProxy
    let gateway: SMTPGateway
    let recorder = FakeRecorder()

    init(script: FakeSMTPUpstream.Script = .init(), limits: Limits = .standard) throws {
        upstream = try FakeSMTPUpstream(script: script)
        proxy = try FaultProxy(target: upstream.address)
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        var settings = LocalAuthenticator.Settings()
        settings.initialFailureDelay = 0.05
        let caFile = upstream.certificates.caFile
        let address = proxy.address
        gateway = try SMTPGateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: false, tls: nil,
            configuration: SMTPGatewayConfiguration(
                listenerName: "smtp", hostname: "mailgate.test", relayAccount: nil, isRelayClient: { _ in false },
                limits: limits),
            authenticator: LocalAuthenticator(lookup: passwords, settings: settings), credentials: FakeCredentials(),
            recorder: recorder,
            resolver: { _ in
                SMTPUpstreamSettings(
                    server: address, security: .starttls, caFile: caFile, serverName: "localhost",
                    ehloHostname: "mailgate.test",
                    sentMailPolicy: SentMailPolicy(
                        lockAfterSend: true, sentCopy: .never, messageIDDomain: "contoso.test", imap: nil))
            }, logger: Logger(label: "mailgate.test.faults"))
    }

    func stop() {
        gateway.stop(drain: false)
        proxy.stop()
        upstream.stop()
    }

    /// A logged-in client that sends one small message and gets 250 (the "other session" of each row).
    func sendsOneMessage(_ client: RawClient, subject: String) async throws -> Bool {
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        for expected in ["250", "250", "354"] {
            guard try await client.reply(within: 10)?.hasPrefix(expected) == true else { return false }
        }
        try await client.send("Subject: \(subject)\r\n\r\nfine\r\n.\r\n")
        return try await client.reply(within: 10)?.hasPrefix("250 ") == true
    }
}

private func bigMessage(_ size: Int) -> [UInt8] {
    var message = Array("From: <alice@contoso.com>\r\nSubject: big\r\n\r\n".utf8)
    while message.count < size { message += Array((String(repeating: "m", count: 78) + "\r\n").utf8) }
    return message
}

@Suite("Faults: the SMTP upstream resets or stalls during a message", .serialized)
struct SMTPUpstreamFaultTests {
    @Test("reset during DATA: 451 4.4.2 not sent, the recording abandoned (never committed), the other session sends")
    func resetDuringData() async throws {
        let harness = try SMTPFaultHarness()
        defer { harness.stop() }
        let other = try await RawClient(harness.gateway.boundAddress)
        defer { other.close() }
        #expect(try await other.login()?.hasPrefix("235") == true)
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        for expected in ["250", "250", "354"] { #expect(try await client.reply()?.hasPrefix(expected) == true) }
        harness.proxy.arm(.reset, after: 100_000, .toUpstream)
        try? await client.send(bytes: bigMessage(1_048_576))
        try? await client.send(".\r\n")
        let reply = try #require(try await client.reply(within: 15), "no reply after the reset")
        #expect(reply == "451 4.4.2 Connection to the upstream server lost; the message was not sent", "\(reply)")
        #expect(harness.proxy.resets == 1)
        #expect(harness.recorder.kinds.contains("abandon"))
        #expect(!harness.recorder.kinds.contains("commit"), "\(harness.recorder.kinds)")
        #expect(harness.upstream.snapshot.messages.isEmpty, "the fake received no complete message")
        // The same client goes on (a new upstream), and the other session was not touched.
        #expect(try await harness.sendsOneMessage(client, subject: "after"))
        #expect(try await harness.sendsOneMessage(other, subject: "other"))
        #expect(harness.upstream.snapshot.messages.count == 2)
    }

    @Test("reset during BDAT (CHUNKING upstream): 451 not sent, never committed, the other session sends")
    func resetDuringBDAT() async throws {
        var script = FakeSMTPUpstream.Script()
        script.chunking = true
        let harness = try SMTPFaultHarness(script: script)
        defer { harness.stop() }
        let other = try await RawClient(harness.gateway.boundAddress)
        defer { other.close() }
        #expect(try await other.login()?.hasPrefix("235") == true)
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\n")
        for expected in ["250", "250"] { #expect(try await client.reply()?.hasPrefix(expected) == true) }
        let message = bigMessage(1_048_576)
        harness.proxy.arm(.reset, after: 100_000, .toUpstream)
        try? await client.send("BDAT \(message.count) LAST\r\n")
        try? await client.send(bytes: message)
        let reply = try #require(try await client.reply(within: 15), "no reply after the reset")
        #expect(reply.hasPrefix("451 4.4.2 "), "\(reply)")
        #expect(!reply.contains("may have been sent"), "the last chunk never reached the upstream: \(reply)")
        #expect(harness.proxy.resets == 1)
        #expect(!harness.recorder.kinds.contains("commit"), "\(harness.recorder.kinds)")
        #expect(harness.upstream.snapshot.messages.isEmpty)
        #expect(try await harness.sendsOneMessage(other, subject: "other"))
    }

    @Test("an upstream that stalls mid-DATA: the upstream idle timeout gives 451, the other session sends meanwhile")
    func stallDuringData() async throws {
        var limits = Limits.standard
        limits.idleTimeoutSeconds = 3
        let harness = try SMTPFaultHarness(limits: limits)
        defer { harness.stop() }
        let other = try await RawClient(harness.gateway.boundAddress)
        defer { other.close() }
        #expect(try await other.login()?.hasPrefix("235") == true)
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        for expected in ["250", "250", "354"] { #expect(try await client.reply()?.hasPrefix(expected) == true) }
        harness.proxy.arm(.stall, after: 50_000, .toUpstream)
        let started = DispatchTime.now().uptimeNanoseconds
        // The message goes into the kernel buffers and the gateway's (bounded) queue; the client then waits.
        let writer = Task { [client] in
            try? await client.send(bytes: bigMessage(4 * 1_048_576))
            try? await client.send(".\r\n")
        }
        // Meanwhile the other session sends a message through its own upstream connection.
        #expect(try await harness.sendsOneMessage(other, subject: "meanwhile"))
        let reply = try #require(try await client.reply(within: 30), "no reply after the stall")
        let seconds = secondsSince(started)
        #expect(reply.hasPrefix("451 4.4.2 ") || reply.hasPrefix("421 4.4.2 "), "\(reply)")
        #expect(seconds >= 2 && seconds < 25, "answered after \(seconds) s with idle_timeout 3 s")
        #expect(harness.proxy.stalls == 1)
        #expect(!harness.recorder.kinds.contains("commit") || harness.upstream.snapshot.messages.count == 1)
        #expect(harness.upstream.snapshot.messages.map(\.wireBytes.count).allSatisfy { $0 < 1_000_000 })
        client.close()
        _ = await writer.value
        // idle_timeout is 3 s here, so the other session may have timed out meanwhile: a new one sends.
        let fresh = try await RawClient(harness.gateway.boundAddress)
        defer { fresh.close() }
        #expect(try await fresh.login()?.hasPrefix("235") == true)
        #expect(try await harness.sendsOneMessage(fresh, subject: "after"))
    }
}

// MARK: - IMAP

/// Where the IMAP harness's resolver sends the gateway (set once the proxy exists).
private final class Route: Sendable {
    let address = Mutex<HostPort?>(nil)
}

private func imapHarness(
    _ script: FakeIMAPUpstream.Script, limits: Limits = .standard
) throws -> (IMAPGatewayHarness, FaultProxy) {
    let route = Route()
    let harness = try IMAPGatewayHarness(script: script, limits: limits) { settings in
        if let address = route.address.withLock({ $0 }) {
            settings.endpoint = UpstreamEndpoint(address: address, security: .none, caFile: nil)
        }
    }
    let proxy = try FaultProxy(target: harness.upstream.address)
    route.address.withLock { $0 = proxy.address }
    return (harness, proxy)
}

private func loggedIn(_ harness: IMAPGatewayHarness) async throws -> RawIMAPClient {
    let client = try await RawIMAPClient(harness.gateway.boundAddress)
    #expect(try await client.login().last?.hasPrefix("L1 OK") == true)
    try await client.send("S1 SELECT INBOX\r\n")
    #expect(try await client.until("S1", within: 10).last?.hasPrefix("S1 OK") == true)
    return client
}

private func answersNoop(_ client: RawIMAPClient, _ tag: String) async throws -> Bool {
    try await client.send("\(tag) NOOP\r\n")
    return try await client.until(tag, within: 10).last?.hasPrefix("\(tag) OK") == true
}

@Suite("Faults: the IMAP upstream resets or stalls during FETCH and APPEND", .serialized)
struct IMAPUpstreamFaultTests {
    @Test("reset in the middle of a 2 MiB FETCH literal: the client's connection is closed, the other session goes on")
    func resetDuringFetch() async throws {
        var script = FakeIMAPUpstream.Script()
        script.fetchLiteralSize = 2 * 1_048_576
        let (harness, proxy) = try imapHarness(script)
        defer { harness.stop(); proxy.stop() }
        let other = try await loggedIn(harness)
        defer { other.close() }
        let client = try await loggedIn(harness)
        defer { client.close() }
        proxy.arm(.reset, after: 200_000, .toClient)
        try await client.send("F1 FETCH 1 BODY[]\r\n")
        let received = try #require(try await drain(client.connection, within: 15), "not closed after the reset")
        #expect(proxy.resets == 1)
        // Mid-literal no status line can be framed: the client sees a short literal and the end of the stream.
        #expect(received.count < 2 * 1_048_576, "the literal cannot have completed: \(received.count) bytes")
        #expect(!String(decoding: received.suffix(200), as: UTF8.self).contains("F1 OK"))
        // …and no "* BYE" inside it either: the literal is all "f", anything else would be read as its content.
        let literalStart = try #require(received.firstIndex(of: UInt8(ascii: "}")))
        #expect(
            received[(literalStart + 3)...].allSatisfy { $0 == UInt8(ascii: "f") },
            "bytes other than the literal's: \(String(decoding: received.suffix(120), as: UTF8.self))")
        #expect(try await answersNoop(other, "O1"), "the other session is served")
        let fresh = try await loggedIn(harness)
        defer { fresh.close() }
        #expect(try await answersNoop(fresh, "N1"), "a new session is served")
    }

    @Test("reset while a 1 MiB APPEND literal goes upstream: a clear error, nothing appended, the other session goes on")
    func resetDuringAppend() async throws {
        let (harness, proxy) = try imapHarness(FakeIMAPUpstream.Script())
        defer { harness.stop(); proxy.stop() }
        let other = try await loggedIn(harness)
        defer { other.close() }
        let client = try await loggedIn(harness)
        defer { client.close() }
        let message = bigMessage(1_048_576)
        proxy.arm(.reset, after: 200_000, .toUpstream)
        try await client.send("A1 APPEND INBOX {\(message.count)}\r\n")
        let goAhead = try #require(try await client.line(within: 10))
        #expect(goAhead.hasPrefix("+"), "\(goAhead)")
        try? await client.send(bytes: message)
        try? await client.send("\r\n")
        let rest = try #require(try await drain(client.connection, within: 15), "not closed after the reset")
        let text = String(decoding: rest, as: UTF8.self)
        #expect(text.contains("* BYE Connection to Microsoft 365 lost"), "answer: \(text.prefix(300))")
        #expect(!text.contains("A1 OK"), "answer: \(text.prefix(300))")
        #expect(proxy.resets == 1)
        #expect(harness.upstream.snapshot.appended.isEmpty, "nothing was appended")
        #expect(try await answersNoop(other, "O1"), "the other session is served")
    }

    @Test("an upstream that stalls during FETCH: the IMAP idle timeout ends the session, the other one goes on")
    func stallDuringFetch() async throws {
        var script = FakeIMAPUpstream.Script()
        script.fetchLiteralSize = 2 * 1_048_576
        var limits = Limits.standard
        limits.imapIdleTimeoutSeconds = 3
        let (harness, proxy) = try imapHarness(script, limits: limits)
        defer { harness.stop(); proxy.stop() }
        let other = try await loggedIn(harness)
        defer { other.close() }
        let client = try await loggedIn(harness)
        defer { client.close() }
        proxy.arm(.stall, after: 100_000, .toClient)
        let started = DispatchTime.now().uptimeNanoseconds
        try await client.send("F1 FETCH 1 BODY[]\r\n")
        // The other session keeps working while this one waits (NOOP every 500 ms keeps its own timer fresh).
        var answered = 0
        while secondsSince(started) < 2 {
            if try await answersNoop(other, "O\(answered)") { answered += 1 }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        #expect(answered >= 1, "the other session answered meanwhile")
        let received = try #require(try await drain(client.connection, within: 20), "not closed after the stall")
        let seconds = secondsSince(started)
        #expect(received.count < 2 * 1_048_576)
        let literalStart = try #require(received.firstIndex(of: UInt8(ascii: "}")))
        #expect(received[(literalStart + 3)...].allSatisfy { $0 == UInt8(ascii: "f") }, "no BYE inside the literal")
        #expect(seconds >= 2.5 && seconds < 20, "closed after \(seconds) s with imap_idle_timeout 3 s")
        #expect(proxy.stalls == 1)
        #expect(try await answersNoop(other, "O99"), "the other session is served")
    }
}

// MARK: - POP3

@Suite("Faults: the POP3 upstream resets during RETR", .serialized)
struct POP3UpstreamFaultTests {
    @Test("reset in the middle of a 1 MiB RETR: the client's connection ends, no QUIT upstream, others are served")
    func resetDuringRetr() async throws {
        let message = bigMessage(1_048_576)
        let upstream = try FakePOP3Upstream(acceptedTokens: ["token-1"], messages: [message])
        let proxy = try FaultProxy(target: upstream.address)
        let address = proxy.address
        let harness = try POP3GatewayHarness(provider: nil) { _ in
            POP3AccountSettings(
                source: .pop3(UpstreamEndpoint(address: address, security: .none, caFile: nil, allowInsecure: true)))
        }
        defer { harness.stop(); proxy.stop(); upstream.stop() }
        // One POP3 session per maildrop (RFC 1939 §8): the other session is one that has not logged in yet.
        let other = try await harness.client()
        defer { other.close() }
        _ = try await other.line()
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login() == "+OK Logged in")
        try await client.send("DELE 1\r\n")
        #expect(try await client.line(within: 10) == "+OK")
        proxy.arm(.reset, after: 200_000, .toClient)
        try await client.send("RETR 1\r\n")
        let received = try #require(try await drain(client.connection, within: 15), "not closed after the reset")
        #expect(received.count < message.count, "the message cannot have completed: \(received.count) bytes")
        #expect(!String(decoding: received.suffix(5), as: UTF8.self).hasSuffix("\r\n.\r\n"), "no end-of-message line")
        #expect(proxy.resets == 1)
        // No QUIT reached the upstream for that session, so its DELE was never committed.
        #expect(!upstream.snapshot.commands.contains { $0.line == "QUIT" })
        try await other.send("CAPA\r\n")
        #expect(try await other.line(within: 10)?.hasPrefix("+OK") == true, "the other session is served")
        _ = try await other.multiline(within: 10)
        // The maildrop lock came back: a new session logs in and sees the message still there.
        #expect(await eventually(5) { harness.gateway.activeSessionCount == 1 })
        let fresh = try await harness.client()
        defer { fresh.close() }
        _ = try await fresh.line()
        #expect(try await fresh.pop3Login() == "+OK Logged in")
        try await fresh.send("STAT\r\n")
        #expect(try await fresh.line(within: 10) == "+OK 1 \(message.count)")
    }
}
