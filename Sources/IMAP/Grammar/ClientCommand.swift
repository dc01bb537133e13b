// IMAP: a client command as the gateway sees it: tag, name, lexed arguments with their byte ranges, raw bytes.

/// A literal's announcement: `{n}` (synchronizing), `{n+}` (non-synchronizing, RFC 7888) or `~{n}` / `~{n+}`
/// (binary, RFC 3516).
///
///     C: A003 APPEND Sent (\Seen) {310}
///     C: A004 APPEND Sent ~{310+}
public struct IMAPLiteralAnnouncement: Hashable, Sendable {
    /// The number of octets that follow the CRLF.
    public var count: Int
    /// `{n}`: the client waits for `+` before sending the octets.
    public var synchronizing: Bool
    /// `~{n}`: the octets may contain NUL (RFC 3516 literal8).
    public var binary: Bool

    public init(count: Int, synchronizing: Bool, binary: Bool = false) {
        self.count = count
        self.synchronizing = synchronizing
        self.binary = binary
    }

    /// The announcement as written for a peer: `~`? `{n` `+`? `}` CRLF.
    public func wire(synchronizing: Bool) -> [UInt8] {
        Array("\(binary ? "~" : ""){\(count)\(synchronizing ? "" : "+")}\r\n".utf8)
    }
}

/// One lexical item of a client command, with where it sits in the command's raw bytes, so that the gateway can
/// replace one argument (a mailbox name) and keep every other byte as the client sent it.
///
/// Lexing is deliberately shallow (RFC 3501 §9 terminals only): atoms (which here include sequence sets, flags
/// like `\Seen`, `*`/`%` patterns and `BODY[HEADER.FIELDS (FROM)]<0.100>` with its bracketed part), quoted strings,
/// literals and parentheses. What an argument means is the caller's business.
public struct IMAPToken: Hashable, Sendable {
    /// What kind of terminal this is.
    public enum Kind: Hashable, Sendable {
        /// A run of non-special characters; brackets (`[...]`) may hold spaces and parentheses.
        case atom
        /// `"..."`; `value` holds the content with `\"` and `\\` unescaped.
        case quoted
        /// A literal; `value` holds its octets (empty for the streamed literal ending a command head).
        case literal(IMAPLiteralAnnouncement)
        /// `(`
        case listOpen
        /// `)`
        case listClose
    }

    public var kind: Kind
    /// The token's bytes in `IMAPClientCommand.raw`: for a literal from `~`/`{` through its last octet.
    public var range: Range<Int>
    /// Where `value` sits in `raw`: inside the quotes, the literal's octets, the atom itself.
    public var contentRange: Range<Int>
    /// The token's value: atom bytes, unescaped quoted content, literal octets; empty for parentheses.
    public var value: [UInt8]
    /// Parenthesis nesting level of the token (0 = top level; a `(` at top level has depth 0).
    public var depth: Int

    public init(kind: Kind, range: Range<Int>, contentRange: Range<Int>, value: [UInt8], depth: Int) {
        self.kind = kind
        self.range = range
        self.contentRange = contentRange
        self.value = value
        self.depth = depth
    }

    /// Whether the token is an `astring` (atom, quoted or literal): what a mailbox argument is.
    public var isString: Bool {
        switch kind {
        case .atom, .quoted, .literal: true
        case .listOpen, .listClose: false
        }
    }

    /// The value as text (UTF-8, lossy), for names and logs.
    public var text: String { String(decoding: value, as: UTF8.self) }

    /// The value upper-cased when it is an atom (command keywords, fetch items), else nil.
    public var keyword: String? {
        guard kind == .atom else { return nil }
        return String(decoding: value, as: UTF8.self).uppercased()
    }
}

/// A client command, or one part of a command whose large literal streams, as the framer hands it out.
///
///     C: A142 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])
///        → tag "A142", name "FETCH", isUID true, arguments: atom "1:*", "(", atom "FLAGS",
///          atom "BODY.PEEK[HEADER.FIELDS (FROM)]", ")"
///
/// `raw` holds the exact bytes the client sent (CRLF included), so a command no policy touches is forwarded
/// unchanged (`encodedForUpstream` only rewrites literal announcements where the upstream needs it).
public struct IMAPClientCommand: Hashable, Sendable {
    /// Which bytes of the command `raw` covers.
    public enum Part: Hashable, Sendable {
        /// The whole command, every literal inline.
        case whole
        /// The command from its tag (or from the end of the previous streamed literal) through the announcement
        /// of a literal that streams next (`streamedLiteral`); that literal is the last argument, with no octets.
        case head
        /// The rest of the command after its last streamed literal, through the final CRLF.
        case tail
    }

