// GatewayTests/Service: sd_notify by hand: datagrams to a socket path and to an abstract socket, as systemd reads them.
import Foundation
import Testing

@testable import Gateway

@Suite("systemd notifications")
struct SystemdNotifierTests {
    @Test("READY, RELOADING and STOPPING reach a socket at a path and an abstract one", arguments: [false, true])
    func sequence(abstract: Bool) throws {
        let socket = try NotifySocket(abstract: abstract)
        let notifier = SystemdNotifier(socketPath: socket.name)
        try notifier.ready(status: "listening on smtp 127.0.0.1:1587\nsecond line")
        let ready = try #require(socket.receive(timeout: 2))
        let fields = ready.split(separator: "\n").map(String.init)
        #expect(fields.contains("READY=1"))
        #expect(fields.contains("MAINPID=\(getpid())"))
        // A newline in a status would start a new assignment: it is sent as a space.
        #expect(fields.contains("STATUS=listening on smtp 127.0.0.1:1587 second line"))
        try notifier.reloading()
        let reloading = try #require(socket.receive(timeout: 2))
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        let microseconds = try #require(reloading.split(separator: "=").last.flatMap { Int64($0) })
        #expect(microseconds > 0)
        try notifier.stopping()
        #expect(socket.receive(timeout: 2) == "STOPPING=1")
    }

    @Test("without NOTIFY_SOCKET nothing is sent and nothing fails")
    func absent() throws {
        let notifier = SystemdNotifier(socketPath: nil)
        try notifier.ready(status: "x")
        try notifier.stopping()
    }

    @Test("a socket nobody listens on and a relative path are errors with a sentence")
    func failures() {
        let missing = SystemdNotifier(socketPath: NSTemporaryDirectory() + "mailgate-no-such-\(getpid()).sock")
        #expect(throws: SystemdNotifyError.self) { try missing.stopping() }
        let relative = SystemdNotifier(socketPath: "relative.sock")
        do {
            try relative.stopping()
            Issue.record("a relative socket path was accepted")
        } catch {
            #expect(error.description.contains("neither an absolute path nor an abstract name"))
        }
    }
}
