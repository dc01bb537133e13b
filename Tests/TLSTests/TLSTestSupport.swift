// TLSTests: an in-memory pair of TLS connections, driven by moving each side's output into the other.

import MailGateTesting
import TLS

/// How an in-memory handshake ended on each side (`nil` = completed).
struct HandshakeOutcome {
    var clientError: TLSError?
    var serverError: TLSError?
    var clientComplete: Bool
    var serverComplete: Bool
}

/// Runs both handshakes to completion or failure, moving ciphertext across after every step.
/// Bounded: a handshake needs a handful of round trips; 20 is far more than enough.
func runHandshake(client: TLSConnection, server: TLSConnection) -> HandshakeOutcome {
    var clientError: TLSError? = nil
    var serverError: TLSError? = nil
    for _ in 0..<20 {
        if clientError == nil, !client.isHandshakeComplete {
            do { _ = try client.handshake() } catch { clientError = error }
        }
        server.receiveFromNetwork(client.takeNetworkOutput())
        if serverError == nil, !server.isHandshakeComplete {
            do { _ = try server.handshake() } catch { serverError = error }
        }
        client.receiveFromNetwork(server.takeNetworkOutput())
        let clientDone = client.isHandshakeComplete || clientError != nil
        let serverDone = server.isHandshakeComplete || serverError != nil
        if clientDone && serverDone && !client.hasNetworkOutput && !server.hasNetworkOutput { break }
    }
    return HandshakeOutcome(
        clientError: clientError, serverError: serverError,
        clientComplete: client.isHandshakeComplete, serverComplete: server.isHandshakeComplete)
}

/// Moves `sender`'s output to `receiver` and reads all plaintext that becomes available.
func transfer(from sender: TLSConnection, to receiver: TLSConnection) throws(TLSError) -> [UInt8] {
    receiver.receiveFromNetwork(sender.takeNetworkOutput())
    var received: [UInt8] = []
    while case .data(let bytes) = try receiver.readPlaintext(maximumCount: 65_536) {
        received += bytes
    }
    sender.receiveFromNetwork(receiver.takeNetworkOutput())  // e.g. session tickets' acknowledgements
    return received
}

/// A connected pair: client verifying `localhost` against the test CA, server with the localhost leaf.
func connectedPair(serverName: String = "localhost") throws -> (client: TLSConnection, server: TLSConnection) {
    let certificates = try TestCertificates.make()
    let client = try TLSConnection(context: try TLSContext.client(caFile: certificates.caFile), serverName: serverName)
    let server = try TLSConnection(
        context: try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile),
        serverName: nil)
    return (client, server)
}

extension TLSError {
    /// The reason text, whatever the case.
    var reason: String {
        switch self {
        case .configuration(let reason), .certificateVerificationFailed(let reason), .handshakeFailed(let reason),
            .protocolError(let reason):
            reason
        }
    }

    var isVerificationFailure: Bool {
        if case .certificateVerificationFailed = self { return true }
        return false
    }

    var isHandshakeFailure: Bool {
        if case .handshakeFailed = self { return true }
        return false
    }

    var isProtocolError: Bool {
        if case .protocolError = self { return true }
        return false
    }

    var isConfiguration: Bool {
        if case .configuration = self { return true }
        return false
    }
}
