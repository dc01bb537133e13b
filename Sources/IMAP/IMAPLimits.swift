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

    /// Longest client command line segment (the bytes between two literals, CRLF included): `Limits.imapLine`.
    /// A line past it is fatal for the connection (the framer cannot find where the command ends).
    public var commandLine: Int = Limits.standard.imapLine
    /// Largest literal a client may send (the APPEND message), 50 MiB by default; a synchronizing literal over it
    /// is refused before the continuation (`NO [TOOBIG]`), a non-synchronizing one is fatal.
    public var commandLiteral: Int = IMAPLimits.defaultCommandLiteral
    /// Literals up to this size are kept inside a whole command (`.command`); larger ones stream
    /// (begin / bytes / end). Also the bound of `IMAPResponseStreamFramer`'s inline literals.
    public var inlineLiteral: Int = IMAPLimits.defaultInlineLiteral
    /// Largest command (or response) held whole in memory: its lines plus inline literals. A literal that would
    /// take it past this streams instead; lines alone past it are fatal.
    public var inlineFrame: Int = IMAPLimits.defaultInlineFrame

    /// The default client literal bound, 50 MiB (issue 8: APPEND up to 50 MiB).
    public static let defaultCommandLiteral = 52_428_800
    /// The default inline literal bound, 64 KiB.
    public static let defaultInlineLiteral = 65_536
    /// The default whole-frame bound for commands and streamed responses, 1 MiB.
    public static let defaultInlineFrame = 1_048_576
    /// RFC 7888 §4: without LITERAL+ advertised, a non-synchronizing literal may carry at most 4096 octets.
    public static let literalMinusLimit = 4_096

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
        self.commandLine = limits.imapLine
    }

    /// The defaults: `IMAPLimits(limits: .standard)`.
    public static let standard = IMAPLimits()
}
