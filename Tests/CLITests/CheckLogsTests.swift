// CLITests: integration/check-logs finds a planted secret of each kind in a kept log, and passes clean logs.
import Foundation
import MailGateTesting
import Testing

@Suite("integration/check-logs")
struct CheckLogsTests {
    /// Runs the script over `logs` with `run` as the stand-in's run directory.
    static func check(logs: String, run: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Binary.packageRoot + "/integration/check-logs"]
        var environment = ProcessInfo.processInfo.environment
        environment["MAILGATE_TEST_LOGS"] = logs
        environment["MAILGATE_STANDIN_RUN_DIR"] = run
        environment["MAILGATE_REQUIRE_INTEGRATION"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let token =
        "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSJ9.c2lnbmF0dXJlLXBhcnQtdGhhdC1pcy1yYW5kb20tYW5kLXVuaXF1ZQ"
    static let refresh = "1.AQ" + String(repeating: "Zm9vYmFy", count: 8)

    @Test("clean logs pass; a token piece, a refresh token, a password or a missing log fails", arguments: [
        "", "token: …" + String(token.prefix(60)) + "…", "refresh=" + refresh,
        "login failed password=e2e-Local-Passw0rd", "user: dXNlcj1hbGljZUBjb250b3NvLnRlc3QBYXV0aD1CZWFyZXIg", "pw=kept-secret-42",
        "no logs",
    ])
    func planted(_ leak: String) throws {
        var template = Array((NSTemporaryDirectory() + "mailgate-checklogs-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        let root = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let logs = root + "/logs"
        let run = root + "/run"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        try (Self.token + "\n" + Self.refresh + "\n").write(toFile: run + "/issued-tokens", atomically: true, encoding: .utf8)
        try "kept-secret-42\n".write(toFile: logs + "/secrets-x.txt", atomically: true, encoding: .utf8)
        if leak != "no logs" {
            let text = "<6>mailgate: SMTP session started remote=127.0.0.1\n<6>mailgate: \(leak)\n"
            try text.write(toFile: logs + "/one-serve.log", atomically: true, encoding: .utf8)
        }
        let result = try Self.check(logs: logs, run: run)
        if leak.isEmpty {
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("1 logs"))
        } else {
            #expect(result.status == 1, "\(leak): \(result.output)")
        }
    }
}
