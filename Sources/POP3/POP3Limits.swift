// POP3: the bounds every POP3 framer and parser enforces.

public import MailCore

/// The bounds for one POP3 connection, derived from `MailCore.Limits`.
public struct POP3Limits: Sendable, Equatable {
    /// Longest client command line, CRLF included: RFC 2449 §4 (and RFC 5034 §4 for AUTH with an initial
    /// response) allow 255 octets.
    public var commandLine: Int = 255
    /// Longest client SASL response line during AUTH (XOAUTH2-sized tokens need several KB).
    public var saslResponseLine: Int
    /// Longest line the upstream server may send (replies, challenges, lines inside CAPA/LIST/UIDL).
    public var responseLine: Int
    /// Largest multi-line response (a RETR of the largest accepted message).
    public var multilineResponse: Int

    /// The RFC bound for command lines.
    public static let rfcCommandLine = 255

    public init(limits: Limits = .standard) {
        self.saslResponseLine = limits.saslResponse
        self.responseLine = limits.upstreamLine
        self.multilineResponse = limits.messageSize
    }

    /// The defaults.
    public static let standard = POP3Limits()
}
