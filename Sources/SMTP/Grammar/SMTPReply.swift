// SMTP: the reply type (RFC 5321 §4.2) and its encoder.

/// One SMTP reply, possibly multi-line: `250-first`, `250-…`, `250 last`.
///
/// When `enhanced` is set, every line carries it after the code (RFC 2034 §3), as Exchange does:
/// `S: 554 5.2.252 SendAsDenied; …`. Greetings, EHLO responses and `334` challenges carry none.
public struct SMTPReply: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code (200–599).
    public var code: Int
    /// The RFC 3463 code written at the start of every line, if any.
    public var enhanced: EnhancedStatus?
    /// The text of each line without code, separator, enhanced code or CRLF; at least one (possibly empty).
    public var lines: [String]

    public init(code: Int, enhanced: EnhancedStatus? = nil, lines: [String]) {
        self.code = code
        self.enhanced = enhanced
        self.lines = lines.isEmpty ? [""] : lines
    }

    /// A one-line reply.
    public init(code: Int, enhanced: EnhancedStatus? = nil, _ text: String) {
        self.init(code: code, enhanced: enhanced, lines: [text])
    }

    /// A one-line reply from literal numbers, e.g. `SMTPReply(250, (2, 0, 0), "OK")`.
    init(_ code: Int, _ enhanced: (Int, Int, Int), _ text: String) {
        self.init(code: code, enhanced: .known(enhanced.0, enhanced.1, enhanced.2), lines: [text])
    }

    /// 2xx: the command succeeded.
    public var isPositiveCompletion: Bool { (200..<300).contains(code) }
    /// 3xx: the server waits for more (354 for DATA, 334 for AUTH).
    public var isPositiveIntermediate: Bool { (300..<400).contains(code) }
    /// 4xx: temporary failure; the client may retry later.
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    /// 5xx: permanent failure.
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// The reply on the wire, each line ending in CRLF.
    public func encode() -> [UInt8] {
        var out = [UInt8]()
        let codeText = String(code)
        for (index, line) in lines.enumerated() {
            out += codeText.utf8
            let isLast = index == lines.count - 1
            var text = ""
            if let enhanced { text = enhanced.description }
            if !line.isEmpty { text += text.isEmpty ? line : " " + line }
            if isLast {
                // RFC 4954 §4: a continuation request is "334" SP [base64] even when the challenge is empty.
                if !text.isEmpty || code == 334 { out.append(UInt8(ascii: " ")) }
            } else {
                out.append(UInt8(ascii: "-"))
            }
            out += text.utf8
            out += [0x0D, 0x0A]
        }
        return out
    }

    /// The reply as text on one line, for logs: `550 5.1.1 first / second` (sanitize before logging remote text).
    public var description: String {
        var text = String(code)
        if let enhanced { text += " \(enhanced)" }
        let joined = lines.joined(separator: " / ")
        if !joined.isEmpty { text += " " + joined }
        return text
    }
}
