// GatewayTests/POP3: POP3Gateway in-process with a fake local maildrop (the download store's seam): login, the
// transaction commands over the wire, deletions only at QUIT, IN-USE, STLS and pop3s, back-pressure on RETR.
import Dispatch
import Foundation
import Logging
import MailCore
import MailGateTesting
import POP3
import Synchronization
import TLS
import Testing
import Transport

@testable import Gateway

/// A maildrop in memory that records what the session asked of it.
final class FakeMaildrop: POP3Maildrop, @unchecked Sendable {
    // @unchecked Sendable: state behind `record`; callbacks run on the session queue.
    struct Record: Sendable {
        var opened = 0
        var retrieved: [(index: Int, lines: Int?)] = []
        var committed: [[Int]] = []
        var closed = 0
        var commitsDone = 0
        /// `close` came while a commit was still running.
        var closedDuringCommit = false
        /// Chunks handed out whose resume had not come yet, at most.
        var maximumOutstanding = 0
        var chunksHandedOut = 0
    }

    let messages: [[UInt8]]
    let chunkSize: Int
    let openFailure: MaildropError?
    let queue: DispatchQueue
    var commitDelay: Double = 0
    let record = Mutex(Record())
    private var outstanding = 0

    init(messages: [[UInt8]], chunkSize: Int, openFailure: MaildropError?, queue: DispatchQueue) {
        self.messages = messages
        self.chunkSize = chunkSize
        self.openFailure = openFailure
        self.queue = queue
    }

    func open(_ done: @escaping @Sendable (Result<[MaildropMessage], MaildropError>) -> Void) {
        record.withLock { $0.opened += 1 }
        let list = messages.enumerated().map { MaildropMessage(uidl: "uid-\($0.offset + 1)", size: $0.element.count) }
        let failure = openFailure
        queue.async { done(failure.map { .failure($0) } ?? .success(list)) }
    }

    func retrieve(
        _ index: Int, bodyLines: Int?, chunk: @escaping @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable (Result<Void, MaildropError>) -> Void
    ) {
        record.withLock { $0.retrieved.append((index, bodyLines)) }
        var data = messages[index]
        if let bodyLines {
            var filter = POP3TopFilter(bodyLines: bodyLines)
            data = filter.filter(data)
        }
        send(data[...], chunk: chunk, done: done)
    }

    private func send(
        _ rest: ArraySlice<UInt8>, chunk: @escaping @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable (Result<Void, MaildropError>) -> Void
    ) {
        guard !rest.isEmpty else { return queue.async { done(.success(())) } }
        let piece = Array(rest.prefix(chunkSize))
        let remaining = rest.dropFirst(chunkSize)
        outstanding += 1
        let current = outstanding
        record.withLock {
            $0.maximumOutstanding = max($0.maximumOutstanding, current)
            $0.chunksHandedOut += 1
        }
        queue.async { [self] in
            chunk(piece) { [self] in
                queue.async { [self] in
                    outstanding -= 1
                    send(remaining, chunk: chunk, done: done)
                }
            }
        }
    }

    func commit(deleting indices: [Int], _ done: @escaping @Sendable (Result<Void, MaildropError>) -> Void) {
        record.withLock { $0.committed.append(indices) }
        queue.asyncAfter(deadline: .now() + commitDelay) { [self] in
            record.withLock { $0.commitsDone += 1 }
            done(.success(()))
        }
    }

    func close() {
        record.withLock { record in
            record.closed += 1
            if record.commitsDone < record.committed.count { record.closedDuringCommit = true }
        }
    }
}

final class FakeLocalMaildrops: LocalMaildropProvider, @unchecked Sendable {
    let messages: [[UInt8]]
    let chunkSize: Int
    let openFailure: MaildropError?
    let commitDelay: Double
    let made = Mutex<[FakeMaildrop]>([])

    init(messages: [[UInt8]], chunkSize: Int = 65_536, openFailure: MaildropError? = nil, commitDelay: Double = 0) {
        self.messages = messages
        self.chunkSize = chunkSize
        self.openFailure = openFailure
        self.commitDelay = commitDelay
    }

    func localMaildrop(for accountEmail: String, queue: DispatchQueue) -> (any POP3Maildrop)? {
        let maildrop = FakeMaildrop(messages: messages, chunkSize: chunkSize, openFailure: openFailure, queue: queue)
        maildrop.commitDelay = commitDelay
        made.withLock { $0.append(maildrop) }
        return maildrop
    }

    var last: FakeMaildrop? { made.withLock { $0.last } }
}