    /// The command's tag, as sent.
    public var tag: String
    /// The command name, upper-cased, without the `UID` prefix (`FETCH` for `UID FETCH`).
    public var name: String
    /// The command was prefixed with `UID` (RFC 3501 §6.4.8).
    public var isUID: Bool
    /// The tokens after the name (for a `.tail`, every token of the part).
    public var arguments: [IMAPToken]
    /// The exact bytes of this part, CRLF and inline literals included.
    public var raw: [UInt8]
    /// Which bytes `raw` covers.
    public var part: Part
    /// For a `.head`: the literal that streams after `raw`.
    public var streamedLiteral: IMAPLiteralAnnouncement?
    /// The part follows a streamed literal of the same command (a `.tail`, or the head of MULTIAPPEND's next
    /// message): `raw` does not start with the tag, and the upstream already holds the command's beginning.
    public var isContinuation: Bool

    public init(
        tag: String, name: String, isUID: Bool = false, arguments: [IMAPToken], raw: [UInt8], part: Part = .whole,
        streamedLiteral: IMAPLiteralAnnouncement? = nil, isContinuation: Bool = false
    ) {
        self.tag = tag
        self.name = name
        self.isUID = isUID
        self.arguments = arguments
        self.raw = raw
        self.part = part
        self.streamedLiteral = streamedLiteral
        self.isContinuation = isContinuation
    }

    /// `UID FETCH`, `SELECT`: the name as a log or policy would print it.
    public var fullName: String { isUID ? "UID " + name : name }

    /// The arguments at top level (depth 0) that are strings: where mailbox names sit
    /// (`SELECT mbox`, `RENAME a b`, `COPY set mbox`, `LIST ref pattern`, `APPEND mbox …`).
    public var topLevelStringIndices: [Int] {
        arguments.indices.filter { arguments[$0].depth == 0 && arguments[$0].isString }
    }

    /// Whether any argument is a literal (so forwarding may need a continuation from the upstream).
    public var hasLiteral: Bool {
        arguments.contains { if case .literal = $0.kind { true } else { false } }
    }
}

/// A synchronizing literal the client announced and waits to send: answer `+` and call
/// `IMAPCommandFramer.acceptLiteral()`, or answer `tag NO …` / `tag BAD …` and call `refuseLiteral()`.
///
///     C: A003 APPEND Sent {310}
///     S: + Ready for literal data
public struct IMAPLiteralRequest: Hashable, Sendable {
    /// The command so far, through the announcement (`part == .head`, `streamedLiteral` set, whatever the size).
    public var command: IMAPClientCommand
    /// The announced literal.
    public var literal: IMAPLiteralAnnouncement
    /// Whether the octets will come whole inside the command (true) or stream (false) once accepted.
    public var inline: Bool

    public init(command: IMAPClientCommand, literal: IMAPLiteralAnnouncement, inline: Bool) {
        self.command = command
        self.literal = literal
        self.inline = inline
    }

    /// The command's tag.
    public var tag: String { command.tag }
}

/// A command line that does not follow the grammar; the framer has skipped it (and any non-synchronizing
/// literal it carried) and goes on with the next line. Answer `tag BAD reason` (or `* BAD reason` when the tag is
/// unusable) and count it against the error budget.
public struct IMAPMalformedCommand: Hashable, Sendable {
    /// Why the command was refused, in words fit for a BAD reply (no client bytes quoted).
    public enum Reason: String, Hashable, Sendable {
        case emptyLine = "Empty command line"
        case missingTag = "Missing or invalid tag"
        case missingCommand = "Missing command name"
        case bareLineFeed = "Line must end with CRLF"
        case bareCarriageReturn = "Carriage return inside a line"
        case nulByte = "NUL byte in command"
        case controlCharacter = "Control character in command"
        case unterminatedQuoted = "Unterminated quoted string"
        case invalidQuotedEscape = "Invalid escape in quoted string"
        case misplacedLiteral = "A literal must end its line ({n}, {n+} or ~{n} followed by CRLF)"
        case unbalancedParentheses = "Unbalanced parentheses"
        case unbalancedBrackets = "Unbalanced brackets"
        case tooMuchNesting = "Parentheses nested too deeply"
        case nonSynchronizingLiteralTooLarge = "Non-synchronizing literal over 4096 octets without LITERAL+"
    }

    /// The command's tag when it was valid (reply `tag BAD`), else nil (reply `* BAD`).
    public var tag: String?
    public var reason: Reason
    /// The error came after a streamed part of this command: the upstream holds an unfinished command, which the
    /// gateway must end (or drop the upstream connection) before it answers.
    public var afterStreamedPart: Bool

    public init(tag: String?, reason: Reason, afterStreamedPart: Bool = false) {
        self.tag = tag
        self.reason = reason
        self.afterStreamedPart = afterStreamedPart
    }

    /// The reply to send: `tag BAD reason` CRLF, or `* BAD reason` CRLF.
    public var badResponse: [UInt8] { Array("\(tag ?? "*") BAD \(reason.rawValue)\r\n".utf8) }
}
