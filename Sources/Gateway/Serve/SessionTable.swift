// Gateway: the open sessions of one listener (SMTP, IMAP or POP3), shared with its accept callback.
import Synchronization

/// The sessions a listener has open, so that a stop or a drain can reach each one. Once `stopAdmitting()` has
/// run, `add` refuses: a connection accepted while the listener stops is closed instead of starting a session
/// the stop would never see (the flag and the set change under one lock).
final class SessionTable<Session: AnyObject & Sendable>: Sendable {
    private struct State {
        var sessions: [ObjectIdentifier: Session] = [:]
        var stopping = false
    }

    private let state = Mutex(State())

    init() {}

    /// Adds `session`; false once the listener stops (the caller closes the connection).
    func add(_ session: Session) -> Bool {
        state.withLock { state in
            guard !state.stopping else { return false }
            state.sessions[ObjectIdentifier(session)] = session
            return true
        }
    }

    /// Forgets `session` (its end).
    func remove(_ session: Session) {
        _ = state.withLock { $0.sessions.removeValue(forKey: ObjectIdentifier(session)) }
    }

    /// Refuses every later `add` and returns the sessions open now.
    @discardableResult
    func stopAdmitting() -> [Session] {
        state.withLock { state in
            state.stopping = true
            return Array(state.sessions.values)
        }
    }

    /// The sessions open now.
    var sessions: [Session] { state.withLock { Array($0.sessions.values) } }

    var count: Int { state.withLock { $0.sessions.count } }
}
