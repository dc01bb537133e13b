// Transport: pumps bytes both ways between two connections on one queue, with back-pressure and half-close.

import Dispatch
import MailCore

/// Connects two connections back to back (client ⇄ upstream once a session has nothing left to translate).
public enum Relay {
    /// Copies everything `a` receives to `b` and everything `b` receives to `a`, until both are closed.
    ///
    /// - Both connections must share one queue; call this on it. Both are switched to `.raw` and started; bytes
    ///   they had already buffered are relayed first.
    /// - Back-pressure: when the receiving side has more than `limits.writeBufferHighWater` bytes queued, the
    ///   sending side stops reading until `.writable`; so per direction at most high water plus one read chunk
    ///   is held in memory, whatever the speeds.
    /// - Half-close: a FIN from one side becomes `shutdownWrite()` on the other (after flushing); the other
    ///   direction keeps flowing.
    /// - A failure on either side closes the other at once; a clean close lets the other flush, then close.
    /// - `onFinish` runs once, on the queue, after both connections are closed.
    public static func pump(_ a: Connection, _ b: Connection, onFinish: @escaping () -> Void) {
        precondition(a.queue === b.queue, "Relay.pump needs both connections on one queue")
        dispatchPrecondition(condition: .onQueue(a.queue))
        let state = RelayState(a, b, onFinish: onFinish)
        state.install()
    }
}

/// The two directions of one relay.
private final class RelayState {
    enum Side { case open, closed }

    let a: Connection
    let b: Connection
    var aSide = Side.open
    var bSide = Side.open
    var onFinish: (() -> Void)?

    init(_ a: Connection, _ b: Connection, onFinish: @escaping () -> Void) {
        self.a = a
        self.b = b
        self.onFinish = onFinish
    }

    func install() {
        wire(from: a, to: b)
        wire(from: b, to: a)
        a.readMode = .raw
        b.readMode = .raw
        a.start()
        b.start()
        if a.isClosed { closed(a, error: nil) }
        if b.isClosed { closed(b, error: nil) }
    }

    private func wire(from source: Connection, to sink: Connection) {
        source.onInputClosed = {
            sink.shutdownWrite()
        }
        source.onEvent = { [self] event in
            switch event {
            case .raw(let bytes):
                sink.write(bytes)
                if sink.pendingWriteBytes > sink.limits.writeBufferHighWater { source.pauseReading() }
            case .writable:
                // `source` drained its write queue: the other side may read again.
                sink.resumeReading()
            case .closed(let error):
                closed(source, error: error)
            case .line, .bytes, .lineTooLong, .idleTimeout:
                // Raw mode delivers neither lines nor runs; an idle timeout closes the side by itself.
                break
            }
        }
    }

    private func closed(_ connection: Connection, error: TransportError?) {
        let other = connection === a ? b : a
        if connection === a { aSide = .closed } else { bSide = .closed }
        if error != nil {
            other.close()
        } else {
            other.closeAfterFlushing()
        }
        if aSide == .closed && bSide == .closed {
            let finish = onFinish
            onFinish = nil
            finish?()
        }
    }
}
