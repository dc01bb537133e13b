// CLITests: run the built `mailgate` binary as a user would and check its output and exit status.
import Foundation
import MailGateTesting
import Testing

/// The result of one `mailgate` run.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Locates the binary next to the test bundle (both live in SwiftPM's products directory; `swift test` builds every
/// product, so it is there), falling back to `.build/debug` under the package root.
enum Binary {
    static let path: String = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let beside = executable.deletingLastPathComponent().appendingPathComponent("mailgate").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        return root.appendingPathComponent(".build/debug/mailgate").path
    }()

    static let packageRoot: String = {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        return root.path
    }()
}

/// A scratch directory with a copy of the sample configuration whose state lives inside it.
final class Sandbox {
    let directory: String
    let config: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "mailgate-cli-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        directory = String(cString: made)
        config = directory + "/mailgate.toml"
        let sample = try String(contentsOfFile: Binary.packageRoot + "/conf/mailgate.toml", encoding: .utf8)
        try sample.write(toFile: config, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Starts a long-running command (serve) with its output discarded.
    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["MAILGATE_CONFIG"] = config
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    func run(_ arguments: [String], stdin: String? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["MAILGATE_CONFIG"] = config
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readAllRetryingInterrupts()
        let err = errors.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self))
    }
}

@Suite("mailgate command line")
struct CLITests {
    @Test("the binary was built")
    func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: Binary.path), "run `swift build` first: \(Binary.path)")
    }

    @Test("--help lists every command of DESIGN §4")
    func help() throws {
        let sandbox = try Sandbox()
        let root = try sandbox.run(["--help"])
        #expect(root.status == 0)
        for command in ["serve", "account", "stats", "journal", "download", "config"] {
            #expect(root.stdout.contains("  \(command) "), "missing \(command)")
        }
        let account = try sandbox.run(["account", "--help"])
        for command in ["add", "connect", "list", "test", "password", "remove"] {
            #expect(account.stdout.contains("  \(command) "), "missing account \(command)")
        }
        let journal = try sandbox.run(["journal", "--help"])
        #expect(journal.stdout.contains("verify") && journal.stdout.contains("checkpoint"))
        let add = try sandbox.run(["account", "add", "--help"])
        for option in ["--server", "--password-stdin", "--shared", "--delegate", "--config", "--state-dir"] {
            #expect(add.stdout.contains(option), "account add lacks \(option)")
        }
    }

    @Test("config check accepts the sample and warns about its placeholder client id")
    func configCheckSample() throws {
        let sandbox = try Sandbox()
        let run = try sandbox.run(["config", "check"])
        #expect(run.status == 0)
        #expect(
            run.stdout.hasPrefix("OK: \(sandbox.config): 1 server, 1 oauth provider, listeners smtp 127.0.0.1:1587"))
        #expect(run.stderr.contains("placeholder"))
        #expect(run.stderr.contains("oauth.m365.client_id"))
    }

    @Test("config check names an unknown key, its line and file, and exits 2")
    func configCheckBroken() throws {
        let sandbox = try Sandbox()
        var text = try String(contentsOfFile: sandbox.config, encoding: .utf8)
        text = text.replacingOccurrences(of: "lock_after_send = true", with: "lock_after_sending = true")
        let broken = sandbox.directory + "/broken.toml"
        try text.write(toFile: broken, atomically: true, encoding: .utf8)
        let run = try sandbox.run(["config", "check", "--config", broken])
        #expect(run.status == 2)
        #expect(run.stderr.contains("server.m365.lock_after_sending"))
        #expect(run.stderr.contains(broken + ":"))
        #expect(run.stdout.isEmpty)
    }

    @Test("bad usage exits 2")
    func badUsage() throws {
        let sandbox = try Sandbox()
        #expect(try sandbox.run(["no-such-command"]).status == 2)
        #expect(try sandbox.run(["stats", "--since", "soon"]).status == 2)
        #expect(try sandbox.run(["account", "add", "not-an-address", "--password-stdin"], stdin: "x\n").status == 2)
    }

    @Test("account add, list --json, password, remove")
    func accountLifecycle() throws {
        let sandbox = try Sandbox()
        let add = try sandbox.run(["account", "add", "Alice@Contoso.com", "--password-stdin"], stdin: "s3cret pass\n")
        #expect(add.status == 0, "\(add.stderr)")
        let again = try sandbox.run(["account", "add", "alice@contoso.com", "--password-stdin"], stdin: "x\n")
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists"))
        let list = try sandbox.run(["account", "list", "--json"])
        #expect(list.status == 0)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(items.count == 1)
        #expect(items.first?["email"] as? String == "alice@contoso.com")
        #expect(items.first?["server"] as? String == "m365")
        #expect(items.first?["token"] as? String == "notConnected")
        // The password is stored only as a hash: no file of the state directory holds it.
        let state = sandbox.directory + "/state"
        let files = try FileManager.default.contentsOfDirectory(atPath: state)
        #expect(files.contains("mailgate.sqlite"))
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: state + "/" + file))
            #expect(bytes.range(of: Data("s3cret pass".utf8)) == nil, "\(file) holds the password")
        }
        let password = try sandbox.run(
            ["account", "password", "alice@contoso.com", "--password-stdin"], stdin: "new\n")
        #expect(password.status == 0)
        let remove = try sandbox.run(["account", "remove", "alice@contoso.com"])
        #expect(remove.status == 0)
        let empty = try sandbox.run(["account", "list", "--json"])
        #expect(
            empty.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]"
                || empty.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        let missing = try sandbox.run(["account", "remove", "alice@contoso.com"])
        #expect(missing.status == 1)
    }

    @Test("journal verify on an empty journal says OK: 0 entries; checkpoint prints the genesis head")
    func journalEmpty() throws {
        let sandbox = try Sandbox()
        let verify = try sandbox.run(["journal", "verify"])
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix("OK: 0 entries"))
        let checkpoint = try sandbox.run(["journal", "checkpoint"])
        #expect(checkpoint.status == 0)
        #expect(checkpoint.stdout == "0 " + String(repeating: "0", count: 64) + "\n")
    }

    @Test("--state-dir overrides the configuration's state_dir")
    func stateDirOverride() throws {
        let sandbox = try Sandbox()
        let state = sandbox.directory + "/elsewhere"
        let add = try sandbox.run(
            ["account", "add", "bob@contoso.com", "--password-stdin", "--state-dir", state], stdin: "pw\n")
        #expect(add.status == 0)
        #expect(FileManager.default.fileExists(atPath: state + "/mailgate.sqlite"))
        let list = try sandbox.run(["account", "list", "--json"])
        #expect(!list.stdout.contains("bob@contoso.com"))
    }

    @Test("serve with the sample configuration answers every protocol, and SIGTERM stops it with exit 0")
    func serveSample() throws {
        let sandbox = try Sandbox()
        // The sample's ports, moved out of the way of anything else on the machine.
        var text = try String(contentsOfFile: sandbox.config, encoding: .utf8)
        text = text.replacingOccurrences(of: "127.0.0.1:1587", with: "127.0.0.1:37587")
            .replacingOccurrences(of: "127.0.0.1:1143", with: "127.0.0.1:37143")
            .replacingOccurrences(of: "127.0.0.1:1110", with: "127.0.0.1:37110")
        try text.write(toFile: sandbox.config, atomically: true, encoding: .utf8)
        let serve = try sandbox.start(["serve"])
        defer { if serve.isRunning { serve.terminate() } }
        #expect(try waitForGreeting(port: 37587).hasPrefix("220 "))
        #expect(try waitForGreeting(port: 37143).hasPrefix("* OK [CAPABILITY IMAP4rev1 "))
        #expect(try waitForGreeting(port: 37110).hasPrefix("+OK "))
        serve.terminate()
        serve.waitUntilExit()
        #expect(serve.terminationStatus == 0)
    }

    @Test("download without an imap-download server says there is nothing to download, exit 1")
    func downloadWithoutServers() throws {
        let sandbox = try Sandbox()
        let download = try sandbox.run(["download"])
        #expect(download.status == 1)
        #expect(download.stderr.contains("imap-download"))
    }

    @Test("download --reload is a usage error while allow_reloading is off, exit 2")
    func downloadReloadRefused() throws {
        let sandbox = try Sandbox()
        let download = try sandbox.run(["download", "--reload"])
        #expect(download.status == 2)
        #expect(download.stderr.contains("allow_reloading"))
    }

    @Test("stats on an empty database")
    func stats() throws {
        let sandbox = try Sandbox()
        let run = try sandbox.run(["stats", "--json", "--since", "2h"])
        #expect(run.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect((object["totals"] as? [Any])?.isEmpty == true)
    }
}

/// Connects to 127.0.0.1:`port` (retrying while the server starts, at most 10 s) and returns the first line it sends.
func waitForGreeting(port: Int) throws -> String {
    let deadline = Date().addingTimeInterval(10)
    while true {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected == 0 {
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while read(descriptor, &byte, 1) == 1, byte != 0x0A { line.append(byte) }
            return String(decoding: line, as: UTF8.self)
        }
        guard Date() < deadline else { throw CocoaError(.fileReadUnknown) }
        Thread.sleep(forTimeInterval: 0.1)
    }
}
