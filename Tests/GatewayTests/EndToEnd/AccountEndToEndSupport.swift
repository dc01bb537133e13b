// GatewayTests/EndToEnd: helpers of the account end-to-end tests: the stand-in's control API as JSON, `account list
// --json` decoded, a `mailgate` process read while it runs, the vault's tokens, and a small SMTP client for `serve`.

import Config
import Foundation
import MailGateTesting
import Logging
import MailCore
import OAuth
import Store
import Testing
import Transport

@testable import Gateway

/// Names and small conveniences shared by the account suites.
enum AccountE2E {
    static let alice = "alice@contoso.test"
    static let bob = "bob@contoso.test"
    /// The shared mailbox; also the only user these suites revoke or switch SMTP AUTH off for.
    static let info = "info@contoso.test"

    /// The stand-in's `$BROWSER`: follows the authorize URL with curl and so delivers the code.
    static var browserCurl: String { StandIn.packageRoot + "/integration/bin/browser-curl" }

    /// A new installation (own temp dir, state and config) for the stand-in, logging at `trace` so that every
    /// log line the code has is in the output the secret checks read.
    static func installation(_ standIn: StandIn, incoming: String = "imap") throws -> MailGateInstallation {
        let installation = try MailGateInstallation(standIn, smtpPort: closedLoopbackPort(), incoming: incoming)
        let config = try String(contentsOfFile: installation.configPath, encoding: .utf8)
        try ("log_level = \"trace\"\n" + config).write(
            toFile: installation.configPath, atomically: true, encoding: .utf8)
        return installation
    }

    /// `account add EMAIL --password-stdin [extra]`, required to succeed.
    static func add(
        _ installation: MailGateInstallation, _ email: String, password: String = "local-Passw0rd!",
        extra: [String] = []
    ) throws -> CommandRun {
        let run = try installation.run(["account", "add", email, "--password-stdin"] + extra, stdin: password + "\n")
        guard run.status == 0 else { throw StandInError("account add \(email) exited \(run.status): \(run.stderr)") }
        return run
    }

    /// `account connect EMAIL` with the curl browser, told where the stand-in's CA is (the stand-in may run from
    /// another checkout than this package's `integration/run`).
    static func connect(_ installation: MailGateInstallation, _ email: String, standIn: StandIn) throws -> CommandRun {
        try installation.run(
            ["account", "connect", email, "--timeout", "30"],
            environment: ["BROWSER": browserCurl, "MAILGATE_STANDIN_CA_FILE": standIn.caFile], timeout: 60)
    }

    /// `account list --json`, decoded.
    static func list(_ installation: MailGateInstallation) throws -> [ListedAccount] {
        let run = try installation.run(["account", "list", "--json"])
        guard run.status == 0 else { throw StandInError("account list --json exited \(run.status): \(run.stderr)") }
        return try JSONDecoder().decode([ListedAccount].self, from: Data(run.stdout.utf8))
    }

    /// One account as `account list --json` prints it.
    struct ListedAccount: Decodable, Equatable {
        var email: String
        var server: String
        var shared: Bool
        var delegate: String?
        var token: String
        var accessExpiresAt: String?
        var lastRefreshAt: String?
        var lastError: String?

        /// `accessExpiresAt` as a date (ISO 8601, with or without fractional seconds).
        var expiry: Date? {
            guard let text = accessExpiresAt else { return nil }
            let formatter = ISO8601DateFormatter()
            if let date = formatter.date(from: text) { return date }
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.date(from: text)
        }
    }

    /// The lines of `account test` output that start with `prefix` ("ok  " or "FAIL").
    static func lines(_ output: String, startingWith prefix: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    /// The tokens the installation's vault holds for `email`, opened in this process as `serve` would.
    static func storedToken(_ installation: MailGateInstallation, _ email: String) async throws -> OAuth.StoredToken? {
        let database = try MailGateDatabase(stateDirectory: installation.stateDirectory)
        let store = VaultTokenStore(
            database: database, vault: try Vault.open(stateDirectory: installation.stateDirectory))
        return try await store.load(account: email)
    }

    /// The directory `serve` builds, in this process, over the installation's configuration and state.
    static func directory(_ installation: MailGateInstallation) throws -> AccountDirectory {
        let configuration = try ConfigurationLoader.load(path: installation.configPath)
        let database = try MailGateDatabase(stateDirectory: installation.stateDirectory)
        var logger = Logger(label: "tests.accounts")
        logger.logLevel = .critical
        return try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: installation.stateDirectory,
            logger: logger)
    }

    /// The SASL XOAUTH2 initial response a client sends for `user` with `token` (standard base64).
    static func xoauth2String(user: String, token: String) -> String {
        TestBase64.standardBase64(Array("user=\(user)\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8))
    }
}

// MARK: - The stand-in's control API, read back as JSON

/// GETs and POSTs to `/_test/…` whose answers the tests inspect (counters, config, introspection).
struct AccountControl {
    let standIn: StandIn

    /// `GET /_test/PATH` as a JSON object.
    func get(_ path: String) throws -> [String: Any] {
        try object(try curl([standIn["CONTROL_URL"] + "/" + path]))
    }

    /// `POST /_test/PATH` with a JSON body, as a JSON object.
    @discardableResult
    func post(_ path: String, _ body: [String: Any?]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body.mapValues { $0 ?? NSNull() })
        return try object(
            try curl([
                "-H", "Content-Type: application/json", "--data-binary", String(decoding: data, as: UTF8.self),
                standIn["CONTROL_URL"] + "/" + path,
            ]))
    }

    /// How many requests of `grant` (e.g. `refresh_token`) the token endpoint has counted so far.
    func counter(_ grant: String) throws -> Int {
        (try get("counters")[grant] as? Int) ?? 0
    }

    /// One setting of `GET /_test/config` (e.g. `access_token_lifetime`).
    func setting(_ key: String) throws -> Int {
        guard let value = try get("config")[key] as? Int else {
            throw StandInError("the stand-in has no setting \(key)")
        }
        return value
    }

    /// What the stand-in knows about an access token (`username`, `active`, …); the token goes in the body.
    func introspect(_ token: String) throws -> [String: Any] {
        try object(try curl(["--data-urlencode", "token@-", standIn["CONTROL_URL"] + "/introspect"], stdin: token))
    }

    private func object(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw StandInError("the control API answered with something that is not a JSON object: \(text.prefix(200))")
        }
        return object
    }

