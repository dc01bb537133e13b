// Policy: LIST/LSUB mailbox patterns with the `*` and `%` wildcards (RFC 3501 §6.3.8), matched against names.

public import IMAP

/// A LIST or LSUB pattern (reference and mailbox argument joined) matched against mailbox names.
///
/// `*` matches zero or more characters, `%` zero or more characters except the hierarchy delimiter, so
/// `LIST "" "%"` lists the top level and `LIST "" "Sent/*"` everything below `Sent`. The folder map needs it to
/// decide which mapped names a client's LIST asks for (the upstream never sees the client-side names) and to
/// drop rewritten upstream lines the client did not ask for (`LIST "" "G*"` returns `Gesendete Elemente`, which
/// the client knows as `Sent`, which does not match `G*`).
///
/// Names and pattern are compared as decoded Unicode when both are valid modified UTF-7, else as wire bytes;
/// a leading `INBOX` (the whole first component) matches in any letter case, as INBOX is case-insensitive
/// (RFC 3501 §5.1). A pattern that starts with `inbox` followed by a wildcard is read as `INBOX…`, so
/// `inbox*` also matches `INBOXES` (a name that is not INBOX and keeps its case): harmless over-matching.
///
///     C: A1 LIST "" "Sent/%"
public struct MailboxPattern: Sendable, Hashable, CustomStringConvertible {
    /// The joined wire bytes (reference followed by mailbox argument).
    public let bytes: [UInt8]
    /// The hierarchy delimiter `%` stops at, nil for a flat namespace.
    public let delimiter: UInt8?

    /// The pattern a LIST command asks for: `reference` and `mailbox` joined as RFC 3501 §6.3.8 describes for
    /// the common case (the reference is a prefix; a reference that does not end in the delimiter and a mailbox
    /// argument that does not start with it are simply concatenated, as Dovecot and Exchange do).
    public init(reference: MailboxName, mailbox: MailboxName, delimiter: UInt8?) {
        var joined = reference.bytes
        if let delimiter, joined.last == delimiter, mailbox.bytes.first == delimiter {
            joined.removeLast()
        }
        joined += mailbox.bytes
        self.bytes = joined
        self.delimiter = delimiter
    }

    /// A pattern from its wire bytes.
    public init(_ bytes: [UInt8], delimiter: UInt8?) {
        self.bytes = bytes
        self.delimiter = delimiter
    }

    /// Whether the pattern holds a wildcard (`*` or `%`); one without is a single mailbox name.
    public var hasWildcards: Bool { bytes.contains(Self.star) || bytes.contains(Self.percent) }

    /// Whether `name` matches the pattern.
    public func matches(_ name: MailboxName) -> Bool {
        let (text, pattern) = comparable(name.bytes)
        return Self.finalStates(pattern: pattern, text: text, delimiter: delimiter.map(UInt32.init)).contains(pattern.count)
    }

    /// Whether some name that starts with `prefix` matches: true for `*` and `Se*` against `Sent/`, false for
    /// `%` against `Sent/` (`%` does not cross the delimiter). Used to tell whether a pattern can reach the
    /// children of a mapped folder.
    public func canMatchExtension(of prefix: MailboxName) -> Bool {
        let (text, pattern) = comparable(prefix.bytes)
        return !Self.finalStates(pattern: pattern, text: text, delimiter: delimiter.map(UInt32.init)).isEmpty
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: - Internals

    static let star = UInt8(ascii: "*")
    static let percent = UInt8(ascii: "%")

    /// Name and pattern as sequences of code points, decoded when both decode, with a leading INBOX upper-cased.
    private func comparable(_ name: [UInt8]) -> (text: [UInt32], pattern: [UInt32]) {
        let decodedName = try? ModifiedUTF7.decode(bytes: name)
        let decodedPattern = try? ModifiedUTF7.decode(bytes: bytes)
        if let decodedName, let decodedPattern {
            return (
                Self.upperCasingInbox(decodedName.unicodeScalars.map(\.value), delimiter: delimiter),
                Self.upperCasingInbox(decodedPattern.unicodeScalars.map(\.value), delimiter: delimiter)
            )
        }
        return (
            Self.upperCasingInbox(name.map(UInt32.init), delimiter: delimiter),
            Self.upperCasingInbox(bytes.map(UInt32.init), delimiter: delimiter)
        )
    }

    /// `inbox`, `Inbox/x` → `INBOX`, `INBOX/x`: only when the first component is exactly those five letters.
    static func upperCasingInbox(_ points: [UInt32], delimiter: UInt8?) -> [UInt32] {
        guard points.count >= 5 else { return points }
        let inbox = "INBOX".unicodeScalars.map(\.value)
        for index in 0..<5 {
            let point = points[index]
            let upper = (point >= 0x61 && point <= 0x7A) ? point - 0x20 : point
            guard upper == inbox[index] else { return points }
        }
        if points.count > 5 {
            let next = points[5]
            let endsComponent =
                (delimiter.map { next == UInt32($0) } ?? false) || next == UInt32(star) || next == UInt32(percent)
            guard endsComponent else { return points }
        }
        return inbox + points[5...]
    }

    /// The pattern positions reachable after reading all of `text` (an NFA walk, linear in text × pattern, no
    /// backtracking blow-up on hostile patterns like `*%*%*%…`).
    private static func finalStates(pattern: [UInt32], text: [UInt32], delimiter: UInt32?) -> Set<Int> {
        let starPoint = UInt32(star)
        let percentPoint = UInt32(percent)
        func closure(_ states: Set<Int>) -> Set<Int> {
            var result = states
            var pending = Array(states)
            while let state = pending.popLast() {
                if state < pattern.count && (pattern[state] == starPoint || pattern[state] == percentPoint) {
                    if result.insert(state + 1).inserted { pending.append(state + 1) }
                }
            }
            return result
        }
        var states = closure([0])
        for point in text {
            var next = Set<Int>()
            for state in states where state < pattern.count {
                let token = pattern[state]
                if token == starPoint {
                    next.insert(state)
                } else if token == percentPoint {
                    if point != delimiter { next.insert(state) }
                } else if token == point {
                    next.insert(state + 1)
                }
            }
            states = closure(next)
            if states.isEmpty { break }
        }
        return states
    }
}