final class RecordingCounters: GatewayAmountCounters, @unchecked Sendable {
    let counts = Mutex<[String: Int]>([:])
    func increment(_ name: String, account: String?, listener: String) { add(name, amount: 1, account: account, listener: listener) }
    func add(_ name: String, amount: Int, account: String?, listener: String) {
        counts.withLock { $0["\(name) \(account ?? "-") \(listener)", default: 0] += amount }
    }
    func value(_ name: String, account: String? = "alice@contoso.com", listener: String = "pop3") -> Int {
        counts.withLock { $0["\(name) \(account ?? "-") \(listener)", default: 0] }
    }
}

final class POP3GatewayHarness: @unchecked Sendable {
    let gateway: POP3Gateway
    let provider: FakeLocalMaildrops
    let counters = RecordingCounters()
    let certificates: TestCertificateSet?
    let credentials = FakeCredentials()

    init(
        provider: FakeLocalMaildrops?, certificate: Bool = false, implicitTLS: Bool = false,
        imapSessionCap: IMAPUpstreamSessionCap? = nil, resolver: @escaping POP3UpstreamResolver = { _ in nil }
    ) throws {
        self.provider = provider ?? FakeLocalMaildrops(messages: [])
        let localMaildrops: FakeLocalMaildrops? = provider
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        var authSettings = LocalAuthenticator.Settings()
        authSettings.initialFailureDelay = 0.05
        var tls: TLSContext?
        if certificate || implicitTLS {
            let made = try TestCertificates.make()
            certificates = made
            tls = try TLSContext.server(certificateChainFile: made.leafChainFile, privateKeyFile: made.leafKeyFile)
        } else {
            certificates = nil
        }
        gateway = try POP3Gateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: implicitTLS, tls: tls,
            configuration: POP3GatewayConfiguration(listenerName: implicitTLS ? "pop3s" : "pop3"),
            authenticator: LocalAuthenticator(lookup: passwords, settings: authSettings), credentials: credentials,
            resolver: resolver, localMaildrops: localMaildrops, imapSessionCap: imapSessionCap, counters: counters, logger: Logger(label: "mailgate.test.pop3"))
    }

    func stop() { gateway.stop() }

    func client(tls: Bool = false) async throws -> RawIMAPClient {
        try await RawIMAPClient(gateway.boundAddress, tlsCA: tls ? certificates?.caFile : nil)
    }

    /// Waits (bounded) until `condition` holds.
    func wait(_ seconds: Double = 5, until condition: () -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        return condition()
    }
}

extension RawIMAPClient {
    /// The lines of a multi-line response after its status line, un-stuffed, through the `.` line (not included).
    func multiline(within seconds: Double = 30) async throws -> [String] {
        var lines: [String] = []
        while let line = try await line(within: seconds) {
            if line == "." { return lines }
            lines.append(line.hasPrefix(".") ? String(line.dropFirst()) : line)
        }
        throw TransportError.closedByPeer
    }

    func pop3Login(password: String = "secret") async throws -> String? {
        try await send("USER alice@contoso.com\r\n")
        _ = try await line()
        try await send("PASS \(password)\r\n")
        return try await line()
    }
}

@Suite("POP3 gateway with a local maildrop", .serialized)
struct POP3GatewayTests {
    static let first = Array("From: a@b.c\r\nSubject: one\r\n\r\nline 1\r\n.dotted\r\n.\r\nline 4\r\n".utf8)
    static let second = Array("Subject: two\r\n\r\nbody\r\n".utf8)

