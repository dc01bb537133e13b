// OAuth: percent-encoding for URLs and application/x-www-form-urlencoded bodies, both ways, strictly bounded.

/// Encodes and decodes the `key=value&…` syntax of query strings and form bodies (WHATWG URL "urlencoded").
///
/// Encoding escapes everything outside RFC 3986 `unreserved`, so the result is safe in a query, a form body and
/// an HTML attribute alike. Decoding accepts `+` as space and rejects malformed `%` escapes.
public enum FormEncoding {
    /// Percent-encodes one component: only `A-Z a-z 0-9 - . _ ~` stay as they are.
    public static func percentEncode(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `k1=v1&k2=v2` with each key and value percent-encoded, in the given order.
    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }

    /// Splits `k1=v1&k2` into decoded pairs (a key without `=` gets an empty value; empty pieces are skipped).
    ///
    /// Fails on a malformed escape or on bytes that are not UTF-8 after decoding, and past `maximumPairs`.
    public static func decode(_ query: String, maximumPairs: Int = 64) throws(FormDecodingError)
        -> [(String, String)]
    {
        var result: [(String, String)] = []
        for piece in query.split(separator: "&", omittingEmptySubsequences: true) {
            if result.count == maximumPairs { throw .tooManyPairs(maximumPairs) }
            let key: Substring
            let value: Substring
            if let equals = piece.firstIndex(of: "=") {
                key = piece[..<equals]
                value = piece[piece.index(after: equals)...]
            } else {
                key = piece
                value = Substring()
            }
            result.append((try percentDecode(key), try percentDecode(value)))
        }
        return result
    }

    /// String convenience for `percentDecode(_:)` on a substring.
    public static func percentDecode(_ text: String) throws(FormDecodingError) -> String {
        try percentDecode(Substring(text))
    }

    /// Decodes `%XX` escapes and `+` (space); the result must be valid UTF-8.
    public static func percentDecode(_ text: Substring) throws(FormDecodingError) -> String {
        let bytes = Array(text.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]),
                    let low = hexValue(bytes[index + 2])
                else { throw .malformedEscape }
                out.append(high << 4 | low)
                index += 3
            } else if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
                index += 1
            } else {
                out.append(byte)
                index += 1
            }
        }
        guard let decoded = String(validating: out, as: UTF8.self) else { throw .notUTF8 }
        return decoded
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "~")
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
}

/// Why a query string or form body could not be decoded.
public enum FormDecodingError: Error, Equatable, Sendable {
    /// `%` not followed by two hexadecimal digits.
    case malformedEscape
    /// The decoded bytes are not UTF-8.
    case notUTF8
    /// More `&`-separated pairs than the bound allows.
    case tooManyPairs(Int)
}
