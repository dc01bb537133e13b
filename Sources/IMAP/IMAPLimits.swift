// IMAP: the bounds every IMAP framer and parser enforces.

public import MailCore

/// The bounds for one IMAP connection, taken from `MailCore.Limits` where one exists there.
///
/// Every byte an IMAP peer sends is counted against one of these before it is buffered (STYLE.md rule 3).
public struct IMAPLimits: Sendable, Equatable {
    /// Longest line outside literals, CRLF included. Upstream (Microsoft 365) capability and LIST lines are short,
    /// but XOAUTH2 error challenges can be several KB, so the upstream bound is `Limits.upstreamLine` (16 KiB).
    public var responseLine: Int
    /// Largest single literal in a response. 64 MiB for now: enough for any `FETCH BODY[]` of a message
    /// Exchange will hand out over IMAP; larger bodies should stream (a later change) rather than raise this.
    public var responseLiteral: Int
    /// Largest whole response, lines plus all its literals (a FETCH may carry several).
    public var responseFrame: Int
    /// Deepest nesting of parenthesised lists (BODYSTRUCTURE of a multipart message is the deepest real case).
    public var parserDepth: Int

    /// The default literal bound, 64 MiB.
    public static let defaultResponseLiteral = 67_108_864
    /// The default nesting bound, as swift-nio-imap's parser stack limit.
    public static let defaultParserDepth = 100

    /// Bounds for talking to an upstream server, derived from the process-wide `limits`.
    public init(
        limits: Limits = .standard,
        responseLiteral: Int = IMAPLimits.defaultResponseLiteral,
        parserDepth: Int = IMAPLimits.defaultParserDepth
    ) {
        self.responseLine = max(limits.upstreamLine, limits.imapLine)
        self.responseLiteral = responseLiteral
        self.responseFrame = responseLiteral + 4 * max(limits.upstreamLine, limits.imapLine)
        self.parserDepth = parserDepth
    }

    /// The defaults: `IMAPLimits(limits: .standard)`.
    public static let standard = IMAPLimits()
}
