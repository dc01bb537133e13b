// Gateway: the two slowloris bounds every client session keeps (issue 13): one command line, and the time before login.
import Dispatch
import MailCore

/// Bounds how long a client may take over one command line and how long it may stay unauthenticated.
///
/// The connection's idle timer restarts on every byte, so a client that sends one byte every few seconds and never a
/// line end would hold its session (and a descriptor, an upstream slot) for ever. The rule, the same for SMTP, IMAP
/// and POP3: a command line must be complete (its LF received) within `[limits] command_line_timeout` of its first
/// byte; message data (SMTP DATA and BDAT) and IMAP literals are not command lines — while the session streams them
/// the line clock is off, and they are bounded by the idle timeout per chunk and by their size, so a large APPEND or
/// DATA sent slowly but steadily completes. Before login the whole session is bounded by
/// `[limits] unauthenticated_timeout`.
///
/// Threading: used on its session's serial queue only; the timers fire there.
final class CommandClock {
    /// Which bound ran out.
    enum Expiry: Equatable {
        /// One command line took longer than `command_line_timeout`.
        case commandLine
        /// The client did not log in within `unauthenticated_timeout`.
        case unauthenticated
    }

    private let queue: DispatchQueue
    private let lineSeconds: Double
    private let loginSeconds: Double
    private var lineTimer: (any DispatchSourceTimer)?
    private var loginTimer: (any DispatchSourceTimer)?
    private var expired: ((Expiry) -> Void)?
    private var stopped = false

    /// `expired` runs on `queue` once, for the first bound that runs out; a bound of 0 or less is off.
    init(queue: DispatchQueue, limits: Limits, expired: @escaping (Expiry) -> Void) {
        self.queue = queue
        self.lineSeconds = limits.commandLineTimeoutSeconds
        self.loginSeconds = limits.unauthenticatedTimeoutSeconds
        self.expired = expired
    }

    /// Starts the unauthenticated-phase bound (call when the session starts).
    func start() {
        guard !stopped, loginSeconds > 0, loginTimer == nil else { return }
        loginTimer = arm(loginSeconds, .unauthenticated)
    }

    /// The client logged in: the unauthenticated-phase bound no longer applies. Idempotent.
    func authenticated() {
        loginTimer?.cancel()
        loginTimer = nil
    }

    /// Call after the session has handled `bytes` from the client. `streaming` is true while the session is
    /// receiving message data or a literal (or holds the client's input back itself): no line clock then.
    ///
    /// A line end in `bytes` completes the line that was running; bytes after the last line end start a new one.
    func observe(_ bytes: [UInt8], streaming: Bool) {
        guard !stopped else { return }
        if streaming {
            stopLine()
            return
        }
        guard let last = bytes.lastIndex(of: 0x0A) else {
            if lineTimer == nil && !bytes.isEmpty { startLine() }
            return
        }
        stopLine()
        if last < bytes.count - 1 { startLine() }
    }

    /// The session entered a state in which the client's bytes are not command lines (message data, a literal),
    /// or is holding input back itself: the line clock stops until the next `observe`.
    func pauseLine() {
        stopLine()
    }

    /// Whether a command line is being timed (tests and diagnostics).
    var isTimingLine: Bool { lineTimer != nil }

    /// Cancels both bounds for good (the session ended).
    func stop() {
        stopped = true
        stopLine()
        authenticated()
        expired = nil
    }

    private func startLine() {
        guard lineSeconds > 0 else { return }
        lineTimer = arm(lineSeconds, .commandLine)
    }

    private func stopLine() {
        lineTimer?.cancel()
        lineTimer = nil
    }

    private func arm(_ seconds: Double, _ expiry: Expiry) -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in self?.fire(expiry) }
        timer.schedule(deadline: .now() + seconds)
        timer.activate()
        return timer
    }

    private func fire(_ expiry: Expiry) {
        guard !stopped, let expired else { return }
        stop()
        expired(expiry)
    }
}
