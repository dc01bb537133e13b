// Transport: the one error type of the network layer.

public import MailCore
public import TLS

/// Why a connection, listener or read failed; `description` says what to check.
public enum TransportError: MailGateError, Equatable {
    /// The TCP connection to the address could not be made (refused, unreachable, name unknown).
    case connectFailed(HostPort, String)
    /// A connect, handshake or idle wait took longer than allowed; the text names what was waited for.
    case timedOut(String)
    /// TLS failed: certificate refused (`.certificateVerificationFailed`), handshake or record error.
    case tls(TLSError)
    /// The peer closed the connection before the expected data arrived.
    case closedByPeer
    /// A line passed its bound (`limit` bytes, line ending included).
    case lineTooLong(limit: Int)
    /// More bytes were queued for writing than the connection's write buffer bound allows.
    case writeBufferFull(limit: Int)
    /// A socket call failed; the text carries the call and the system's reason.
    case io(String)
    /// The listen address is already taken by another socket.
    case addressInUse(HostPort)
    /// The listen address could not be used for another reason (not local, permission, bad name).
    case bindFailed(HostPort, String)
    /// An operation was attempted on a connection that is already closed.
    case connectionClosed

    public var description: String {
        switch self {
        case .connectFailed(let address, let reason):
            "Could not connect to \(address): \(reason); check the address and that the server is running."
        case .timedOut(let what):
            "Timed out \(what); check the network path and the peer."
        case .tls(let error):
            error.description
        case .closedByPeer:
            "The peer closed the connection unexpectedly; retry, and check the peer's logs if it repeats."
        case .lineTooLong(let limit):
            "The peer sent a line longer than \(limit) bytes; the connection is closed to protect memory."
        case .writeBufferFull(let limit):
            "More than \(limit) bytes were waiting to be sent; the peer is not reading, so the connection is closed."
        case .io(let reason):
            "A network operation failed (\(reason)); the connection is closed."
        case .addressInUse(let address):
            "The address \(address) is already in use; stop the other program or choose another port."
        case .bindFailed(let address, let reason):
            "Could not listen on \(address): \(reason); check that the address is local and the port is allowed."
        case .connectionClosed:
            "The connection is already closed; open a new one."
        }
    }
}
