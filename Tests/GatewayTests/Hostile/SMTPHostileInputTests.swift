// GatewayTests/Hostile: hostile input to a real SMTP listener on 127.0.0.1:0 (issue 13, point 4). Each row sends
// one kind of abuse, asserts the exact reply or close, and checks that a well-behaved client opened before the abuse
// is still answered during it and that a new client is served after it (the gateway keeps running).
import Dispatch
import Foundation
import MailCore
import MailGateTesting
import TLS
import Testing
import Synchronization
import Transport

@testable import Gateway

@Suite("Hostile input: SMTP", .serialized)
struct SMTPHostileInputTests {
    /// Small timeouts so the timeout rows finish in seconds.
    private static var limits: Limits {
        var limits = Limits.standard
        limits.idleTimeoutSeconds = 3
        limits.handshakeTimeoutSeconds = 4
        return limits
    }

    /// For the rows that test no timeout: a well-behaved client that waits a few seconds between its steps on a
    /// loaded machine (the whole suite runs in parallel) must not meet the idle timeout.
    private static var patientLimits: Limits {
        var limits = Self.limits
        limits.idleTimeoutSeconds = 60
        limits.handshakeTimeoutSeconds = 60
        return limits
    }

    /// A TLS 1.2 ClientHello record (one cipher suite, no extensions); it holds no LF, so a line reader never
    /// sees a line end in it.
    static let clientHello: [UInt8] = {
        let random = [UInt8](repeating: 0x11, count: 32)
        let body: [UInt8] = [0x03, 0x03] + random + [0x00] + [0x00, 0x02, 0xC0, 0x2F] + [0x01, 0x00]
        let handshake: [UInt8] = [0x01, 0x00, 0x00, UInt8(body.count)] + body
        return [0x16, 0x03, 0x01, 0x00, UInt8(handshake.count)] + handshake
    }()

    /// Opens a client and returns it after checking its greeting.
    private func greeted(_ harness: Harness) async throws -> RawClient {
        let client = try await RawClient(harness.gateway.boundAddress)
        let greeting = try await client.reply(within: 5)
        #expect(greeting?.hasPrefix("220 ") == true, "greeting: \(greeting ?? "nil")")
        return client
    }

    /// The well-behaved client still gets answers; a new client is greeted and answered.
    private func checkServed(_ harness: Harness, _ good: RawClient) async throws {
        try await good.send("NOOP\r\n")
        let noop = try await good.reply(within: 5)
        #expect(noop?.hasPrefix("250") == true, "the well-behaved client's NOOP: \(noop ?? "nil")")
        let fresh = try await greeted(harness)
        defer { fresh.close() }
        try await fresh.send("EHLO fresh.test\r\n")
        let ehlo = try await fresh.reply(within: 5)
        #expect(ehlo?.hasPrefix("250-mailgate.test") == true, "a new client's EHLO: \(ehlo ?? "nil")")
    }

    /// Reads everything until the peer closes; nil if it stays open longer than `seconds`.
    private func readToClose(_ client: RawClient, within seconds: Double) async throws -> [UInt8]? {
        let connection = client.connection
        do {
            return try await withTimeout(seconds) { () async -> [UInt8]? in
                var all: [UInt8] = []
                while true {
                    guard let chunk = try? await connection.readAvailable() else { return all }
                    all += chunk
                }
            }
        } catch is TimedOut {
            return nil
        }
    }

    /// Runs `body` while the well-behaved client sends NOOP every 300 ms (so its own idle timer never fires);
    /// expects every NOOP meanwhile answered 250 and at least one of them.
    private func keepingAlive<T>(_ good: RawClient, _ body: () async throws -> T) async throws -> T {
        let stop = Mutex(false)
        let exchanges = Task { () -> (answered: Int, failed: Int) in
            var answered = 0
            var failed = 0
            while !stop.withLock({ $0 }) {
                do {
                    try await good.send("NOOP\r\n")
                    if try await good.reply(within: 5)?.hasPrefix("250") == true { answered += 1 } else { failed += 1 }
                } catch {
                    failed += 1
                }
                try? await Task.sleep(nanoseconds: 300_000_000)
            }
            return (answered, failed)
        }
        let result = try await body()
        stop.withLock { $0 = true }
        let counts = await exchanges.value
        #expect(counts.answered > 0 && counts.failed == 0, "the well-behaved client meanwhile: \(counts)")
        return result
    }

