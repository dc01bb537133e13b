// GatewayTests/Hostile: hostile input to real IMAP and POP3 listeners on 127.0.0.1:0 (issue 13, point 4). Each row
// asserts the exact answer or close, and that a well-behaved client opened before the abuse is answered during and
// a new client after it.
import Dispatch
import Foundation
import Logging
import MailCore
import MailGateTesting
import TLS
import Testing
import Synchronization
import Transport

@testable import Gateway

/// Small timeouts so that the timeout rows take seconds.
private let hostileLimits: Limits = {
    var limits = Limits.standard
    limits.idleTimeoutSeconds = 3
    limits.handshakeTimeoutSeconds = 4
    return limits
}()

/// For the rows that test no timeout: a well-behaved client that waits a few seconds between its steps on a loaded
/// machine (the whole suite runs in parallel) must not meet the idle timeout.
private let patientLimits: Limits = {
    var limits = hostileLimits
    limits.idleTimeoutSeconds = 60
    limits.handshakeTimeoutSeconds = 60
    return limits
}()

/// Everything the peer sends until it closes; nil if it is still open after `seconds`.
private func readToClose(_ connection: AsyncConnection, within seconds: Double) async throws -> String? {
    do {
        return try await withTimeout(seconds) { () async -> String in
            var all: [UInt8] = []
            while true {
                guard let chunk = try? await connection.readAvailable() else { return String(decoding: all, as: UTF8.self) }
                all += chunk
            }
        }
    } catch is TimedOut {
        return nil
    }
}

