// MailGateTesting: throwaway TLS certificates for tests, made once per process by certs/make-test-certs.sh.

import Foundation
import Synchronization

/// Paths of the certificate set made by `certs/make-test-certs.sh` (all PEM files; keys unencrypted).
public struct TestCertificateSet: Sendable, Equatable {
    /// Directory holding all files.
    public var directory: String
    /// The throwaway CA to trust (`TLSContext.client(caFile:)`).
    public var caFile: String
    /// Leaf for `localhost` and `127.0.0.1` (the chain file holds the leaf only; there is no intermediate).
    public var leafChainFile: String
    /// Private key of `leafChainFile`.
    public var leafKeyFile: String
    /// Leaf for `wrong.example` only, for host name mismatch tests.
    public var wrongHostChainFile: String
    /// Private key of `wrongHostChainFile`.
    public var wrongHostKeyFile: String
    /// Leaf for `localhost` and `127.0.0.1` that was valid only on 2020-01-01, for expiry tests.
    public var expiredChainFile: String
    /// Private key of `expiredChainFile`.
    public var expiredKeyFile: String
}

/// Why the test certificates could not be made.
public struct TestCertificateError: Error, CustomStringConvertible, Sendable {
    /// What failed, with the script's own error output.
    public var description: String
}

/// Makes the test certificates once per process (thread-safe) and hands out their paths.
public enum TestCertificates {
    /// The result of the first run, shared by every later caller (a failure is cached too, so it is reported
    /// once per test instead of re-running the script).
    private static let cache = Mutex<Result<TestCertificateSet, TestCertificateError>?>(nil)

    /// The certificate set, made on first use in a fresh temporary directory.
    public static func make() throws -> TestCertificateSet {
        try cache.withLock { cached in
            if let cached { return try cached.get() }
            let result = Result { () throws(TestCertificateError) -> TestCertificateSet in try runScript() }
            cached = result

            return try result.get()
        }
    }

    /// `certs/make-test-certs.sh`, found from this source file's location (Sources/MailGateTesting/…).
    static var scriptPath: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // MailGateTesting
            .deletingLastPathComponent()  // Sources
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("certs")
            .appendingPathComponent("make-test-certs.sh")
            .path
    }

    /// Name prefix of the per-process directories: prefix, process id, "-", UUID.
    private static let directoryPrefix = "mailgate-test-certs-"

    /// Deletes directories left by earlier test processes that have ended (test runners do not reliably run
    /// exit handlers). A directory whose process id is alive (/proc/PID exists) is left alone.
    private static func removeDirectoriesOfEndedProcesses() {
        let temporary = FileManager.default.temporaryDirectory.path
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: temporary) else { return }
        for name in names where name.hasPrefix(directoryPrefix) {
            let pid = name.dropFirst(directoryPrefix.count).prefix { $0 != "-" }
            guard !pid.isEmpty, pid.allSatisfy(\.isNumber), !FileManager.default.fileExists(atPath: "/proc/\(pid)")
            else { continue }
            try? FileManager.default.removeItem(atPath: temporary + "/" + name)
        }
    }

    private static func runScript() throws(TestCertificateError) -> TestCertificateSet {
        let script = scriptPath
        guard FileManager.default.isReadableFile(atPath: script) else {
            throw TestCertificateError(description: "test certificate script not found at \(script)")
        }
        removeDirectoriesOfEndedProcesses()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent(
                "\(directoryPrefix)\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
            )
            .path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, directory]
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw TestCertificateError(description: "could not start \(script): \(error)")
        }
        let errorOutput = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errorOutput, as: UTF8.self)
            throw TestCertificateError(
                description: "\(script) exited with status \(process.terminationStatus): \(text)")
        }
        func file(_ name: String) -> String { directory + "/" + name }
        let set = TestCertificateSet(
            directory: directory,
            caFile: file("ca.pem"),
            leafChainFile: file("localhost.pem"),
            leafKeyFile: file("localhost.key"),
            wrongHostChainFile: file("wrong-host.pem"),
            wrongHostKeyFile: file("wrong-host.key"),
            expiredChainFile: file("expired.pem"),
            expiredKeyFile: file("expired.key"))
        for path in [
            set.caFile, set.leafChainFile, set.leafKeyFile, set.wrongHostChainFile, set.wrongHostKeyFile,
            set.expiredChainFile, set.expiredKeyFile,
        ]
        where !FileManager.default.fileExists(atPath: path) {
            throw TestCertificateError(description: "\(script) did not produce \(path)")
        }
        return set
    }
}
