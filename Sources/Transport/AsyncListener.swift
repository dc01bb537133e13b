// Transport: an async accept loop over Listener for tests and sequential servers.

public import MailCore
public import TLS
import Synchronization

/// A listener whose connections are taken one at a time with `await accept()`.
///
/// Connections that arrive while nobody is waiting queue up to `backlogLimit`; more are closed at once.
public final class AsyncListener: Sendable {
    /// Accepted connections not yet taken, at most this many.
    public static let backlogLimit = 256

    private struct Pending: Sendable {
        var ready: [AsyncConnection] = []
        var waiters: [CheckedContinuation<Result<AsyncConnection, TransportError>, Never>] = []
        var closed = false
    }

    private let listener: Listener
    private let pending: Box

    private final class Box: Sendable {
        let state = Mutex(Pending())
    }

    /// Binds and listens; with `tls`, every accepted connection handshakes as a TLS server first.
    public init(address: HostPort, tls: TLSContext?, limits: Limits = .standard) throws(TransportError) {
        let box = Box()
        self.pending = box
        self.listener = try Listener(address: address, tls: tls, limits: limits) { connection in
            let wrapped = AsyncConnection(connection, installOnQueue: true)
            let waiter = box.state.withLock {
                state -> CheckedContinuation<Result<AsyncConnection, TransportError>, Never>?? in
                if state.closed { return .some(nil) }
                if !state.waiters.isEmpty { return state.waiters.removeFirst() }
                guard state.ready.count < AsyncListener.backlogLimit else { return .some(nil) }
                state.ready.append(wrapped)
                return nil
            }
            switch waiter {
            case .some(.some(let continuation)): continuation.resume(returning: .success(wrapped))
            case .some(.none): connection.close()
            case .none: break
            }
        }
    }

    /// The address actually bound (port 0 resolved).
    public var boundAddress: HostPort { listener.boundAddress }

    /// The next accepted connection (already started). Throws `.connectionClosed` after `close()`.
    public func accept() async throws(TransportError) -> AsyncConnection {
        let result = await withCheckedContinuation { continuation in
            let ready = pending.state.withLock { state -> Result<AsyncConnection, TransportError>? in
                if !state.ready.isEmpty { return .success(state.ready.removeFirst()) }
                if state.closed { return .failure(.connectionClosed) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }

    /// Stops listening; waiting `accept()` calls throw, and queued unaccepted connections are closed.
    public func close() {
        listener.close()
        let (waiters, ready) = pending.state.withLock { state in
            state.closed = true
            defer {
                state.waiters = []
                state.ready = []
            }
            return (state.waiters, state.ready)
        }
        for waiter in waiters { waiter.resume(returning: .failure(.connectionClosed)) }
        for connection in ready { connection.close() }
    }
}
