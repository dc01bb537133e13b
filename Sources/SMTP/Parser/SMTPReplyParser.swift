// SMTP: the incremental reply parser for lines coming from the upstream server.
public import MailCore

/// Why an upstream reply could not be parsed; the upstream connection should be closed.
public enum SMTPReplyParseError: MailGateError, Equatable {
    /// The line does not start with a three-digit code followed by SP, `-` or the end of line.
    case malformedLine(String)
    /// A continuation line carries a code different from the first line's.
    case inconsistentCode(first: Int, got: Int)
    /// A reply line was longer than `Limits.upstreamLine`.
    case lineTooLong(actualCount: Int, maximumCount: Int)
    /// A multi-line reply had more lines than allowed.
    case tooManyLines(maximumCount: Int)

    public var description: String {
        switch self {
        case .malformedLine(let line):
            "The upstream sent a reply line that is not SMTP ('\(sanitizeForLog(line))'); check the server address and port."
        case .inconsistentCode(let first, let got):
            "The upstream changed the reply code from \(first) to \(got) inside one reply; the server is not speaking SMTP correctly."
        case .lineTooLong(let actual, let maximum):
            "The upstream sent a reply line of \(actual) octets, more than the \(maximum) allowed; the connection is closed."
        case .tooManyLines(let maximum):
            "The upstream sent a reply with more than \(maximum) lines; the connection is closed."
        }
    }
}

/// Collects reply lines (`250-…` continuations up to the final `250 …`) into `SMTPReply` values.
///
/// Feed one line at a time, without CRLF; `nil` means "more lines needed". An enhanced code at the start of
/// the text (class matching the reply's first digit) is lifted into `SMTPReply.enhanced` when the first line
/// carries one; lines that repeat it have it stripped.
public struct SMTPReplyParser: Sendable {
    /// Lines allowed in one reply (an EHLO response has about a dozen).
    public var maximumLines: Int
    /// Octets allowed per line, CRLF excluded.
    public var maximumLineLength: Int
    private var pending: [(code: Int, text: String)] = []

    public init(maximumLines: Int = 100, maximumLineLength: Int = Limits.standard.upstreamLine) {
        self.maximumLines = maximumLines
        self.maximumLineLength = maximumLineLength
    }

    /// Adds one line; returns the complete reply when this line was the last of it.
    public mutating func feed(line: [UInt8]) throws(SMTPReplyParseError) -> SMTPReply? {
        guard line.count <= maximumLineLength else {
            pending = []
            throw .lineTooLong(actualCount: line.count, maximumCount: maximumLineLength)
        }
        guard line.count >= 3, line[0] >= 0x32, line[0] <= 0x35, line[1] >= 0x30, line[1] <= 0x39,
            line[2] >= 0x30, line[2] <= 0x39
        else {
            pending = []
            throw .malformedLine(String(decoding: line.prefix(80), as: UTF8.self))
        }
        let code = Int(line[0] - 0x30) * 100 + Int(line[1] - 0x30) * 10 + Int(line[2] - 0x30)
        var isLast = true
        var text = ""
        if line.count > 3 {
            switch line[3] {
            case UInt8(ascii: " "): isLast = true
            case UInt8(ascii: "-"): isLast = false
            default:
                pending = []
                throw .malformedLine(String(decoding: line.prefix(80), as: UTF8.self))
            }
            text = String(decoding: line[4...], as: UTF8.self)
        }
        if let first = pending.first, first.code != code {
            pending = []
            throw .inconsistentCode(first: first.code, got: code)
        }
        pending.append((code, text))
        guard pending.count <= maximumLines else {
            pending = []
            throw .tooManyLines(maximumCount: maximumLines)
        }
        guard isLast else { return nil }
        defer { pending = [] }
        return Self.assemble(code: code, texts: pending.map(\.text))
    }

    /// Whether a reply is partly collected (a continuation line was seen).
    public var isInsideReply: Bool { !pending.isEmpty }

    private static func assemble(code: Int, texts: [String]) -> SMTPReply {
        guard let first = texts.first, let enhanced = leadingEnhanced(first, code: code) else {
            return SMTPReply(code: code, lines: texts)
        }
        let prefix = enhanced.description
        let lines = texts.map { text -> String in
            guard text.hasPrefix(prefix) else { return text }
            let rest = text.dropFirst(prefix.count)
            if rest.isEmpty { return "" }
            if rest.first == " " { return String(rest.dropFirst()) }
            return text
        }
        return SMTPReply(code: code, enhanced: enhanced, lines: lines)
    }

    private static func leadingEnhanced(_ text: String, code: Int) -> EnhancedStatus? {
        let token = text.prefix { $0 != " " }
        guard let status = EnhancedStatus(token), status.statusClass == code / 100 else { return nil }
        return status
    }
}
