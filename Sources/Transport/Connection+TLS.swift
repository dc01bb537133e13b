// Transport: TLS on a connection (implicit TLS and STARTTLS), driving TLS.TLSConnection on memory BIOs.

public import TLS
import Dispatch
import MailCore

/// Adapts `TLS.TLSConnection` to the engine protocol the connection core drives (errors become
/// `TransportError.tls`).
final class OpenSSLEngine: TLSEngine {
    let session: TLSConnection

    init(_ session: TLSConnection) { self.session = session }

    func receiveFromNetwork(_ bytes: [UInt8]) { session.receiveFromNetwork(bytes) }

    func handshakeStep() throws(TransportError) -> Bool {
        do throws(TLSError) {
            return try session.handshake() == .complete
        } catch {
            throw .tls(error)
        }
    }

    func readPlaintext(maximumCount: Int) throws(TransportError) -> TLSReadOutcome {
        do throws(TLSError) {
            switch try session.readPlaintext(maximumCount: min(maximumCount, TLSConnection.maximumReadCount)) {
            case .data(let bytes): return .data(bytes)
            case .needMoreInput: return .needMoreInput
            case .closed: return .closed
            }
        } catch {
            throw .tls(error)
        }
    }

    func writePlaintext(_ bytes: [UInt8]) throws(TransportError) {
        do throws(TLSError) {
            try session.writePlaintext(bytes)
        } catch {
            throw .tls(error)
        }
    }

    func takeNetworkOutput() -> [UInt8] { session.takeNetworkOutput() }
    var hasNetworkOutput: Bool { session.hasNetworkOutput }
    func shutdown() { session.shutdown() }
    var protocolVersion: String? { session.protocolVersion }
}

extension Connection {
    /// Upgrades to TLS as the client (SMTP STARTTLS after "220", IMAP STARTTLS after "OK", POP3 STLS after "+OK").
    ///
    /// Bytes already written go out first, in plaintext. Plaintext that was received but not yet delivered is
    /// DISCARDED: anything the server sent after its go-ahead, before the handshake, could be an injected
    /// response (RFC 3207 §4, CVE-2011-0411 class). Events resume in TLS once the handshake completes;
    /// `completion` runs on `queue` with nil or the failure (the connection is then closed).
    /// The handshake must finish within `limits.handshakeTimeoutSeconds`.
    public func startTLS(
        context: TLSContext, serverName: String?, completion: @escaping (TransportError?) -> Void
    ) {
        dispatchPrecondition(condition: .onQueue(queue))
        startTLSEngine(context: context, serverName: serverName, completion: completion)
    }

    /// Upgrades to TLS as the server. Write the go-ahead reply to the client's STARTTLS/STLS and call this in
    /// the same turn of `queue` (typically inside the `.line` handler): the reply goes out first, in plaintext,
    /// and no read can slip in between. Client plaintext pipelined after the STARTTLS command is DISCARDED, never
    /// read as if it had come over TLS (RFC 3207 §4). Also used by implicit-TLS listeners right after accept.
    public func startServerTLS(context: TLSContext, completion: ((TransportError?) -> Void)? = nil) {
        dispatchPrecondition(condition: .onQueue(queue))
        startTLSEngine(context: context, serverName: nil, completion: completion)
    }

    func startTLSEngine(context: TLSContext, serverName: String?, completion: ((TransportError?) -> Void)?) {
        let engine: TLSConnection
        do throws(TLSError) {
            engine = try TLSConnection(context: context, serverName: serverName)
        } catch {
            completion?(.tls(error))
            fail(.tls(error))
            return
        }
        beginTLS(engine: OpenSSLEngine(engine), timeout: limits.handshakeTimeoutSeconds, completion: completion)
    }
}