    @Test("login, STAT, LIST, UIDL, RETR un-stuffs to the exact bytes, TOP; DELE + QUIT commits; counters")
    func transaction() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.first, Self.second]))
        defer { harness.stop() }
        let client = try await harness.client()
        defer { client.close() }
        #expect(try await client.line() == "+OK MailGate POP3 ready")
        let login = try await client.pop3Login()
        #expect(login == "+OK Logged in; 2 messages (\(Self.first.count + Self.second.count) octets)")
        try await client.send("STAT\r\nLIST\r\n")
        #expect(try await client.line() == "+OK 2 \(Self.first.count + Self.second.count)")
        #expect(try await client.line()?.hasPrefix("+OK 2 messages") == true)
        #expect(try await client.multiline() == ["1 \(Self.first.count)", "2 \(Self.second.count)"])
        try await client.send("UIDL\r\n")
        _ = try await client.line()
        #expect(try await client.multiline() == ["1 uid-1", "2 uid-2"])
        try await client.send("RETR 1\r\n")
        #expect(try await client.line() == "+OK \(Self.first.count) octets")
        let body = try await client.multiline().map { $0 + "\r\n" }.joined()
        #expect(Array(body.utf8) == Self.first)
        try await client.send("TOP 1 2\r\n")
        _ = try await client.line()
        #expect(try await client.multiline() == ["From: a@b.c", "Subject: one", "", "line 1", ".dotted"])
        try await client.send("DELE 2\r\nQUIT\r\n")
        #expect(try await client.line() == "+OK Message 2 deleted")
        #expect(try await client.line() == "+OK MailGate POP3 signing off (1 message deleted)")
        let maildrop = try #require(harness.provider.last)
        #expect(maildrop.record.withLock { $0.committed } == [[1]])
        #expect(try await harness.wait { maildrop.record.withLock { $0.closed } == 1 })
        #expect(try await harness.wait { harness.counters.value("pop3.dele") == 1 })
        #expect(harness.counters.value("pop3.login.ok") == 1)
        #expect(harness.counters.value("pop3.retr") == 1)
        #expect(harness.counters.value("pop3.retr.bytes") == Self.first.count)
        #expect(harness.counters.value("pop3.sessions", account: nil) == 1)
    }

    @Test("DELE then a dropped connection: nothing is committed, the maildrop is closed, the lock is free again")
    func dropDeletesNothing() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.first]))
        defer { harness.stop() }
        let client = try await harness.client()
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("DELE 1\r\n")
        #expect(try await client.line() == "+OK Message 1 deleted")
        client.close()
        let maildrop = try #require(harness.provider.last)
        #expect(try await harness.wait { maildrop.record.withLock { $0.closed } == 1 })
        #expect(maildrop.record.withLock { $0.committed }.isEmpty)
        let again = try await harness.client()
        defer { again.close() }
        _ = try await again.line()
        #expect(try await again.pop3Login()?.hasPrefix("+OK Logged in") == true)
    }

    @Test("a client that leaves right after QUIT: the deletions it asked for still finish, then the maildrop closes")
    func leaveDuringUpdate() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.first], commitDelay: 0.5))
        defer { harness.stop() }
        let client = try await harness.client()
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("DELE 1\r\nQUIT\r\n")
        #expect(try await client.line() == "+OK Message 1 deleted")
        client.close()
        let maildrop = try #require(harness.provider.last)
        #expect(try await harness.wait { maildrop.record.withLock { $0.closed } == 1 })
        let record = maildrop.record.withLock { $0 }
        #expect(record.committed == [[0]] && record.commitsDone == 1)
        #expect(!record.closedDuringCommit)
        #expect(try await harness.wait { harness.counters.value("pop3.dele") == 1 })
    }

    @Test("a wrong password gets -ERR [AUTH] and the maildrop is never opened; a second session gets -ERR [IN-USE]")
    func wrongPasswordAndInUse() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.first]))
        defer { harness.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login(password: "wrong") == "-ERR [AUTH] Authentication failed")
        #expect(harness.provider.made.withLock { $0.count } == 0)
        #expect(try await harness.wait { harness.counters.value("pop3.login.failed") == 1 })
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in") == true)
        let second = try await harness.client()
        defer { second.close() }
        _ = try await second.line()
        #expect(try await second.pop3Login()?.hasPrefix("-ERR [IN-USE] ") == true)
    }

    @Test("a maildrop that cannot open: -ERR [SYS/TEMP] and the client may try again")
    func openFailure() async throws {
        let harness = try POP3GatewayHarness(
            provider: FakeLocalMaildrops(messages: [], openFailure: .temporary("The store is busy")))
        defer { harness.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login() == "-ERR [SYS/TEMP] The store is busy; try again later")
        try await client.send("QUIT\r\n")
        #expect(try await client.line() == "+OK MailGate POP3 signing off")
    }

    @Test("STLS with a certificate: CAPA offers it, the handshake runs, the login works over TLS")
    func stls() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.second]), certificate: true)
        defer { harness.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        try await client.send("CAPA\r\n")
        _ = try await client.line()
        #expect(try await client.multiline().contains("STLS"))
        try await client.send("STLS\r\n")
        #expect(try await client.line() == "+OK Begin TLS negotiation")
        try await client.startTLS(caFile: try #require(harness.certificates?.caFile))
        try await client.send("CAPA\r\n")
        _ = try await client.line()
        #expect(!(try await client.multiline().contains("STLS")))
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in; 1 message ") == true)
    }

    @Test("pop3s: implicit TLS from the first byte")
    func implicitTLS() async throws {
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [Self.second]), implicitTLS: true)
        defer { harness.stop() }
        let client = try await harness.client(tls: true)
        defer { client.close() }
        #expect(try await client.line() == "+OK MailGate POP3 ready")
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in") == true)
        #expect(try await harness.wait { harness.counters.value("pop3.login.ok", listener: "pop3s") == 1 })
    }

    @Test("RETR of 20 MiB to a client that does not read: the maildrop is asked for more only as the client takes it")
    func backPressure() async throws {
        let line = Array(String(repeating: "x", count: 1022).utf8) + [13, 10]
        var big = Array("Subject: big\r\n\r\n".utf8)
        while big.count < 20 * 1_048_576 { big += line }
        let harness = try POP3GatewayHarness(provider: FakeLocalMaildrops(messages: [big], chunkSize: 65_536))
        defer { harness.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("RETR 1\r\n")
        let maildrop = try #require(harness.provider.last)
        // Wait until the chunks handed out stop growing (the socket buffers are full), at most 10 s.
        var handedOut = -1
        for _ in 0..<20 {
            try await Task.sleep(nanoseconds: 500_000_000)
            let now = maildrop.record.withLock { $0.chunksHandedOut }
            if now == handedOut { break }
            handedOut = now
        }
        // Kernel buffers (on loopback they autotune to several MiB: 7.5 MiB seen with tcp_rmem max 32 MiB) plus
        // the relay's 256 KiB high-water mark, not the whole message (320 chunks): it stopped, and well before.
        #expect(handedOut < 200, "\(handedOut) of 320 chunks of 64 KiB went out to a client that reads nothing")
        #expect(try await client.line() == "+OK \(big.count) octets")
        var received = 0
        while let text = try await client.line(within: 30), text != "." { received += text.utf8.count + 2 }
        #expect(received == big.count)
    }
}

