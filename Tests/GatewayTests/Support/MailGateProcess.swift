// GatewayTests/Support: the real `mailgate` binary, configured for the stand-in, as an administrator runs it.
import Foundation
import MailGateTesting
import Testing

/// The output of one `mailgate` command.
struct CommandRun: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A state directory and a configuration pointing at the stand-in, plus ways to run `mailgate` against them.
final class MailGateInstallation: @unchecked Sendable {
    // @unchecked: tests use one installation from one task; `serveProcess` is only touched by start/stop.
    let directory: String
    let configPath: String
    let smtpPort: Int
    /// The stand-in's CA: the curl "browser" of `addAndConnect` must trust it wherever the stand-in runs from.
    let caFile: String
    private var serveProcess: Process?
    private var serveLog: String { directory + "/serve.log" }

    /// The binary SwiftPM built next to the test bundle (`swift build --build-tests` builds every product).
    static let binary: String = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let beside = executable.deletingLastPathComponent().appendingPathComponent("mailgate").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return StandIn.packageRoot + "/.build/debug/mailgate"
    }()

    /// A fresh installation; `extraServer` lines are appended to `[server.standin]`, `extraListen` to `[listen]`,
    /// `extraOAuth` to `[oauth.standin]`, whose client id is the public test client unless `clientID` is given.
    init(
        _ standIn: StandIn, smtpPort: Int, extraServer: String = "", extraListen: String = "", incoming: String = "imap",
        clientID: String? = nil, extraOAuth: String = ""
    ) throws {
        var template = Array((NSTemporaryDirectory() + "mailgate-e2e-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw StandInError("cannot make a temporary directory") }
        directory = String(cString: made)
        configPath = directory + "/mailgate.toml"
        self.smtpPort = smtpPort
        caFile = standIn.caFile
        let config = """
            state_dir = "state"

            [listen]
            smtp = "127.0.0.1:\(smtpPort)"
            \(extraListen)

            [oauth.standin]
            provider = "microsoft365"
            client_id = "\(clientID ?? standIn["CLIENT_ID"])"
            tenant = "\(standIn["TENANT"])"
            authority = "\(standIn["AUTHORITY"])"
            ca_file = "\(standIn.caFile)"
            \(extraOAuth)

            [server.standin]
            oauth = "standin"
            smtp = "\(standIn.host):\(standIn["SUBMISSION_PORT"])"
            imap = "\(standIn.host):\(standIn["IMAPS_PORT"])"
            pop3 = "\(standIn.host):\(standIn["POP3S_PORT"])"
            incoming = "\(incoming)"
            ca_file = "\(standIn.caFile)"
            \(extraServer)
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        stopServe()
        keepServeLog()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Where serve logs of the test run are kept for `integration/check-logs` (which greps them for secrets).
    static let keptLogs = StandIn.packageRoot + "/.build/test-logs"

    /// Copies this installation's serve log to `keptLogs` before the directory goes.
    private func keepServeLog() {
        guard FileManager.default.fileExists(atPath: serveLog) else { return }
        try? FileManager.default.createDirectory(atPath: Self.keptLogs, withIntermediateDirectories: true)
        let name = URL(fileURLWithPath: directory).lastPathComponent
        try? FileManager.default.copyItem(atPath: serveLog, toPath: Self.keptLogs + "/\(name)-serve.log")
    }

    var stateDirectory: String { directory + "/state" }

    /// Runs `mailgate ARGS --config FILE` to completion.
    func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], timeout: Double = 120)
        throws -> CommandRun
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments + ["--config", configPath]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let out = output.fileHandleForReading.readAllRetryingInterrupts()
        let err = errors.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        killer.cancel()
        return CommandRun(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self))
    }

    /// `account add EMAIL --password-stdin` then `account connect EMAIL` through the stand-in's curl "browser".
    func addAndConnect(_ email: String, password: String, extraAddArguments: [String] = []) throws {
        let add = try run(["account", "add", email, "--password-stdin"] + extraAddArguments, stdin: password + "\n")
        guard add.status == 0 else { throw StandInError("account add \(email) failed: \(add.stderr)") }
        let connect = try run(
            ["account", "connect", email, "--timeout", "60"],
            environment: [
                "BROWSER": StandIn.packageRoot + "/integration/bin/browser-curl", "MAILGATE_STANDIN_CA_FILE": caFile,
            ])
        guard connect.status == 0 else { throw StandInError("account connect \(email) failed: \(connect.stderr)") }
    }

    /// Starts `mailgate serve ARGUMENTS` in the background and waits until it says it is listening; `environment`
    /// is added to the test's own (the debug build's crash-test hooks read it; NOTIFY_SOCKET).
    func startServe(arguments: [String] = [], environment: [String: String] = [:]) throws {
        if !FileManager.default.fileExists(atPath: serveLog) {
            _ = FileManager.default.createFile(atPath: serveLog, contents: nil)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--config", configPath] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let log = FileHandle(forWritingAtPath: serveLog)
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let logged = serveOutput.components(separatedBy: "mailgate serve: listening on").count
        try process.run()
        serveProcess = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if serveOutput.components(separatedBy: "mailgate serve: listening on").count > logged { return }
            guard process.isRunning else { throw StandInError("serve exited: \(serveOutput.suffix(600))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw StandInError("serve did not start listening within 20 s: \(serveOutput.suffix(600))")
    }

    /// The process id of the running `serve` (nil when not started or stopped): for /proc checks.
    var serveProcessIdentifier: Int32? { serveProcess.map(\.processIdentifier) }

    /// Everything `serve` wrote to stdout and stderr so far (its log).
    var serveOutput: String { (try? String(contentsOfFile: serveLog, encoding: .utf8)) ?? "" }

    /// Sends `signal` to the running `serve`.
    func signalServe(_ signal: Int32) {
        if let process = serveProcess, process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits (bounded) for `serve` to exit after a signal the test sent; nil if it is still running.
    func waitForServeExit(timeout: Double) -> Int32? {
        guard let process = serveProcess else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard !process.isRunning else { return nil }
        serveProcess = nil
        return process.terminationStatus
    }

    /// SIGKILL (a crash: nothing runs on the way out), then wait for the exit.
    func killServe() {
        guard let process = serveProcess else { return }
        serveProcess = nil
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    @discardableResult
    func stopServe() -> Int32? {
        guard let process = serveProcess else { return nil }
        serveProcess = nil
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(40)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
