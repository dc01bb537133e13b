// SMTP: the seam through which the server side runs a SASL mechanism it does not implement itself.
public import MailCore

/// One step of a server-side SASL exchange, as the SMTP server side needs it.
///
/// The SMTP module may not import SASL; the Gateway adapts `SASL.SASLServerMechanism` to
/// `SMTPAuthExchange` (a ten-line mapping of `SASLServerStep` to this enum).
public enum SMTPAuthStep: Sendable, Equatable {
    /// Send `334 <challenge>` (base64, may be empty) and wait for a response line.
    case challenge(String)
    /// The exchange finished; the server side asks the session to verify these.
    case credentials(username: String, password: Redacted<String>)
    /// The client sent `*`: answered `501 5.0.0`.
    case cancelled
    /// The response could not be decoded: answered `501 5.5.2`. `reason` is safe to log.
    case failed(reason: String)
}

/// A server-side SASL mechanism as a step machine (PLAIN, LOGIN), injected by the session.
public protocol SMTPAuthExchange: Sendable {
    /// Begins with the AUTH command's initial response (`=` means empty), if the client gave one.
    mutating func start(initialResponse: String?) -> SMTPAuthStep
    /// Feeds one client line (without CRLF) answering a challenge.
    mutating func respond(_ line: String) -> SMTPAuthStep
}
