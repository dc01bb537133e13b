// IMAP: writing command syntax (atoms, strings, literals, flags) with the literal rules of RFC 3501 and RFC 7888.

/// Accumulates one command as segments, choosing for every string the simplest form the grammar allows.
///
/// Strings are written as an atom when every byte is an ASTRING-CHAR, as a quoted string when they are printable
/// ASCII of at most `maximumQuotedLength` bytes (with `"` and `\` escaped), and as a literal otherwise. A literal
/// is `{n+}` when the server offers LITERAL+ (or LITERAL- and n ≤ 4096), else `{n}` followed by a wait marker.
public struct IMAPCommandWriter: Sendable {
    /// Longest quoted string written; longer text becomes a literal (RFC 3501 does not cap quoted strings, but
    /// servers' line limits do, Exchange's at 10 240 bytes per command).
    public static let maximumQuotedLength = 1_000
    /// RFC 7888: with LITERAL- only literals up to this size may be non-synchronizing.
    public static let literalMinusLimit = 4_096

    public var literalPlus: Bool
    public var literalMinus: Bool
    public private(set) var segments: [IMAPCommandSegment] = []
    private var current: [UInt8] = []

    public init(literalPlus: Bool = false, literalMinus: Bool = false) {
        self.literalPlus = literalPlus
        self.literalMinus = literalMinus
    }

    /// The finished segments (pending bytes flushed).
    public mutating func finish() -> [IMAPCommandSegment] {
        flush()
        let result = segments
        segments = []
        return result
    }

    /// Raw bytes, exactly as given (keywords, SP, CRLF, base64).
    public mutating func write(_ bytes: some Sequence<UInt8>) { current.append(contentsOf: bytes) }

    /// Raw ASCII text.
    public mutating func write(_ text: String) { current.append(contentsOf: text.utf8) }

    // astring = 1*ASTRING-CHAR / string
    public mutating func writeAstring(_ bytes: [UInt8]) {
        if !bytes.isEmpty && bytes.allSatisfy(CharacterClass.isAstringChar) {
            write(bytes)
        } else {
            writeString(bytes)
        }
    }

    // mailbox = "INBOX" / astring
    public mutating func writeMailbox(_ name: MailboxName) { writeAstring(name.bytes) }

    // list-mailbox = 1*list-char / string
    public mutating func writeListMailbox(_ pattern: [UInt8]) {
        if !pattern.isEmpty && pattern.allSatisfy(CharacterClass.isListChar) {
            write(pattern)
        } else {
            writeString(pattern)
        }
    }

    // string = quoted / literal
    public mutating func writeString(_ bytes: [UInt8]) {
        if bytes.count <= Self.maximumQuotedLength && bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            writeQuoted(bytes)
        } else {
            writeLiteral(bytes)
        }
    }

    // quoted = DQUOTE *QUOTED-CHAR DQUOTE
    private mutating func writeQuoted(_ bytes: [UInt8]) {
        current.append(UInt8(ascii: "\""))
        for byte in bytes {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { current.append(UInt8(ascii: "\\")) }
            current.append(byte)
        }
        current.append(UInt8(ascii: "\""))
    }

    // literal = "{" number ["+"] "}" CRLF *CHAR8
    public mutating func writeLiteral(_ bytes: [UInt8]) {
        writeLiteralHeader(count: bytes.count)
        current.append(contentsOf: bytes)
    }

    /// Writes `{n}` CRLF (and a wait marker) or `{n+}` CRLF; the caller writes the n octets next.
    public mutating func writeLiteralHeader(count: Int) {
        let nonSynchronizing = literalPlus || (literalMinus && count <= Self.literalMinusLimit)
        write("{\(count)\(nonSynchronizing ? "+" : "")}\r\n")
        if !nonSynchronizing { markStopPoint() }
    }

    // flag-list = "(" [flag *(SP flag)] ")"
    public mutating func writeFlagList(_ flags: [Flag]) {
        write("(")
        write(flags.map(\.rawValue).joined(separator: " "))
        write(")")
    }

    /// Ends the current segment: the driver must wait for `+` before writing what follows.
    public mutating func markStopPoint() {
        flush()
        segments.append(.waitForContinuation)
    }

    private mutating func flush() {
        if !current.isEmpty {
            segments.append(.bytes(current))
            current = []
        }
    }
}
