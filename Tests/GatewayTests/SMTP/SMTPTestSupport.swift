// GatewayTests: doubles (recorder, credentials, password store) and a harness running SMTPGateway against the fake.
import Crypto
import Dispatch
import Foundation
import Logging
import Policy
import MailCore
import MailGateTesting
import SMTP
import Synchronization
import TLS
import Testing
import Transport

@testable import Gateway

/// A password store in memory; counts lookups so cache hits can be seen.
final class InMemoryPasswords: PasswordHashLookup {
    private let hashes: Mutex<[String: String]>
    private let lookups = Mutex(0)

    init(_ hashes: [String: String]) { self.hashes = Mutex(hashes) }

    func passwordHash(forEmail email: String) throws -> String? {
        lookups.withLock { $0 += 1 }
        return hashes.withLock { $0[email] }
    }

    func set(_ email: String, hash: String?) { hashes.withLock { $0[email] = hash } }
    var lookupCount: Int { lookups.withLock { $0 } }

    /// One scrypt hash of "secret", made once per process (scrypt is slow).
    static let secretHash: String = try! PasswordHash.hash("secret")
}

/// Hands out "token-1", then "token-2" after a rejection; or throws.
final class FakeCredentials: UpstreamCredentials {
    struct Calls: Sendable {
        var normal: [String] = []
        var afterRejection: [(account: String, rejected: String)] = []
    }
    let calls = Mutex(Calls())
    let failure: (any Error & Sendable)?

    init(failure: (any Error & Sendable)? = nil) { self.failure = failure }

    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>) {
        calls.withLock { $0.normal.append(account) }
        if let failure { throw failure }
        return (account, Redacted("token-1"))
    }

    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws -> (
        user: String, token: Redacted<String>
    ) {
        calls.withLock { $0.afterRejection.append((account, rejected.revealed)) }
        if let failure { throw failure }
        return (account, Redacted("token-2"))
    }
}

/// Records what the session asks of the sent-mail recorder.
final class FakeRecorder: MessageRecorder {
    struct Event: Sendable, Equatable {
        var kind: String
        var detail: String = ""
    }
    final class Recording: MessageRecordingProtocol, @unchecked Sendable {
        // @unchecked Sendable: used on the session queue only; the owner reads `bytes` after the session.
        let owner: FakeRecorder
        let hasher = SHA256Hasher()
        var count = 0
        var kept: [UInt8] = []
        init(owner: FakeRecorder) { self.owner = owner }

        func append(_ bytes: [UInt8]) throws -> [UInt8] {
            hasher.update(bytes)
            count += bytes.count
            if owner.keepBytes { kept += bytes }
            return bytes
        }
        func finishInput() throws -> [UInt8] {
            owner.log("finishInput", "\(count)")
            return []
        }
        func prepareCommit(on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void) {
            owner.log("prepareCommit")
            let box = UncheckedBox(completion)
            let fail = owner.failPrepare
            queue.async { box.value(fail ? .failure(TestRecorderFailure()) : .success(())) }
        }
        func commit(upstreamReply: String, on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void) {
            owner.log("commit", upstreamReply)
            owner.finished(bytes: kept, sha: SHA256.hexString(hasher.finalize()))
            let box = UncheckedBox(completion)
            queue.async { box.value(.success(())) }
        }
        func abandon(reason: String, fateUnknown: Bool) {
            owner.log("abandon", "fateUnknown=\(fateUnknown)")
        }
    }
    struct TestRecorderFailure: Error {}

    let events = Mutex<[Event]>([])
    let committed = Mutex<[(bytes: [UInt8], sha: String)]>([])
    let keepBytes: Bool
    let failPrepare: Bool

    init(keepBytes: Bool = true, failPrepare: Bool = false) {
        self.keepBytes = keepBytes
        self.failPrepare = failPrepare
    }

    func beginRecording(
        account: String, listener: String, mailFrom: String, recipients: [String], policy: SMTPSentMailPolicy
    ) -> any MessageRecordingProtocol {
        log("begin", "\(account) \(mailFrom) \(recipients.joined(separator: ","))")
        return Recording(owner: self)
    }

    func log(_ kind: String, _ detail: String = "") { events.withLock { $0.append(Event(kind: kind, detail: detail)) } }
    func finished(bytes: [UInt8], sha: String) { committed.withLock { $0.append((bytes, sha)) } }
    var kinds: [String] { events.withLock { $0.map(\.kind) } }
}

/// A gateway on 127.0.0.1:0 relaying to a fake upstream.
struct Harness {
    let upstream: FakeSMTPUpstream
    let gateway: SMTPGateway
    let recorder: FakeRecorder
    let credentials: FakeCredentials
    let passwords: InMemoryPasswords