    @Test("an overlong command line gets 500 5.5.2 Line too long and the session goes on")
    func overlongLine() async throws {
        let harness = try Harness(limits: Self.patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        try await bad.send(String(repeating: "A", count: Self.limits.smtpCommandLine * 4) + "\r\n")
        #expect(try await bad.reply(within: 5) == "500 5.5.2 Line too long")
        try await bad.send("NOOP\r\n")
        #expect(try await bad.reply(within: 5)?.hasPrefix("250") == true, "the session survives one overlong line")
        try await checkServed(harness, good)
    }

    @Test("a megabyte without a line end is dropped past the bound (no reply) and ends with 421 4.4.2 at the idle timeout")
    func endlessLine() async throws {
        let harness = try Harness(limits: Self.limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        // No CR or LF at all: the bound must hold without a line end ever coming.
        let bytes = try await keepingAlive(good) { () async throws -> [UInt8]? in
            try? await bad.send(bytes: [UInt8](repeating: 0x41, count: 1_048_576))
            return try await readToClose(bad, within: 12)
        }
        // What is past the bound is dropped until a line end that never comes; the idle timer ends it.
        #expect(bytes.map { String(decoding: $0, as: UTF8.self) } == "421 4.4.2 Idle timeout\r\n")
        try await checkServed(harness, good)
    }

    @Test("binary garbage (NUL, 0xFF) gets 500 5.5.2 per line and 421 4.7.0 at the error budget, then a close")
    func binaryGarbage() async throws {
        let harness = try Harness(limits: Self.patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let garbage: [UInt8] = [0x00, 0xFF, 0xFE, 0x00, 0x80, 0x01, 0xFF, 0x0D, 0x0A]
        var replies: [String] = []
        for _ in 0..<Self.limits.errorBudget {
            try? await bad.send(bytes: garbage)
            guard let reply = try await bad.reply(within: 5) else { break }
            replies.append(reply)
        }
        #expect(replies.count == Self.limits.errorBudget)
        #expect(replies.dropLast().allSatisfy { $0.hasPrefix("500 5.5.2 ") }, "\(replies)")
        #expect(replies.last == "421 4.7.0 Too many errors")
        #expect(try await readToClose(bad, within: 5) == [], "closed after the budget")
        try await checkServed(harness, good)
    }

    @Test("a TLS ClientHello on the plain port is not answered as TLS; the idle timeout gives 421 4.4.2 and a close")
    func clientHelloOnPlainPort() async throws {
        let harness = try Harness(limits: Self.limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        #expect(!Self.clientHello.contains(0x0A))
        try await bad.send(bytes: Self.clientHello)
        let started = DispatchTime.now().uptimeNanoseconds
        let closed = try await keepingAlive(good) { try await readToClose(bad, within: 12) }
        let bytes = try #require(closed, "the connection must be closed")
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        #expect(String(decoding: bytes, as: UTF8.self) == "421 4.4.2 Idle timeout\r\n")
        #expect(seconds >= 0.5 && seconds < 12, "closed after \(seconds) s with idle_timeout 3 s")
        try await checkServed(harness, good)
    }

    @Test("plaintext on the implicit-TLS port: no SMTP text is sent and the connection is closed")
    func plaintextOnImplicitTLS() async throws {
        let harness = try Harness(limits: Self.limits, implicitTLS: true)
        defer { harness.stop() }
        let bad = try await RawClient(harness.gateway.boundAddress)
        defer { bad.close() }
        try await bad.send("EHLO plain.test\r\n")
        let bytes = try #require(try await readToClose(bad, within: 12), "the connection must be closed")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("220") && !text.contains("250"), "no SMTP reply in cleartext: \(bytes.prefix(16))")
        // A real TLS client is still served on the same listener.
        let tls = try TLSContext.client(caFile: harness.upstream.certificates.caFile)
        let good = try await AsyncConnection.connect(
            to: harness.gateway.boundAddress, tls: tls, serverName: "localhost", timeout: 5)
        defer { good.close() }
        let greeting = try await good.readLine(maximumLength: 1_000)
        #expect(String(decoding: greeting, as: UTF8.self).hasPrefix("220 "))
    }

    @Test("a half-open client (write side shut after a command) gets its reply, then the gateway closes")
    func halfOpen() async throws {
        let harness = try Harness(limits: Self.limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        try await bad.send("NOOP\r\n")
        bad.connection.shutdownWrite()
        let bytes = try #require(try await readToClose(bad, within: 5), "the gateway must close a half-open session")
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("250 "))
        try await waitUntil { harness.gateway.activeSessionCount == 1 }
        try await checkServed(harness, good)
    }

    @Test("a silent client gets 421 4.4.2 Idle timeout after idle_timeout and is closed")
    func silentClient() async throws {
        let harness = try Harness(limits: Self.limits)
        defer { harness.stop() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let bytes = try #require(try await readToClose(bad, within: 5))
        #expect(String(decoding: bytes, as: UTF8.self) == "421 4.4.2 Idle timeout\r\n")
        let fresh = try await greeted(harness)
        fresh.close()
    }

    /// Limits for the slowloris rows: a 2 s command-line bound, an idle timeout far above it (so only the new
    /// bound can end the session), and no unauthenticated bound unless a row sets one.
    private static var slowLimits: Limits {
        var limits = Self.limits
        limits.idleTimeoutSeconds = 30
        limits.commandLineTimeoutSeconds = 2
        limits.unauthenticatedTimeoutSeconds = 600
        return limits
    }

    /// Sends `byte` every 200 ms for at most `seconds` or until a write fails; returns how long it went on.
    private func dripping(_ client: RawClient, _ byte: UInt8, for seconds: Double) async throws -> Double {
        let connection = client.connection
        let started = DispatchTime.now().uptimeNanoseconds
        return try await withTimeout(seconds + 5) { () async -> Double in
            while Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 < seconds {
                if (try? await connection.write([byte])) == nil { break }
                try? await Task.sleep(nanoseconds: 200_000_000)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        }
    }

    @Test("a slowloris sender (one byte per 200 ms, never a line end) gets 421 4.4.2 at command_line_timeout and a close")
    func slowloris() async throws {
        let harness = try Harness(limits: Self.slowLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        // Every byte is activity (idle_timeout 30 s never fires); only the command-line bound (2 s) can end it.
        let answer: [UInt8]? = try await keepingAlive(good) {
            async let drip = dripping(bad, 0x4E, for: 12)
            let closed = try await readToClose(bad, within: 14)
            _ = try await drip
            return closed
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let bytes = try #require(answer, "the slowloris session was still open after 14 s")
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == "421 4.4.2 Timeout: a command line was not completed within 2 seconds; closing\r\n")
        #expect(seconds >= 1.9 && seconds < 12, "closed after \(seconds) s with command_line_timeout 2 s")
        try await waitUntil { harness.gateway.activeSessionCount == 1 }
        try await checkServed(harness, good)
    }

    @Test("complete commands (NOOP every 300 ms) without a login get 421 4.4.2 at unauthenticated_timeout")
    func neverLogsIn() async throws {
        var limits = Self.slowLimits
        // 5 s: the fresh client below must log in within it even under full-suite load.
        limits.unauthenticatedTimeoutSeconds = 5
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        var replies: [String] = []
        while Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 < 15 {
            guard (try? await bad.send("NOOP\r\n")) != nil, let reply = try await bad.reply(within: 5) else { break }
            replies.append(reply)
            if !reply.hasPrefix("250") { break }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        #expect(replies.count >= 2 && replies.dropLast().allSatisfy { $0.hasPrefix("250") }, "\(replies)")
        #expect(replies.last == "421 4.4.2 Timeout: not logged in within 5 seconds; closing", "\(replies.suffix(2))")
        #expect(seconds >= 4.9 && seconds < 14, "closed after \(seconds) s with unauthenticated_timeout 5 s")
        #expect(try await readToClose(bad, within: 5) != nil, "closed after the reply")
        // A client that logs in in time is not cut at the bound.
        let fresh = try await RawClient(harness.gateway.boundAddress)
        defer { fresh.close() }
        #expect(try await fresh.login()?.hasPrefix("235") == true)
        try await Task.sleep(nanoseconds: 5_500_000_000)
        try await fresh.send("NOOP\r\n")
        #expect(try await fresh.reply(within: 5)?.hasPrefix("250") == true, "a logged-in session outlives the bound")
    }

    @Test("a 1 MiB DATA sent in slow chunks (4 s in all, command_line_timeout 2 s) is not cut and is accepted")
    func slowDataIsNotACommandLine() async throws {
        var limits = Self.slowLimits
        limits.idleTimeoutSeconds = 5
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(try await client.reply()?.hasPrefix("354") == true)
        var message = Array("Subject: slow\r\n\r\n".utf8)
        while message.count < 1_048_576 { message += Array((String(repeating: "z", count: 98) + "\r\n").utf8) }
        // Chunks cut in the middle of lines, 500 ms apart: every chunk is within idle_timeout (5 s), the whole
        // message takes about 4 s, twice the command-line bound.
        let chunk = message.count / 8 + 1
        var offset = 0
        while offset < message.count {
            try await client.send(bytes: Array(message[offset..<min(offset + chunk, message.count)]))
            offset += chunk
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        try await client.send(".\r\n")
        let verdict = try #require(try await client.reply(within: 10))
        #expect(verdict.hasPrefix("250 "), "verdict: \(verdict)")
        #expect(harness.upstream.snapshot.messages.count == 1)
    }

    @Test("1,000 connections from one address: past smtp_sessions_per_address each gets 421 4.7.0; admitted ones are served")
    func thousandConnections() async throws {
        var limits = Self.limits
        limits.idleTimeoutSeconds = 60
        limits.smtpSessionsPerAddress = 20
        limits.smtpSessions = 2_000
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        var clients: [RawClient] = []
        var greetings: [String?] = []
        for _ in 0..<1_000 {
            let client = try await RawClient(harness.gateway.boundAddress)
            clients.append(client)
            greetings.append(try await client.reply(within: 5))
        }
        defer { clients.forEach { $0.close() } }
        let admitted = greetings.filter { $0?.hasPrefix("220 ") == true }.count
        let refused = greetings.filter { $0 == "421 4.7.0 Too many connections from your address (20 open); try again later" }
        #expect(admitted == 19, "19 admitted besides the well-behaved one")
        #expect(refused.count == 1_000 - 19)
        try await checkServedNoFresh(good)
        clients.forEach { $0.close() }
        try await waitUntil { harness.gateway.activeSessionCount == 1 }
        try await checkServed(harness, good)
    }

    private func checkServedNoFresh(_ good: RawClient) async throws {
        try await good.send("NOOP\r\n")
        #expect(try await good.reply(within: 5)?.hasPrefix("250") == true)
    }

    private func waitUntil(_ condition: @escaping () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(condition())
    }
}