@Suite("POP3 gateway served from IMAP (fake Exchange IMAP server)", .serialized)
struct POP3IMAPMaildropTests {
    static func harness(tokens: Set<String>, cap: IMAPUpstreamSessionCap? = nil) throws -> (POP3GatewayHarness, FakeIMAPUpstream) {
        let upstream = try FakeIMAPUpstream(script: .init(acceptedTokens: tokens))
        let address = upstream.address
        let harness = try POP3GatewayHarness(provider: nil, imapSessionCap: cap) { _ in
            POP3AccountSettings(source: .imap(UpstreamEndpoint(address: address, security: .none, caFile: nil, allowInsecure: true)))
        }
        return (harness, upstream)
    }

    @Test("the first token refused: one forced refresh, then SELECT INBOX and the list; the client just logs in")
    func forcedRefresh() async throws {
        let (harness, upstream) = try Self.harness(tokens: ["token-2"])
        defer { harness.stop(); upstream.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in") == true)
        let record = upstream.snapshot
        #expect(record.tokens == ["token-1", "token-2"])
        #expect(harness.credentials.calls.withLock { $0.afterRejection.map(\.rejected) } == ["token-1"])
        let lines = record.lines.filter { $0.connection == 2 }.map(\.line)
        #expect(lines.contains { $0.hasSuffix(" SELECT INBOX") }, "\(lines)")
        #expect(lines.contains { $0.hasSuffix(" FETCH 1:* (UID RFC822.SIZE)") }, "\(lines)")
        try await client.send("QUIT\r\n")
        #expect(try await client.line() == "+OK MailGate POP3 signing off")
        #expect(try await harness.wait { upstream.snapshot.lines.contains { $0.line.hasSuffix(" LOGOUT") } })
        #expect(!upstream.snapshot.lines.contains { $0.line.contains("STORE") || $0.line.contains("EXPUNGE") })
    }

    @Test("both tokens refused: -ERR [AUTH] naming `mailgate account connect`; the lock is released")
    func refusedTwice() async throws {
        let (harness, upstream) = try Self.harness(tokens: [])
        defer { harness.stop(); upstream.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        let answer = try await client.pop3Login()
        #expect(answer?.hasPrefix("-ERR [AUTH] The Microsoft 365 sign-in of alice@contoso.com must be renewed: run mailgate account connect alice@contoso.com") == true, "\(answer ?? "nil")")
        #expect(try await harness.wait { harness.counters.value("pop3.login.failed") == 1 })
        upstream.change { $0.acceptedTokens = ["token-1"] }
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in") == true, "the maildrop lock was released")
    }

    @Test("POP3 over IMAP counts against imap_upstream_sessions: with the slots taken, -ERR [SYS/TEMP]; freed at the end")
    func sessionCap() async throws {
        let cap = IMAPUpstreamSessionCap(maximum: 1)
        let (harness, upstream) = try Self.harness(tokens: ["token-1"], cap: cap)
        defer { harness.stop(); upstream.stop() }
        #expect(cap.acquire("alice@contoso.com"))
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login()?.hasPrefix("-ERR [SYS/TEMP] Too many IMAP sessions for alice@contoso.com (at most 1)") == true)
        #expect(upstream.snapshot.connections == 0)
        cap.release("alice@contoso.com")
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in") == true)
        #expect(cap.inUse("alice@contoso.com") == 1)
        try await client.send("QUIT\r\n")
        _ = try await client.line()
        #expect(try await harness.wait { cap.inUse("alice@contoso.com") == 0 })
    }
}
