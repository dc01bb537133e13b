// POP3: the CAPA list (RFC 2449 §5).

/// The capabilities a POP3 server listed in reply to CAPA, one per line.
///
///     S: +OK
///     S: TOP
///     S: UIDL
///     S: SASL PLAIN XOAUTH2
///     S: USER
///     S: .
public struct POP3Capabilities: Hashable, Sendable {
    /// Each capability line: its tag (upper-cased) and its arguments.
    public var entries: [(tag: String, arguments: [String])] {
        lines.map { line in
            let words = line.split(separator: " ").map(String.init)
            return (words.first?.uppercased() ?? "", Array(words.dropFirst()))
        }
    }

    /// The lines as received.
    public let lines: [String]

    public init(lines: [String]) { self.lines = lines.filter { !$0.isEmpty } }

    /// Parses the un-stuffed body of a CAPA response (lines separated by CRLF, terminator already removed).
    public static func parse(_ body: [UInt8]) -> POP3Capabilities {
        let lines = body.split(separator: UInt8(ascii: "\n")).map { line -> String in
            var content = line
            if content.last == UInt8(ascii: "\r") { content = content.dropLast() }
            return String(decoding: content, as: UTF8.self)
        }
        return POP3Capabilities(lines: lines)
    }

    /// Whether a capability with `tag` (`TOP`, `UIDL`, `USER`, `STLS`) is listed.
    public func contains(_ tag: String) -> Bool { entries.contains { $0.tag == tag.uppercased() } }

    /// The mechanisms on the `SASL` line (`["PLAIN", "XOAUTH2"]` at Exchange Online).
    public var saslMechanisms: [String] { entries.first { $0.tag == "SASL" }?.arguments.map { $0.uppercased() } ?? [] }

    public static func == (lhs: POP3Capabilities, rhs: POP3Capabilities) -> Bool { lhs.lines == rhs.lines }
    public func hash(into hasher: inout Hasher) { hasher.combine(lines) }
}
