// POP3: server replies (RFC 1939 §3, RFC 2449 §8 response codes, RFC 5034 continuations).

/// One POP3 status line from the server.
///
///     S: +OK User successfully authenticated.
///     S: -ERR Authentication failure: unknown user name or bad password.
///     S: -ERR [IN-USE] Mailbox locked
///     S: +
public struct POP3Reply: Hashable, Sendable, CustomStringConvertible {
    public enum Status: String, Hashable, Sendable {
        case ok = "+OK"
        case err = "-ERR"
        /// `+` (RFC 5034): the server waits for a SASL response; `text` is the base64 challenge, maybe empty.
        case continuation = "+"
    }

    public var status: Status
    /// The RFC 2449 response code of an `-ERR` reply (`[SYS/TEMP]`), if any.
    public var code: POP3ResponseCode?
    public var text: String

    public init(status: Status, code: POP3ResponseCode? = nil, text: String) {
        self.status = status
        self.code = code
        self.text = text
    }

    // reply = ("+OK" / "-ERR") [SP [resp-code SP] text] / "+" [SP [base64]]   ; line without its CRLF
    /// Parses a status line (its CRLF already removed; a trailing CR is tolerated).
    public static func parse(line: some Collection<UInt8>) throws(POP3Error) -> POP3Reply {
        var bytes = Array(line)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.contains(where: { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) else {
            throw .malformedReply(String(decoding: bytes, as: UTF8.self))
        }
        let status: Status
        let indicatorLength: Int
        if hasPrefix(bytes, "+OK") {
            (status, indicatorLength) = (.ok, 3)
        } else if hasPrefix(bytes, "-ERR") {
            (status, indicatorLength) = (.err, 4)
        } else if bytes.first == UInt8(ascii: "+") {
            (status, indicatorLength) = (.continuation, 1)
        } else {
            throw .malformedReply(String(decoding: bytes, as: UTF8.self))
        }
        var rest = bytes[indicatorLength...]
        if let first = rest.first {
            guard first == UInt8(ascii: " ") else { throw .malformedReply(String(decoding: bytes, as: UTF8.self)) }
            rest = rest.dropFirst()
        }
        var code: POP3ResponseCode? = nil
        if status == .err, rest.first == UInt8(ascii: "["), let close = rest.firstIndex(of: UInt8(ascii: "]")) {
            code = POP3ResponseCode(rawValue: String(decoding: rest[(rest.startIndex + 1)..<close], as: UTF8.self))
            if code != nil {
                rest = rest[(close + 1)...]
                if rest.first == UInt8(ascii: " ") { rest = rest.dropFirst() }
            }
        }
        return POP3Reply(status: status, code: code, text: String(decoding: rest, as: UTF8.self))
    }

    private static func hasPrefix(_ bytes: [UInt8], _ prefix: String) -> Bool {
        let expected = Array(prefix.utf8)
        guard bytes.count >= expected.count else { return false }
        for (byte, wanted) in zip(bytes, expected) where (byte & 0xDF) != (wanted & 0xDF) && byte != wanted { return false }
        return bytes.count == expected.count || bytes[expected.count] == UInt8(ascii: " ")
    }

    /// The line as the server side writes it, CRLF included.
    public var encoded: [UInt8] {
        var line = status.rawValue
        if let code { line += " [\(code.rawValue)]" }
        if !text.isEmpty || (status == .continuation) { line += " " + text }
        return Array(line.utf8) + [0x0D, 0x0A]
    }

    public var description: String { status.rawValue + (code.map { " [\($0.rawValue)]" } ?? "") + " " + text }
}

/// An RFC 2449 §8 response code: `resp-code = "[" resp-level *("/" resp-level) "]"`, e.g. `SYS/TEMP`.
public struct POP3ResponseCode: Hashable, Sendable {
    public let components: [String]

    /// The code from its text between the brackets; nil unless every level is 1*(ALPHA / DIGIT / "-").
    public init?(rawValue: String) {
        let levels = rawValue.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !levels.isEmpty, levels.allSatisfy({ level in
            !level.isEmpty && level.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        }) else { return nil }
        self.components = levels.map { $0.uppercased() }
    }

    public var rawValue: String { components.joined(separator: "/") }

    public static let inUse = POP3ResponseCode(rawValue: "IN-USE")!
    public static let loginDelay = POP3ResponseCode(rawValue: "LOGIN-DELAY")!
    public static let systemTemporary = POP3ResponseCode(rawValue: "SYS/TEMP")!
    public static let systemPermanent = POP3ResponseCode(rawValue: "SYS/PERM")!
    public static let auth = POP3ResponseCode(rawValue: "AUTH")!
}