    init(
        script: FakeSMTPUpstream.Script = .init(), recorder: FakeRecorder = FakeRecorder(),
        credentials: FakeCredentials = FakeCredentials(), relayFromLoopback: Bool = false, limits: Limits = .standard,
        serverTLS: Bool = false, implicitTLS: Bool = false
    ) throws {
        let upstream = try FakeSMTPUpstream(script: script)
        self.upstream = upstream
        self.recorder = recorder
        self.credentials = credentials
        passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        var authSettings = LocalAuthenticator.Settings()
        authSettings.initialFailureDelay = 0.05
        let authenticator = LocalAuthenticator(lookup: passwords, settings: authSettings)
        let caFile = upstream.certificates.caFile
        let address = upstream.address
        let configuration = SMTPGatewayConfiguration(
            listenerName: "smtp", hostname: "mailgate.test", relayAccount: relayFromLoopback ? "scanner@contoso.com" : nil,
            isRelayClient: { ip in relayFromLoopback && ip.description == "127.0.0.1" }, limits: limits)
        var tls: TLSContext?
        if serverTLS || implicitTLS {
            tls = try TLSContext.server(
                certificateChainFile: upstream.certificates.leafChainFile,
                privateKeyFile: upstream.certificates.leafKeyFile)
        }
        gateway = try SMTPGateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: implicitTLS, tls: tls,
            configuration: configuration, authenticator: authenticator, credentials: credentials, recorder: recorder,
            resolver: { _ in
                SMTPUpstreamSettings(
                    server: address, security: .starttls, caFile: caFile, serverName: "localhost",
                    ehloHostname: "mailgate.test", sentMailPolicy: SentMailPolicy(lockAfterSend: true, sentCopy: .never, messageIDDomain: "contoso.test", imap: nil))
            }, logger: Logger(label: "mailgate.test.smtp"))
    }

    func stop() {
        gateway.stop(drain: false)
        upstream.stop()
    }
}

/// A raw SMTP client over loopback that reads whole replies.
final class RawClient: @unchecked Sendable {
    // @unchecked Sendable: used by one test task at a time.
    let connection: AsyncConnection
    private var buffer: [UInt8] = []

    init(_ address: HostPort) async throws {
        connection = try await AsyncConnection.connect(to: address, tls: nil, serverName: nil, timeout: 5)
    }

    func send(_ text: String) async throws { try await connection.write(Array(text.utf8)) }
    func send(bytes: [UInt8]) async throws { try await connection.write(bytes) }

    /// One full reply (all its lines), joined by "\n", or nil if the connection ended first.
    func reply(within seconds: Double = 15) async throws -> String? {
        var lines: [String] = []
        while true {
            guard let line = try await line(within: seconds) else { return lines.isEmpty ? nil : lines.joined(separator: "\n") }
            lines.append(line)
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] == " " { return lines.joined(separator: "\n") }
        }
    }

    private func line(within seconds: Double) async throws -> String? {
        while true {
            if let lf = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<lf])
                buffer.removeFirst(lf + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            let more = try await withTimeout(seconds) { [connection] in try? await connection.readAvailable() }
            guard let chunk = more else { return nil }
            buffer += chunk
        }
    }

    /// EHLO + AUTH PLAIN alice@contoso.com / password; returns the AUTH reply.
    func login(password: String = "secret") async throws -> String? {
        _ = try await reply()  // greeting
        try await send("EHLO client.test\r\n")
        _ = try await reply()
        let plain = Data(("\u{0}alice@contoso.com\u{0}" + password).utf8).base64EncodedString()
        try await send("AUTH PLAIN \(plain)\r\n")
        return try await reply()
    }

    func close() { connection.close() }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String { "timed out" }
}

/// Runs `body`, failing with `TimedOut` after `seconds` (the body keeps running detached if it hangs).
func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async -> T) async throws -> T {
    let result = Mutex<T?>(nil)
    let done = Mutex(false)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.withLock { $0 = true }
    }
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
    while DispatchTime.now().uptimeNanoseconds < deadline {
        if done.withLock({ $0 }) { return result.withLock { $0! } }
        try await Task.sleep(nanoseconds: 1_000_000)
    }
    throw TimedOut()
}

/// Runs `python3 -c script args…`; returns exit status and standard output.
func runPython(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readAllRetryingInterrupts()
    let error = err.fileHandleForReading.readAllRetryingInterrupts()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

/// `runPython` on a Dispatch thread: a test that waits for a child process must not hold one of the few threads
/// of Swift's cooperative pool (two on a 2-core CI machine), which the in-process scripted upstreams need in order
/// to answer that very child.
func runPythonOffPool(_ script: String, _ arguments: [String]) async throws -> (
    status: Int32, output: String, error: String
) {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try runPython(script, arguments) }) }
    }
}

/// Removes SMTP dot-stuffing from wire bytes (a leading "." on a line is dropped).
func unstuff(_ wire: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(wire.count)
    var atLineStart = true
    for byte in wire {
        if atLineStart && byte == 0x2E {
            atLineStart = false
            continue
        }
        out.append(byte)
        atLineStart = byte == 0x0A
    }
    return out
}
