// GatewayTests/Hostile: the command-line rule of `CommandClock` (slowloris), step by step, and both expiries.
import Dispatch
import Config
import MailCore
import Synchronization
import Testing

@testable import Gateway

@Suite("CommandClock")
struct CommandClockTests {
    private func onQueue<T: Sendable>(_ queue: DispatchQueue, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in queue.async { continuation.resume(returning: body()) } }
    }

    private final class Box: @unchecked Sendable {
        // @unchecked Sendable: used on `queue` only.
        var clock: CommandClock?
    }

    @Test("a line runs from its first byte to its LF; bytes after an LF start the next; streaming stops the clock")
    func rule() async throws {
        let queue = DispatchQueue(label: "test.clock")
        let box = Box()
        let steps: [Bool] = await onQueue(queue) {
            var limits = Limits.standard
            limits.commandLineTimeoutSeconds = 60
            let clock = CommandClock(queue: queue, limits: limits) { _ in }
            box.clock = clock
            var seen: [Bool] = []
            clock.observe(Array("NO".utf8), streaming: false)
            seen.append(clock.isTimingLine)  // true: a line started
            clock.observe(Array("OP\r\n".utf8), streaming: false)
            seen.append(clock.isTimingLine)  // false: it ended
            clock.observe(Array("NOOP\r\nMA".utf8), streaming: false)
            seen.append(clock.isTimingLine)  // true: the next one started
            clock.observe(Array("some message data".utf8), streaming: true)
            seen.append(clock.isTimingLine)  // false: message data is not a command line
            clock.observe([], streaming: false)
            seen.append(clock.isTimingLine)  // false: nothing arrived
            clock.stop()
            clock.observe(Array("X".utf8), streaming: false)
            seen.append(clock.isTimingLine)  // false: stopped for good
            return seen
        }
        #expect(steps == [true, false, true, false, false, false])
    }

    @Test("both bounds fire once, on the queue, with their kind; authenticated() cancels the login bound")
    func expiries() async throws {
        let queue = DispatchQueue(label: "test.clock")
        let fired = Mutex<[CommandClock.Expiry]>([])
        let box = Box()
        var limits = Limits.standard
        limits.commandLineTimeoutSeconds = 0.3
        limits.unauthenticatedTimeoutSeconds = 0.3
        let frozen = limits
        await onQueue(queue) {
            let clock = CommandClock(queue: queue, limits: frozen) { expiry in
                dispatchPrecondition(condition: .onQueue(queue))
                fired.withLock { $0.append(expiry) }
            }
            box.clock = clock
            clock.start()
        }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        #expect(fired.withLock { $0 } == [.unauthenticated])
        let second = Box()
        await onQueue(queue) {
            let clock = CommandClock(queue: queue, limits: frozen) { expiry in fired.withLock { $0.append(expiry) } }
            second.clock = clock
            clock.start()
            clock.authenticated()
            clock.observe(Array("x".utf8), streaming: false)
        }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        #expect(fired.withLock { $0 } == [.unauthenticated, .commandLine])
    }
}

@Suite("Per-address limits on reload")
struct PerAddressReloadTests {
    @Test("a changed pop3_sessions_per_address waits for a restart (the POP3 listeners are not rebuilt); the slowloris bounds do not")
    func pop3PerAddressNeedsRestart() {
        let old = MailGateConfiguration(
            sourceFile: "/tmp/mailgate.toml", stateDirectory: "/tmp/state", listen: ListenSettings(), oauth: [:],
            servers: [:], download: DownloadSettings())
        var new = old
        new.limits.commandLineTimeoutSeconds = 30
        new.limits.unauthenticatedTimeoutSeconds = 60
        #expect(!GatewayServer.restartOnlyChanges(from: old, to: new).contains { $0.contains("per_address") })
        new.limits.pop3SessionsPerAddress = 5
        #expect(GatewayServer.restartOnlyChanges(from: old, to: new).contains("[limits] pop3_sessions_per_address"))
    }
}
