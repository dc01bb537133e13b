/// Makes remote text safe for a log line: control bytes become `?` and the text is cut to `maximumLength`
/// characters (Dovecot's `str_sanitize(line, 160)`), so a hostile peer cannot forge or flood log lines.
public func sanitizeForLog(_ bytes: some Sequence<UInt8>, maximumLength: Int = 160) -> String {
    var out = ""
    var count = 0
    for byte in bytes {
        if count == maximumLength {
            out += "…"
            break
        }
        if byte >= 0x20 && byte < 0x7F {
            out.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            out += "?"
        }
        count += 1
    }
    return out
}

/// String convenience for `sanitizeForLog(_:maximumLength:)`.
public func sanitizeForLog(_ text: String, maximumLength: Int = 160) -> String {
    sanitizeForLog(Array(text.utf8), maximumLength: maximumLength)
}
