// MailCore: finding and minting RFC 5322 Message-IDs, the key the sent copy and the journal deduplicate on.

/// Reads the `Message-ID:` of a message and makes new ones.
///
/// The sent copy asks Exchange `UID SEARCH HEADER Message-ID "<id>"` before appending, and the journal records
/// the id; both need the id exactly as the message carries it (RFC 5322 §3.6.4: `msg-id = "<" id-left "@" id-right ">"`).
public enum MessageID {
    /// Bytes of a message scanned for its header block: Exchange Online refuses headers larger than 256 KiB,
    /// so a `Message-ID:` further in is not one Exchange would see either.
    public static let headerScanLimit = 262_144

    /// Longest id returned; RFC 5322 lines are at most 998 octets, so a longer id is not a real one.
    public static let maximumLength = 998

    /// The `<…>` id of the first `Message-ID:` field in the header block of `bytes`, or nil when there is none,
    /// it is malformed, or the header block is larger than `headerScanLimit`.
    ///
    /// Field names match case-insensitively, folded values (CRLF followed by space or tab) are unfolded, and
    /// both CRLF and bare LF line ends are accepted. Only the header block is read: scanning stops at the first
    /// empty line.
    public static func extract(fromHeaderOf bytes: [UInt8]) -> String? {
        let end = min(bytes.count, headerScanLimit)
        var lineStart = 0
        var field: [UInt8]? = nil  // the unfolded Message-ID field being collected
        while lineStart < end {
            var lineEnd = lineStart
            while lineEnd < end && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let truncated = lineEnd == end && end < bytes.count  // this line runs past the scan limit
            var contentEnd = lineEnd
            if contentEnd > lineStart && bytes[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            let line = bytes[lineStart..<contentEnd]
            let isContinuation = line.first == UInt8(ascii: " ") || line.first == UInt8(ascii: "\t")
            if let collected = field {
                if !isContinuation { return parseMessageID(collected) }  // the field ended at this line
                if truncated { return nil }
                field = collected + line
            } else if truncated || line.isEmpty {
                return nil  // past the scan limit, or the end of the header block without a Message-ID
            } else if !isContinuation, let value = valueIfMessageIDField(line) {
                field = Array(value)
            }
            lineStart = lineEnd + 1
        }
        if let collected = field { return parseMessageID(collected) }
        return nil
    }

    /// A new, globally unique id `<random-uuid@domain>` for messages that arrive without one.
    ///
    /// The left part is a random (version 4) UUID from the system's cryptographic generator, so ids never repeat
    /// across restarts or machines.
    public static func generate(domain: String) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "<")]
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        text.append(UInt8(ascii: "@"))
        let cleanDomain = domain.utf8.filter { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
        text.append(contentsOf: cleanDomain.isEmpty ? Array("localhost".utf8) : cleanDomain)
        text.append(UInt8(ascii: ">"))
        return String(decoding: text, as: UTF8.self)
    }

    // MARK: - Internals

    /// The bytes after the colon when `line` is a `Message-ID:` field (optional white space before the colon is
    /// obsolete syntax, RFC 5322 §4.5, but still seen).
    private static func valueIfMessageIDField(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let name = Array("message-id".utf8)
        guard line.count > name.count else { return nil }
        var index = line.startIndex
        for expected in name {
            let byte = line[index]
            let lower = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
            guard lower == expected else { return nil }
            index += 1
        }
        while index < line.endIndex && (line[index] == UInt8(ascii: " ") || line[index] == UInt8(ascii: "\t")) {
            index += 1
        }
        guard index < line.endIndex && line[index] == UInt8(ascii: ":") else { return nil }
        return line[(index + 1)...]
    }

    /// `msg-id = [CFWS] "<" id-left "@" id-right ">" [CFWS]`: the first angle-bracketed token, which must hold
    /// an `@` and no white space or control bytes.
    private static func parseMessageID(_ value: [UInt8]) -> String? {
        guard let open = value.firstIndex(of: UInt8(ascii: "<")),
            let close = value[open...].firstIndex(of: UInt8(ascii: ">"))
        else { return nil }
        let inner = value[(open + 1)..<close]
        guard !inner.isEmpty, inner.count + 2 <= maximumLength, inner.contains(UInt8(ascii: "@")) else { return nil }
        guard inner.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "<") }) else { return nil }
        let text = String(decoding: value[open...close], as: UTF8.self)
        guard Array(text.utf8) == Array(value[open...close]) else { return nil }  // not valid UTF-8
        return text
    }
}
