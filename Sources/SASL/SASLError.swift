// SASL: mechanism step machines (server PLAIN/LOGIN, client XOAUTH2/OAUTHBEARER) as pure values; no I/O.
public import MailCore

/// Why a SASL exchange could not go on; safe to log, never carries a secret.
public enum SASLError: MailGateError, Equatable {
    /// A client response line was longer than the configured bound (`Limits.saslResponse`).
    case responseTooLong(actualCount: Int, maximumCount: Int)
    /// A response was not strict RFC 4648 base64 (bad alphabet, bad padding, bad length).
    case invalidBase64
    /// The decoded response was not valid UTF-8.
    case invalidUTF8
    /// A PLAIN message did not have the shape `authzid NUL authcid NUL passwd`.
    case malformedPlain
    /// PLAIN named an authorization identity different from the authentication identity.
    case authorizationIdentityNotAllowed
    /// The user name or password was empty, or contained a NUL byte.
    case emptyOrInvalidCredential
    /// A client mechanism was asked to send a value containing 0x01, CR or LF (would change the message's fields).
    case forbiddenCharacter(field: String)
    /// The exchange was already finished (or never started) when another step was requested.
    case unexpectedStep

    public var description: String {
        switch self {
        case .responseTooLong(let actual, let maximum):
            "The SASL response has \(actual) octets, more than the \(maximum) allowed; the client must send a shorter one."
        case .invalidBase64:
            "The SASL response is not valid base64; the client must encode its response with standard base64."
        case .invalidUTF8:
            "The decoded SASL response is not valid UTF-8; user names and passwords must be UTF-8."
        case .malformedPlain:
            "The PLAIN response is not 'authzid NUL authcid NUL password'; the client must send RFC 4616 PLAIN."
        case .authorizationIdentityNotAllowed:
            "The PLAIN response asks to act as another user, which is not allowed; leave the authorization identity empty."
        case .emptyOrInvalidCredential:
            "The user name or password is empty or contains a NUL byte; the client must send both."
        case .forbiddenCharacter(let field):
            "The \(field) contains a control character (0x01, CR or LF) that SASL cannot carry; check the account configuration."
        case .unexpectedStep:
            "The SASL exchange received a step after it had finished; this is a bug in the caller."
        }
    }
}
