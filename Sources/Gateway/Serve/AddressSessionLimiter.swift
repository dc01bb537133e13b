// Gateway: the per-client-address session limit of the IMAP and POP3 listeners (like SMTP's smtp_sessions_per_address).
import Logging
import MailCore
import Synchronization
import Transport

/// Counts open sessions per client address against one maximum (`[limits]` `imap_sessions_per_address` or
/// `pop3_sessions_per_address`), so 1,000 connections from one address cost 1,000 one-line refusals, not 1,000
/// sessions with their upstream logins. One limiter per listener.
final class AddressSessionLimiter: Sendable {
    private let maximum: Int
    private let counts = Mutex<[IPAddress: Int]>([:])

    init(maximum: Int) { self.maximum = maximum }

    /// Takes a slot for a new session from `address`; false (taking nothing) when the address is at the maximum.
    /// A connection without a known address is not limited here (the total limits still apply).
    func admit(_ address: IPAddress?) -> Bool {
        guard let address else { return true }
        return counts.withLock { counts in
            if counts[address, default: 0] >= maximum { return false }
            counts[address, default: 0] += 1
            return true
        }
    }

    /// Gives back the slot of a session from `address` that has ended.
    func release(_ address: IPAddress?) {
        guard let address else { return }
        counts.withLock { counts in
            guard let current = counts[address] else { return }
            counts[address] = current > 1 ? current - 1 : nil
        }
    }

    /// Sessions holding a slot now, over all addresses (tests and diagnostics).
    var openSessions: Int { counts.withLock { $0.values.reduce(0, +) } }

    /// The accept step the IMAP and POP3 listeners share: past the maximum, `refusal` answers the connection and
    /// closes it; otherwise `make` builds its session, which joins `table` and starts, and gives the slot back when
    /// it ends (or at once, when the listener is stopping and the table refuses it).
    func accept<Session: ListenerSession>(
        _ connection: Connection, into table: SessionTable<Session>, refusal: (Connection) -> Void,
        make: (Connection) -> Session
    ) {
        let address = connection.remoteIPAddress
        guard admit(address) else { return refusal(connection) }
        let session = make(connection)
        guard table.add(session) else {
            release(address)
            connection.close()
            return
        }
        session.onEnd = { [self] in
            table.remove(session)
            release(address)
        }
        session.start()
    }

    /// Answers a refused connection with `line` and closes it; nothing else is set up for it.
    static func refuse(
        _ connection: Connection, line: String, logger: Logger, what: String, counters: any GatewayCounters,
        counter: String, listenerName: String
    ) {
        logger.warning(
            "\(what) connection refused: too many from one address",
            metadata: ["listener": "\(listenerName)", "client": "\(connection.remoteIPAddress?.description ?? "?")"])
        counters.increment(counter, account: nil, listener: listenerName)
        // The handler holds the connection until `.closed` (then cleared): nothing else owns it, and a connection
        // freed with live sources crashes.
        connection.onEvent = { event in
            if case .closed = event { withExtendedLifetime(connection) {} }
        }
        connection.start()
        connection.write(Array(line.utf8))
        connection.closeAfterFlushing()
    }
}

/// A client session as a listener's accept step handles it (IMAP and POP3).
protocol ListenerSession: AnyObject, Sendable {
    var onEnd: (() -> Void)? { get set }
    func start()
}

extension IMAPSession: ListenerSession {}
extension POP3Session: ListenerSession {}
