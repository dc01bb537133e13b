// GatewayTests/SentMail: helpers for the sent-mail tests: temporary state dirs, fixed credentials, async waits.

import Dispatch
import Foundation
import Logging
import MailCore
import Store
import Testing
import Transport

@testable import Gateway

/// A temporary state directory, removed when the value goes away.
final class TemporaryStateDirectory {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "mailgate-sentmail-XXXXXX").utf8CString)
        guard let result = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: result)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func files(in subdirectory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + subdirectory))?.sorted() ?? []
    }
}

/// Hands out a fixed identity; counts the calls. Only the integration tests log in for real.
final class FixedCredentials: UpstreamCredentials, @unchecked Sendable {
    // @unchecked Sendable: the counters are guarded by `lock`.
    private let lock = NSLock()
    private var tokens: [String: (user: String, token: String)]
    private(set) var calls = 0
    private(set) var refreshes = 0

    init(_ tokens: [String: (user: String, token: String)]) { self.tokens = tokens }

    func set(_ account: String, user: String, token: String) {
        lock.lock()
        tokens[account] = (user, token)
        lock.unlock()
    }

    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>) {
        try take(account, refresh: false)
    }

    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws -> (
        user: String, token: Redacted<String>
    ) {
        try take(account, refresh: true)
    }

    private func take(_ account: String, refresh: Bool) throws -> (user: String, token: Redacted<String>) {
        lock.lock()
        defer { lock.unlock() }
        if refresh { refreshes += 1 } else { calls += 1 }
        guard let entry = tokens[account] else { throw SentMailError.copyFailed(reason: "no test token") }
        return (entry.user, Redacted(entry.token))
    }
}

/// A logger that prints nothing (tests check files and rows, not log lines).
let quietLogger: Logger = {
    var logger = Logger(label: "mailgate.tests.sentmail")
    logger.logLevel = .critical
    return logger
}()

extension MessageRecording {
    /// `prepareCommit`, awaited.
    func prepare() async -> Result<Void, SentMailError> {
        let queue = DispatchQueue(label: "test.session")
        return await withCheckedContinuation { continuation in
            prepareCommit(on: queue) { continuation.resume(returning: $0) }
        }
    }

    /// `commit`, awaited.
    func commit(reply: String) async -> Result<Void, SentMailError> {
        let queue = DispatchQueue(label: "test.session")
        return await withCheckedContinuation { continuation in
            commit(upstreamReply: reply, on: queue) { continuation.resume(returning: $0) }
        }
    }

    /// Feeds `message` in `chunk`-byte pieces and finishes; returns everything forwarded.
    func feed(_ message: [UInt8], chunk: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < message.count {
            let end = min(message.count, index + chunk)
            out += try append(Array(message[index..<end]))
            index = end
        }
        out += try finishInput()
        return out
    }
}

/// Waits until `condition` holds, polling every 20 ms, for at most `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return try await condition()
}

/// A loopback port nobody listens on (bound, read, closed).
func closedLoopbackPort() -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The sum of counter `name` for `account`.
func counter(_ database: MailGateDatabase, _ name: String, account: String) throws -> Int64 {
    try database.counters(since: Date().addingTimeInterval(-7_200), account: account)
        .filter { $0.name == name }.reduce(0) { $0 + $1.value }
}

/// The file's permission bits.
func permissions(_ path: String) -> Int {
    var info = stat()
    guard stat(path, &info) == 0 else { return -1 }
    return Int(info.st_mode & 0o777)
}
