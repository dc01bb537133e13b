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
        let harness = try harness()
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
        let harness = try harness()
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
        let harness = try harness()
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
        let harness = try harness()
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

    @Test("a slowloris sender (one byte per 200 ms) is cut off by a timeout")
    func slowloris() async throws {
        let harness = try harness()
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        let bad = try await greeted(harness)
        defer { bad.close() }
        let connection = bad.connection
        let closedEarly = try await keepingAlive(good) {
            try await withTimeout(10) { () async -> Bool in
                for _ in 0..<25 {
                    if (try? await connection.write([0x78])) == nil { return true }
                    try? await Task.sleep(nanoseconds: 200_000_000)
                }
                return false
            }
        }
        let closed = try await readToClose(connection, within: 0.5)
        try await checkServed(harness, good)
        withKnownIssue("IMAP has no command timeout: the idle timer restarts on every byte (reported, issue 13)") {
            #expect(closedEarly || closed != nil, "the slowloris session was still open after 5 s")
        }
    }

    @Test("1,000 connections from one address are all greeted (IMAP has no per-address limit) and others are served")
    func thousandConnections() async throws {
        var limits = hostileLimits
        limits.idleTimeoutSeconds = 60
        let harness = try harness(limits)
        defer { harness.stop() }
        let good = try await greeted(harness)
        defer { good.close() }
        var clients: [RawIMAPClient] = []
        defer { clients.forEach { $0.close() } }
        var greeted = 0
        for _ in 0..<1_000 {
            let client = try await RawIMAPClient(harness.gateway.boundAddress)
            clients.append(client)
            if try await client.line(within: 5)?.hasPrefix("* OK ") == true { greeted += 1 }
        }
        #expect(greeted == 1_000)
        try await checkServed(harness, good)
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
        #expect(try await fresh.pop3Login()?.hasPrefix("+OK") == true, "a new client logs in")
    }

    @Test("an overlong command line gets -ERR Command line too long; the listener goes on")
    func overlongLine() async throws {
        let listener = try Listener()
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
        let listener = try Listener()
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

    @Test("1,000 connections from one address are all greeted (POP3 has no per-address limit) and others are served")
    func thousandConnections() async throws {
        var limits = hostileLimits
        limits.idleTimeoutSeconds = 60
        let listener = try Listener(limits: limits)
        defer { listener.stop() }
        let good = try await greeted(listener)
        defer { good.close() }
        var clients: [RawIMAPClient] = []
        defer { clients.forEach { $0.close() } }
        var greeted = 0
        for _ in 0..<1_000 {
            let client = try await RawIMAPClient(listener.gateway.boundAddress)
            clients.append(client)
            if try await client.line(within: 5)?.hasPrefix("+OK") == true { greeted += 1 }
        }
        #expect(greeted == 1_000)
        try await checkServed(listener, good)
    }
}
