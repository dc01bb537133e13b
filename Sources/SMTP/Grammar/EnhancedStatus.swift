// SMTP: grammar types, parsers, encoders, dot-stuffing and the two state machines (server side, upstream side).

/// An RFC 3463 enhanced status code, `class.subject.detail`, e.g. `5.7.139`.
///
/// `class` is 2 (success), 4 (persistent transient failure) or 5 (permanent failure); subject and detail are
/// 1–3 digits each (RFC 3463 §2).
public struct EnhancedStatus: Sendable, Hashable, CustomStringConvertible {
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    /// A code from its three numbers; out-of-range numbers return `nil`.
    public init?(_ statusClass: Int, _ subject: Int, _ detail: Int) {
        guard [2, 4, 5].contains(statusClass), (0...999).contains(subject), (0...999).contains(detail) else { return nil }
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `"x.y.z"` exactly (no surrounding text); `nil` when it is not an enhanced code.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var numbers = [Int]()
        for (index, part) in parts.enumerated() {
            let maximumDigits = index == 0 ? 1 : 3
            guard !part.isEmpty, part.count <= maximumDigits, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(part)
            else { return nil }
            numbers.append(value)
        }
        self.init(numbers[0], numbers[1], numbers[2])
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }
}

extension EnhancedStatus {
    /// Builds a constant from literals known to be valid; used for MailGate's own replies.
    static func known(_ statusClass: Int, _ subject: Int, _ detail: Int) -> EnhancedStatus {
        EnhancedStatus(statusClass, subject, detail)!
    }
}