    private func curl(_ arguments: [String], stdin: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "20", "--cacert", standIn.caFile] + arguments
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw StandInError("curl exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

// MARK: - A mailgate process read while it runs

/// `mailgate ARGS --config FILE` started in the background; its stdout and stderr are collected as they arrive, so
/// a test can act on a line (a device code) before the process ends.
final class AccountBackgroundCommand: @unchecked Sendable {
    // @unchecked Sendable: the buffers are guarded by `lock`; `process` is only started and waited for.
    private let process = Process()
    private let lock = NSLock()
    private var out: [UInt8] = []
    private var err: [UInt8] = []
    private let drained = DispatchGroup()

    init(_ installation: MailGateInstallation, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: MailGateInstallation.binary)
        process.arguments = arguments + ["--config", installation.configPath]
        process.currentDirectoryURL = URL(fileURLWithPath: installation.directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        collect(outPipe.fileHandleForReading, isError: false)
        collect(errPipe.fileHandleForReading, isError: true)
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    private func collect(_ handle: FileHandle, isError: Bool) {
        drained.enter()
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.readChunkRetryingInterrupts() ?? Data()
                if data.isEmpty { break }
                lock.withLock {
                    if isError { err += data } else { out += data }
                }
            }
            drained.leave()
        }
    }

    var isRunning: Bool { process.isRunning }
    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }

    /// Waits (bounded) until stdout matches `pattern`; returns the first capture group, or nil on timeout or exit.
    func waitForStdout(_ pattern: String, timeout: Double) throws -> String? {
        let expression = try NSRegularExpression(pattern: pattern)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stdout
            if let match = expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                let range = Range(match.range(at: match.numberOfRanges > 1 ? 1 : 0), in: text)
            {
                return String(text[range])
            }
            if !process.isRunning { return nil }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    /// Waits (bounded) for the exit status and the end of both outputs; kills the process on timeout (nil).
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            _ = drained.wait(timeout: .now() + 5)
            return nil
        }
        process.waitUntilExit()
        _ = drained.wait(timeout: .now() + 5)
        return process.terminationStatus
    }
}

// MARK: - An SMTP client for `mailgate serve`

/// Speaks to the gateway's SMTP listener the way a legacy client does (plain on loopback, AUTH PLAIN).
final class AccountSMTPClient {
    private let connection: AsyncConnection
    /// Every line the client sent and received, for the secret checks (the AUTH line is left out).
    private(set) var transcript = ""

    private init(connection: AsyncConnection) { self.connection = connection }

    static func open(port: Int) async throws -> AccountSMTPClient {
        let connection = try await AsyncConnection.connect(
            to: HostPort(host: "127.0.0.1", port: port)!, tls: nil, serverName: "127.0.0.1", timeout: 10)
        let client = AccountSMTPClient(connection: connection)
        let greeting = try await client.reply()
        guard greeting.hasPrefix("220") else { throw StandInError("serve greeted with \(greeting.prefix(120))") }
        return client
    }

    /// The last line of the next (possibly multi-line) reply.
    func reply() async throws -> String {
        while true {
            let line = String(decoding: try await connection.readLine(maximumLength: 4_096), as: UTF8.self)
            transcript += "S: " + line + "\n"
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { return line }
        }
    }

    /// Sends one command line and returns the reply's last line.
    func send(_ line: String, secret: Bool = false) async throws -> String {
        transcript += secret ? "C: (AUTH line)\n" : "C: " + line + "\n"
        try await connection.write(Array((line + "\r\n").utf8))
        return try await reply()
    }

    /// EHLO and AUTH PLAIN with the local password; returns the AUTH reply.
    func login(_ email: String, password: String) async throws -> String {
        let ehlo = try await send("EHLO client.example")
        guard ehlo.hasPrefix("250") else { throw StandInError("EHLO: \(ehlo.prefix(120))") }
        return try await send("AUTH PLAIN " + Self.plain(email, password), secret: true)
    }

    /// The SASL PLAIN response (authzid empty).
    static func plain(_ email: String, _ password: String) -> String {
        TestBase64.standardBase64(Array("\u{0}\(email)\u{0}\(password)".utf8))
    }

    /// MAIL, RCPT, DATA, the message (dot-stuffed) and the final reply.
    func submit(from: String, to: String, message: String) async throws -> String {
        for (command, expected) in [("MAIL FROM:<\(from)>", "250"), ("RCPT TO:<\(to)>", "250"), ("DATA", "354")] {
            let answer = try await send(command)
            guard answer.hasPrefix(expected) else { throw StandInError("\(command): \(answer.prefix(160))") }
        }
        var body = ""
        for line in message.split(separator: "\n", omittingEmptySubsequences: false) {
            body += (line.hasPrefix(".") ? "." : "") + line + "\r\n"
        }
        try await connection.write(Array(body.utf8))
        return try await send(".")
    }

    func close() async {
        _ = try? await send("QUIT")
        connection.close()
    }
}
