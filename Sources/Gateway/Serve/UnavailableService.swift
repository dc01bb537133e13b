// Gateway: listeners for protocols this build does not gateway yet: a proper refusal greeting, then close.
public import Transport
public import Logging
public import TLS
import Dispatch

/// Answers every connection with the protocol's "service not available" greeting and closes it.
///
/// IMAP gets `* BYE` (RFC 3501 §7.1.5), POP3 `-ERR` (RFC 1939 §4): clients show the text instead of hanging.
public final class UnavailableService: Sendable {
    public enum Kind: String, Sendable {
        case imap, pop3

        var greeting: [UInt8] {
            switch self {
            case .imap: Array("* BYE [UNAVAILABLE] MailGate does not serve IMAP in this version\r\n".utf8)
            case .pop3: Array("-ERR [SYS/PERM] MailGate does not serve POP3 in this version\r\n".utf8)
            }
        }
    }

    private let listener: Listener

    public var boundAddress: HostPort { listener.boundAddress }

    public init(kind: Kind, address: HostPort, tls: TLSContext?, logger: Logger) throws {
        listener = try Listener(address: address, tls: tls) { connection in
            connection.queue.async {
                connection.onEvent = { _ in }
                connection.start()
                connection.write(kind.greeting)
                connection.closeAfterFlushing()
            }
        }
        logger.notice("\(kind.rawValue) listener on \(listener.boundAddress) refuses: not served in this version")
    }

    public func close() { listener.close() }
}
