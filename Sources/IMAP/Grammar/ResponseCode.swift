// IMAP: response codes inside `[...]` of status responses (RFC 3501 §7.1, RFC 4315, RFC 5530).

/// A response code: machine-readable detail on an OK/NO/BAD/BYE/PREAUTH line.
///
///     S: A0007 OK [APPENDUID 1 4212] APPEND completed.
///     S: * OK [UIDVALIDITY 14] UIDs valid.
public enum ResponseCode: Hashable, Sendable {
    case alert
    case badCharset([String])
    case capability([Capability])
    case parse
    case permanentFlags([Flag])
    case readOnly
    case readWrite
    case tryCreate
    case uidNext(UInt32)
    case uidValidity(UInt32)
    case unseen(UInt32)
    /// RFC 4315: the UIDVALIDITY of the target mailbox and the UID the appended message received.
    case appendUID(uidValidity: UInt32, uid: UInt32)
    /// RFC 4315: source and destination UID sets, kept as their wire text.
    case copyUID(uidValidity: UInt32, sourceUIDs: String, destinationUIDs: String)
    /// RFC 5530: the operation violates a server rule (also what lock-after-send answers).
    case cannot
    /// Any other code: its atom and the text up to `]`, if any.
    case other(name: String, text: String?)
}

/// Whether a completion was OK, NO or BAD.
public enum ResponseStatus: String, Hashable, Sendable {
    case ok = "OK"
    case no = "NO"
    case bad = "BAD"
}

/// The human part of a status response: an optional code and the free text after it.
public struct ResponseText: Hashable, Sendable, CustomStringConvertible {
    public var code: ResponseCode?
    public var text: String

    public init(code: ResponseCode? = nil, text: String) {
        self.code = code
        self.text = text
    }

    /// A known Exchange Online condition spelled in this text, so the gateway can react (refresh, reconnect).
    public var exchangeCondition: ExchangeCondition? {
        if text.contains("AccessTokenExpired") { return .accessTokenExpired }
        if text.lowercased().contains("user is authenticated but not connected") { return .authenticatedButNotConnected }
        return nil
    }

    public var description: String { text }
}

/// Conditions Microsoft 365 reports only in free text (m365-protocol.md §2.5, §2.8).
public enum ExchangeCondition: Hashable, Sendable {
    /// `* BYE Session invalidated - AccessTokenExpired`: refresh the token and reconnect.
    case accessTokenExpired
    /// `BAD User is authenticated but not connected.`: the token lacks mailbox rights, or throttling.
    case authenticatedButNotConnected
}
