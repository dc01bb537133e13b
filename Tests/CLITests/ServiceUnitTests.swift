// CLITests: conf/mailgate.service as systemd reads it: `systemd-analyze verify` accepts it and its sandbox
// settings are the ones the README promises.
import Foundation
import MailGateTesting
import Testing

@Suite("systemd unit")
struct ServiceUnitTests {
    static let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// The unit with ExecStart pointing at the binary just built (verify checks that the command exists).
    static func unitForThisBuild() throws -> String {
        let unit = try String(contentsOfFile: Binary.packageRoot + "/conf/mailgate.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/mailgate serve"))
        var template = Array((NSTemporaryDirectory() + "mailgate-unit-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        let path = String(cString: made) + "/mailgate.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/mailgate", with: Binary.path)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze!)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("systemd-analyze verify accepts conf/mailgate.service", .enabled(if: analyze != nil, "systemd-analyze is not installed"))
    func verify() throws {
        let path = try Self.unitForThisBuild()
        let result = try Self.run(["verify", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("mailgate.service:"), "\(result.output)")
    }

    @Test("systemd-analyze security rates the unit's exposure at most 2.0", .enabled(if: analyze != nil, "systemd-analyze is not installed"))
    func exposure() throws {
        let path = try Self.unitForThisBuild()
        let result = try Self.run(["security", "--offline=yes", "--no-pager", path])
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(score <= 2.0, "\(line)")
    }

    @Test("the unit has the settings the README promises")
    func settings() throws {
        let unit = try String(contentsOfFile: Binary.packageRoot + "/conf/mailgate.service", encoding: .utf8)
        let lines = Set(unit.split(separator: "\n").map(String.init))
        for expected in [
            "Type=notify", "User=mailgate", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes",
            "PrivateTmp=yes", "StateDirectory=mailgate", "LimitNOFILE=65536", "Restart=on-failure",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
    }

    @Test("serve refuses an unknown --log-level or --log-format with exit 2 and a sentence")
    func badLogFlags() throws {
        let sandbox = try Sandbox()
        let level = try sandbox.run(["serve", "--log-level", "loud"])
        #expect(level.status == 2)
        #expect(level.stderr.contains("--log-level must be one of trace, debug, info"))
        let format = try sandbox.run(["serve", "--log-format", "xml"])
        #expect(format.status == 2)
        #expect(format.stderr.contains("--log-format must be auto, plain, journal or json"))
    }
}