/// Runs `body` while the well-behaved client sends `G NOOP` every 300 ms (so its own idle timer never fires);
/// expects every NOOP meanwhile answered OK, and at least one.
private func keepingAlive<T>(_ good: RawIMAPClient, _ body: () async throws -> T) async throws -> T {
    let stop = Mutex(false)
    let exchanges = Task { () -> (answered: Int, failed: Int) in
        var answered = 0
        var failed = 0
        while !stop.withLock({ $0 }) {
            do {
                try await good.send("K\(answered) NOOP\r\n")
                let lines = try await good.until("K\(answered)", within: 5)
                if lines.last?.hasPrefix("K\(answered) OK") == true { answered += 1 } else { failed += 1 }
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

/// Limits for the slowloris rows: a 2 s command-line bound, an idle timeout far above it (so only the new bound
/// can end the session), and no unauthenticated bound unless a row sets one.
private let slowLimits: Limits = {
    var limits = hostileLimits
    limits.idleTimeoutSeconds = 30
    limits.commandLineTimeoutSeconds = 2
    limits.unauthenticatedTimeoutSeconds = 600
    return limits
}()

/// Sends `byte` every 200 ms for at most `seconds` or until a write fails.
private func dripping(_ connection: AsyncConnection, _ byte: UInt8, for seconds: Double) async throws {
    let started = DispatchTime.now().uptimeNanoseconds
    _ = try await withTimeout(seconds + 5) { () async -> Bool in
        while Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 < seconds {
            if (try? await connection.write([byte])) == nil { return true }
            try? await Task.sleep(nanoseconds: 200_000_000)
        }
        return false
    }
}

private func secondsSince(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

@Suite("Hostile input: IMAP", .serialized)
struct IMAPHostileInputTests {
    private func harness(_ limits: Limits = hostileLimits) throws -> IMAPGatewayHarness {
        try IMAPGatewayHarness(limits: limits)
    }

    private func greeted(_ harness: IMAPGatewayHarness) async throws -> RawIMAPClient {
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        let greeting = try await client.line(within: 5)
        #expect(greeting?.hasPrefix("* OK ") == true, "greeting: \(greeting ?? "nil")")
        return client
    }

    /// The well-behaved client is answered; a new client is greeted and answered.
    private func checkServed(_ harness: IMAPGatewayHarness, _ good: RawIMAPClient) async throws {
        try await good.send("G1 NOOP\r\n")
        let noop = try await good.until("G1", within: 5)
        #expect(noop.last?.hasPrefix("G1 OK") == true, "the well-behaved client's NOOP: \(noop)")
        let fresh = try await greeted(harness)
        defer { fresh.close() }
        try await fresh.send("F1 CAPABILITY\r\n")
        let capability = try await fresh.until("F1", within: 5)
        #expect(capability.last?.hasPrefix("F1 OK") == true, "a new client's CAPABILITY: \(capability)")
    }

    @Test("an overlong command line gets * BYE Line too long and a close")
    func overlongLine() async throws {
        let harness = try harness(patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        // 20 KB: past the 8 KiB line bound, small enough to sit in the socket buffers (see the report on 100 KB).
        try? await bad.send("A1 NOOP " + String(repeating: "x", count: 20_000) + "\r\n")
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed")
        #expect(answer == "* BYE Line too long\r\n", "answer: \(answer.prefix(200))")
        try await checkServed(harness, good)
    }

    @Test("the literal {4294967295} before login gets NO [TOOBIG] and no continuation; the session goes on")
    func endlessLiteralBeforeLogin() async throws {
        let harness = try harness(patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        try await bad.send("A1 LOGIN {4294967295}\r\n")
        let answer = try #require(try await bad.line(within: 5))
        #expect(answer == "A1 NO [TOOBIG] Literal too large before login")
        try await checkServed(harness, good)
    }

    @Test("the literal {4294967295} in APPEND after login gets NO [TOOBIG], never a continuation")
    func endlessLiteralAppend() async throws {
        let harness = try harness(patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { bad.close() }
        let login = try await bad.login()
        #expect(login.last?.hasPrefix("L1 OK") == true, "login: \(login)")
        try await bad.send("A1 APPEND INBOX {4294967295}\r\n")
        let answer = try #require(try await bad.line(within: 5))
        #expect(answer.hasPrefix("A1 NO [TOOBIG] "), "answer: \(answer)")
        try await checkServed(harness, good)
    }

    @Test("a bounded literal that is announced and never completed ends with * BYE at the idle timeout")
    func literalNeverCompleted() async throws {
        let harness = try harness()
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        try await bad.send("A1 LOGIN {1000}\r\n")
        let goAhead = try #require(try await bad.line(within: 5))
        #expect(goAhead.hasPrefix("+"), "continuation: \(goAhead)")
        try await bad.send(String(repeating: "u", count: 10))
        let closed = try await keepingAlive(good) { try await readToClose(bad.connection, within: 12) }
        let answer = try #require(closed, "must be closed by the timeout")
        #expect(answer == "* BYE Autologout; idle for too long\r\n", "answer: \(answer)")
        try await checkServed(harness, good)
    }

    @Test("binary garbage (NUL, 0xFF) gets BAD per line and * BYE Too many errors at the error budget")
    func binaryGarbage() async throws {
        let harness = try harness(patientLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        for _ in 0..<hostileLimits.errorBudget { try? await bad.send(bytes: [0x00, 0xFF, 0x41, 0x00, 0xFE, 0x0D, 0x0A]) }
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed")
        let lines = answer.split(separator: "\r\n").map(String.init)
        #expect(lines.count == hostileLimits.errorBudget + 1, "lines: \(lines)")
        #expect(lines.dropLast().allSatisfy { $0.contains(" BAD ") }, "\(lines)")
        #expect(lines.last == "* BYE Too many errors")
        try await checkServed(harness, good)
    }

    @Test("a half-open client gets its answer, then the gateway closes")
    func halfOpen() async throws {
        let harness = try harness()
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        try await bad.send("A1 NOOP\r\n")
        bad.connection.shutdownWrite()
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed")
        #expect(answer.hasPrefix("A1 OK"), "answer: \(answer)")
        try await checkServed(harness, good)
    }

    @Test("plaintext on the implicit-TLS port: no IMAP text is sent and the connection is closed")
    func plaintextOnImplicitTLS() async throws {
        let harness = try IMAPGatewayHarness(limits: hostileLimits, implicitTLS: true)
        defer { harness.stop() }
        let bad = try await AsyncConnection.connect(to: harness.gateway.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { bad.close() }
        try await bad.write(Array("A1 CAPABILITY\r\n".utf8))
        let answer = try #require(try await readToClose(bad, within: 12), "must be closed")
        #expect(!answer.contains("* OK") && !answer.contains("A1 "), "no IMAP text in cleartext")
        let good = try await RawIMAPClient(harness.gateway.boundAddress, tlsCA: harness.certificates?.caFile)
        defer { good.close() }
        #expect(try await good.line(within: 5)?.hasPrefix("* OK ") == true)
    }

    @Test("a slowloris sender (one byte per 200 ms) gets * BYE at command_line_timeout and a close")
    func slowloris() async throws {
        let harness = try harness(slowLimits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        let answer = try await keepingAlive(good) { () async throws -> String? in
            async let drip: Void = dripping(bad.connection, 0x78, for: 12)
            let closed = try await readToClose(bad.connection, within: 14)
            try await drip
            return closed
        }
        let seconds = secondsSince(started)
        let text = try #require(answer, "the slowloris session was still open after 14 s")
        #expect(text == "* BYE Autologout; a command line was not completed within 2 seconds\r\n", "answer: \(text)")
        #expect(seconds >= 1.9 && seconds < 12, "closed after \(seconds) s with command_line_timeout 2 s")
        try await checkServed(harness, good)
    }

    @Test("a logged-in slowloris (one byte per 200 ms) is cut the same way")
    func slowlorisAfterLogin() async throws {
        let harness = try harness(slowLimits)
        defer { harness.stop() }
        let bad = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { bad.close() }
        #expect(try await bad.login().last?.hasPrefix("L1 OK") == true)
        try await bad.send("S1 SELECT INBOX\r\n")
        #expect(try await bad.until("S1", within: 5).last?.hasPrefix("S1 OK") == true)
        let started = DispatchTime.now().uptimeNanoseconds
        async let drip: Void = dripping(bad.connection, 0x78, for: 12)
        let answer = try await readToClose(bad.connection, within: 14)
        try await drip
        let seconds = secondsSince(started)
        let text = try #require(answer, "still open after 14 s")
        #expect(text == "* BYE Autologout; a command line was not completed within 2 seconds\r\n", "answer: \(text)")
        #expect(seconds >= 1.9 && seconds < 12, "closed after \(seconds) s")
    }

    @Test("complete commands without a login (NOOP every 300 ms) get * BYE at unauthenticated_timeout")
    func neverLogsIn() async throws {
        var limits = slowLimits
        limits.unauthenticatedTimeoutSeconds = 5  // the fresh login below must fit in it under load
        let harness = try harness(limits)
        defer { harness.stop() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        var answered = 0
        var last: String?
        var n = 0
        while secondsSince(started) < 15 {
            n += 1
            guard (try? await bad.send("N\(n) NOOP\r\n")) != nil else { break }
            let lines = try await bad.until("N\(n)", within: 5)
            last = lines.last
            guard lines.last?.hasPrefix("N\(n) OK") == true else { break }
            answered += 1
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        let seconds = secondsSince(started)
        #expect(answered >= 2, "NOOPs answered before the bound: \(answered)")
        #expect(last == "* BYE Autologout; not logged in within 5 seconds", "last: \(last ?? "nil")")
        #expect(seconds >= 4.9 && seconds < 14, "closed after \(seconds) s with unauthenticated_timeout 5 s")
        // A client that logs in is not cut at the bound.
        let fresh = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { fresh.close() }
        #expect(try await fresh.login().last?.hasPrefix("L1 OK") == true)
        try await Task.sleep(nanoseconds: 5_500_000_000)
        try await fresh.send("F1 NOOP\r\n")
        #expect(try await fresh.until("F1", within: 5).last?.hasPrefix("F1 OK") == true, "logged in: outlives the bound")
    }

    @Test("a 1 MiB APPEND literal sent in slow chunks (4 s in all, command_line_timeout 2 s) completes")
    func slowAppendIsNotACommandLine() async throws {
        var limits = slowLimits
        limits.idleTimeoutSeconds = 5
        let harness = try harness(limits)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login().last?.hasPrefix("L1 OK") == true)
        var message = Array("Subject: slow\r\n\r\n".utf8)
        while message.count < 1_048_576 { message += Array((String(repeating: "a", count: 98) + "\r\n").utf8) }
        try await client.send("A1 APPEND INBOX {\(message.count)}\r\n")
        let goAhead = try #require(try await client.line(within: 5))
        #expect(goAhead.hasPrefix("+"), "continuation: \(goAhead)")
        let chunk = message.count / 8 + 1
        var offset = 0
        while offset < message.count {
            try await client.send(bytes: Array(message[offset..<min(offset + chunk, message.count)]))
            offset += chunk
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        try await client.send("\r\n")
        let answer = try await client.until("A1", within: 10)
        #expect(answer.last?.hasPrefix("A1 OK") == true, "answer: \(answer)")
        #expect(harness.upstream.snapshot.appended.last == message)
    }

    @Test("1,000 connections from one address: past imap_sessions_per_address * BYE [UNAVAILABLE]; slots return")
    func thousandConnections() async throws {
        var limits = hostileLimits
        limits.idleTimeoutSeconds = 60
        limits.imapSessionsPerAddress = 20
        let harness = try harness(limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        var clients: [RawIMAPClient] = []
        defer { clients.forEach { $0.close() } }
        var greetings: [String?] = []
        for _ in 0..<1_000 {
            let client = try await RawIMAPClient(harness.gateway.boundAddress)
            clients.append(client)
            greetings.append(try await client.line(within: 5))
        }
        let admitted = greetings.filter { $0?.hasPrefix("* OK ") == true }.count
        let refused = greetings.filter {
            $0 == "* BYE [UNAVAILABLE] Too many connections from your address (20 open); try again later"
        }.count
        #expect(admitted == 19, "19 admitted besides the well-behaved one")
        #expect(refused == 1_000 - 19)
        try await checkServedNoFresh(good)
        clients.forEach { $0.close() }
        clients = []
        try await waitUntil { harness.gateway.activeSessionCount == 1 }
        // The slots came back: 19 new sessions are greeted again, the 20th refused.
        for _ in 0..<20 {
            let client = try await RawIMAPClient(harness.gateway.boundAddress)
            clients.append(client)
            greetings.append(try await client.line(within: 5))
        }
        #expect(greetings.suffix(20).filter { $0?.hasPrefix("* OK ") == true }.count == 19)
        #expect(greetings.last == "* BYE [UNAVAILABLE] Too many connections from your address (20 open); try again later")
        try await checkServedNoFresh(good)
    }

    private func waitUntil(_ condition: @escaping () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(condition())
    }

    private func checkServedNoFresh(_ good: RawIMAPClient) async throws {
        try await good.send("G2 NOOP\r\n")
        #expect(try await good.until("G2", within: 5).last?.hasPrefix("G2 OK") == true)
    }
}

@Suite("Hostile input: POP3", .serialized)
struct POP3HostileInputTests {
    /// A POP3 listener with a local maildrop and the small timeouts.
    final class Listener: @unchecked Sendable {
        // @unchecked Sendable: set up once.
        let gateway: POP3Gateway
        init(implicitTLS: Bool = false, limits: Limits = hostileLimits) throws {
            let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
            var authSettings = LocalAuthenticator.Settings()
            authSettings.initialFailureDelay = 0.05
            var tls: TLSContext?
            if implicitTLS {
                let made = try TestCertificates.make()
                tls = try TLSContext.server(certificateChainFile: made.leafChainFile, privateKeyFile: made.leafKeyFile)
            }
            gateway = try POP3Gateway(
                listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: implicitTLS, tls: tls,
                configuration: POP3GatewayConfiguration(listenerName: "pop3", limits: limits),
                authenticator: LocalAuthenticator(lookup: passwords, settings: authSettings),
                credentials: FakeCredentials(), resolver: { _ in nil },
                localMaildrops: FakeLocalMaildrops(messages: []), imapSessionCap: nil, counters: RecordingCounters(),
                logger: Logger(label: "mailgate.test.pop3"))
        }
        func stop() { gateway.stop() }
    }

    private func greeted(_ listener: Listener) async throws -> RawIMAPClient {
        let client = try await RawIMAPClient(listener.gateway.boundAddress)
        let greeting = try await client.line(within: 5)
        #expect(greeting?.hasPrefix("+OK") == true, "greeting: \(greeting ?? "nil")")
        return client
    }

    private func checkServed(_ listener: Listener, _ good: RawIMAPClient) async throws {
        try await good.send("CAPA\r\n")
        #expect(try await good.line(within: 5)?.hasPrefix("+OK") == true, "the well-behaved client's CAPA")
        _ = try await good.multiline(within: 5)
        let fresh = try await greeted(listener)
        defer { fresh.close() }
        let login = try await fresh.pop3Login()
        #expect(login?.hasPrefix("+OK") == true, "a new client logs in: \(login ?? "nil")")
    }

    @Test("an overlong command line gets -ERR Command line too long; the listener goes on")
    func overlongLine() async throws {
        let listener = try Listener(limits: patientLimits)
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        try? await bad.send("USER " + String(repeating: "x", count: 100_000) + "\r\n")
        let answer = try #require(try await bad.line(within: 5))
        #expect(answer.hasPrefix("-ERR Command line too long (at most "), "answer: \(answer)")
        try await checkServed(listener, good)
    }

    @Test("binary garbage gets -ERR per line and -ERR Too many errors with a close at the error budget")
    func binaryGarbage() async throws {
        let listener = try Listener(limits: patientLimits)
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        for _ in 0..<hostileLimits.errorBudget { try? await bad.send(bytes: [0x00, 0xFF, 0x41, 0x00, 0xFE, 0x0D, 0x0A]) }
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed")
        let lines = answer.split(separator: "\r\n").map(String.init)
        #expect(lines.count == hostileLimits.errorBudget + 1, "\(lines)")
        #expect(lines.dropLast().allSatisfy { $0 == "-ERR Invalid command: the line contains control characters" }, "\(lines)")
        #expect(lines.last == "-ERR Too many errors; closing the connection")
        try await checkServed(listener, good)
    }

    @Test("a half-open client gets its answer, then the gateway closes")
    func halfOpen() async throws {
        let listener = try Listener()
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        try await bad.send("NOOP\r\n")
        bad.connection.shutdownWrite()
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed")
        #expect(answer == "-ERR Log in first\r\n", "answer: \(answer)")
        try await checkServed(listener, good)
    }

    @Test("a silent client gets -ERR Idle for too long and a close at the idle timeout")
    func silentClient() async throws {
        let listener = try Listener()
        defer { listener.stop() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        let answer = try #require(try await readToClose(bad.connection, within: 12), "must be closed by the timeout")
        #expect(answer == "-ERR Idle for too long; closing (nothing was deleted)\r\n", "answer: \(answer)")
    }

    @Test("plaintext on the implicit-TLS port: no POP3 text and a close")
    func plaintextOnImplicitTLS() async throws {
        let listener = try Listener(implicitTLS: true)
        defer { listener.stop() }
        let bad = try await AsyncConnection.connect(to: listener.gateway.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { bad.close() }
        try await bad.write(Array("CAPA\r\n".utf8))
        let answer = try #require(try await readToClose(bad, within: 12), "must be closed")
        #expect(!answer.contains("+OK") && !answer.contains("-ERR"), "no POP3 text in cleartext")
    }

    @Test("a slowloris sender (one byte per 200 ms) gets -ERR at command_line_timeout and a close")
    func slowloris() async throws {
        let listener = try Listener(limits: slowLimits)
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        async let drip: Void = dripping(bad.connection, 0x78, for: 12)
        let answer = try await readToClose(bad.connection, within: 14)
        try await drip
        let seconds = secondsSince(started)
        let text = try #require(answer, "the slowloris session was still open after 14 s")
        #expect(
            text == "-ERR A command line was not completed within 2 seconds; closing (nothing was deleted)\r\n",
            "answer: \(text)")
        #expect(seconds >= 1.9 && seconds < 12, "closed after \(seconds) s with command_line_timeout 2 s")
        try await checkServed(listener, good)
    }

    @Test("complete commands without a login (NOOP every 300 ms) get -ERR at unauthenticated_timeout")
    func neverLogsIn() async throws {
        var limits = slowLimits
        limits.unauthenticatedTimeoutSeconds = 5  // the fresh login below must fit in it under load
        let listener = try Listener(limits: limits)
        defer { listener.stop() }
        let bad = try await greeted(listener)
        defer { bad.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        var answers: [String] = []
        // CAPA is allowed before login (NOOP would spend the error budget).
        while secondsSince(started) < 15 {
            guard (try? await bad.send("CAPA\r\n")) != nil, let line = try await bad.line(within: 5) else { break }
            answers.append(line)
            if !line.hasPrefix("+OK") { break }
            _ = try? await bad.multiline(within: 5)
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        let seconds = secondsSince(started)
        #expect(answers.count >= 2, "\(answers)")
        #expect(answers.last == "-ERR Not logged in within 5 seconds; closing", "\(answers.suffix(2))")
        #expect(seconds >= 4.9 && seconds < 14, "closed after \(seconds) s with unauthenticated_timeout 5 s")
        let fresh = try await greeted(listener)
        defer { fresh.close() }
        #expect(try await fresh.pop3Login()?.hasPrefix("+OK") == true)
        try await Task.sleep(nanoseconds: 5_500_000_000)
        try await fresh.send("NOOP\r\n")
        #expect(try await fresh.line(within: 5)?.hasPrefix("+OK") == true, "logged in: outlives the bound")
    }

    @Test("1,000 connections from one address: past pop3_sessions_per_address -ERR [SYS/TEMP]; slots return")
    func thousandConnections() async throws {
        var limits = hostileLimits
        limits.idleTimeoutSeconds = 60
        limits.pop3SessionsPerAddress = 20
        let listener = try Listener(limits: limits)
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        var clients: [RawIMAPClient] = []
        defer { clients.forEach { $0.close() } }
        var greetings: [String?] = []
        for _ in 0..<1_000 {
            let client = try await RawIMAPClient(listener.gateway.boundAddress)
            clients.append(client)
            greetings.append(try await client.line(within: 5))
        }
        let refusal = "-ERR [SYS/TEMP] Too many connections from your address (20 open); try again later"
        #expect(greetings.filter { $0?.hasPrefix("+OK") == true }.count == 19, "19 admitted besides the good one")
        #expect(greetings.filter { $0 == refusal }.count == 1_000 - 19)
        clients.forEach { $0.close() }
        clients = []
        for _ in 0..<200 where listener.gateway.activeSessionCount != 1 { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(listener.gateway.activeSessionCount == 1)
        for _ in 0..<20 {
            let client = try await RawIMAPClient(listener.gateway.boundAddress)
            clients.append(client)
            greetings.append(try await client.line(within: 5))
        }
        #expect(greetings.suffix(20).filter { $0?.hasPrefix("+OK") == true }.count == 19, "the slots came back")
        #expect(greetings.last == refusal)
        clients.forEach { $0.close() }
        clients = []
        for _ in 0..<200 where listener.gateway.activeSessionCount != 1 { try await Task.sleep(nanoseconds: 50_000_000) }
        try await checkServed(listener, good)
    }
}
