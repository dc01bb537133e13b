// TLS: contexts and sans-I/O connections on memory BIOs over the system OpenSSL, with full verification.

public import MailCore

/// What can go wrong in `TLS`. Reasons are OpenSSL's own texts (never peer-supplied bytes, never secrets).
public enum TLSError: MailGateError, Equatable {
    /// A certificate, key or CA file is missing, unreadable or does not fit; the reason names the file.
    case configuration(String)
    /// The peer's certificate was refused; the reason is OpenSSL's verify text
    /// (X509_verify_cert_error_string), e.g. "self-signed certificate" or "Hostname mismatch".
    case certificateVerificationFailed(String)
    /// The handshake failed for another reason (no common protocol or cipher, garbage from the peer, an alert).
    case handshakeFailed(String)
    /// After the handshake, the peer sent something TLS forbids, or the session is unusable.
    case protocolError(String)

    public var description: String {
        switch self {
        case .configuration(let reason):
            "TLS is misconfigured: \(reason); fix the certificate, key or CA file setting and restart."
        case .certificateVerificationFailed(let reason):
            "The peer's TLS certificate was refused (\(reason)); check the server name and that its CA "
                + "is in the system trust store or in ca_file."
        case .handshakeFailed(let reason):
            "The TLS handshake failed (\(reason)); check that the peer speaks TLS 1.2 or later on this port."
        case .protocolError(let reason):
            "The TLS session broke (\(reason)); the connection must be closed and may be retried."
        }
    }
}
