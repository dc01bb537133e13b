// GatewayTests/Service: scripts/demo (issue 12 point 6): it brings up a gateway with two connected accounts on the
// running stand-in, swaks sends through it, curl reads the message through it, and SIGTERM stops everything.
import Foundation
import MailGateTesting
import Testing

extension StandInTests {
    /// Listener ports 29606-29607.
    @Suite("scripts/demo end to end", .serialized)
    struct DemoEndToEndTests {
        /// Runs a program to completion; (status, stdout + stderr).
        static func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readAllRetryingInterrupts()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        @Test("scripts/demo: swaks sends alice → bob through it, curl reads it back through it, SIGTERM stops it")
        func demo() async throws {
            guard StandIn.load() != nil else { return }
            let output = Pipe()
            let demo = Process()
            // Through python3 with an empty signal mask: the test process's threads block signals, a spawned child
            // inherits the mask, and bash would never run its SIGTERM trap (an administrator's shell blocks none).
            demo.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            demo.arguments = [
                "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                    + "os.execv('/bin/bash', ['bash', sys.argv[1]])",
                StandIn.packageRoot + "/scripts/demo",
            ]
            var environment = ProcessInfo.processInfo.environment
            environment["MAILGATE_BIN"] = MailGateInstallation.binary
            environment["MAILGATE_DEMO_SMTP_PORT"] = "29606"
            environment["MAILGATE_DEMO_IMAP_PORT"] = "29607"
            demo.environment = environment
            demo.standardOutput = output
            demo.standardError = output
            demo.standardInput = FileHandle.nullDevice
            try demo.run()
            defer { if demo.isRunning { kill(demo.processIdentifier, SIGKILL) } }
            let collected = OutputCollector(output.fileHandleForReading)
            let deadline = Date().addingTimeInterval(120)
            while !collected.text.contains("Press Ctrl-C to stop."), demo.isRunning, Date() < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(collected.text.contains("Press Ctrl-C to stop."), "demo did not come up: \(collected.text.suffix(1500))")
            #expect(collected.text.contains("using the stand-in that is already running"))
            #expect(collected.text.contains("swaks --server 127.0.0.1:29606"))
            #expect(collected.text.contains("imap://127.0.0.1:29607/INBOX"))

            let subject = "demo \(UInt64.random(in: 0...UInt64.max))"
            let sent = try Self.run(
                "/usr/bin/swaks",
                [
                    "--server", "127.0.0.1:29606", "--auth-user", "alice@contoso.test", "--auth-password",
                    "demo-password", "--from", "alice@contoso.test", "--to", "bob@contoso.test", "--header",
                    "Subject: \(subject)",
                ])
            #expect(sent.status == 0, "\(sent.output.suffix(1500))")
            #expect(sent.output.contains("<-  250 "))

            // Delivery (Postfix → LMTP → Dovecot) is asynchronous: search bob's INBOX through the demo until it is there.
            var uid: String?
            let found = Date().addingTimeInterval(30)
            while uid == nil, Date() < found {
                let search = try Self.run(
                    "/usr/bin/curl",
                    ["-sS", "--user", "bob@contoso.test:demo-password", "imap://127.0.0.1:29607/INBOX",
                     "-X", "UID SEARCH SUBJECT \"\(subject)\""])
                uid = search.output.split(separator: "\n").first { $0.hasPrefix("* SEARCH ") }?
                    .split(separator: " ").dropFirst(2).last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                if uid == nil { try await Task.sleep(for: .milliseconds(300)) }
            }
            let foundUID = try #require(uid, "the message did not reach bob's INBOX")
            let fetched = try Self.run(
                "/usr/bin/curl",
                ["-sS", "--user", "bob@contoso.test:demo-password", "imap://127.0.0.1:29607/INBOX;UID=\(foundUID)"])
            #expect(fetched.output.contains("Subject: \(subject)"), "\(fetched.output.prefix(800))")

            kill(demo.processIdentifier, SIGTERM)
            let stopped = Date().addingTimeInterval(45)
            while demo.isRunning, Date() < stopped { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!demo.isRunning, "demo did not stop on SIGTERM")
            #expect(demo.terminationStatus == 0)
            #expect(collected.text.contains("demo: stopped"))
            #expect(LineClient(port: 29606) == nil, "the demo's SMTP listener is still open")
            #expect(LineClient(port: 29607) == nil, "the demo's IMAP listener is still open")
            // The stand-in the demo did not start is still there for the other tests.
            #expect(StandIn.load() != nil)
        }
    }
}

/// Collects a pipe's output in the background (a demo that runs until told to stop never reaches end of file).
final class OutputCollector: @unchecked Sendable {
    // @unchecked: `buffer` is only touched under `lock`.
    private let lock = NSLock()
    private var buffer = Data()

    init(_ handle: FileHandle) {
        handle.readabilityHandler = { [self] handle in
            let data = handle.readChunkRetryingInterrupts() ?? Data()
            if data.isEmpty { handle.readabilityHandler = nil }
            lock.lock()
            buffer.append(data)
            lock.unlock()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: buffer, as: UTF8.self)
    }
}
