// IMAP: message flags (RFC 3501 §2.3.2).

/// A message flag: a system flag (`\Seen`) or a keyword (`$Forwarded`), compared without regard to case.
///
///     C: A0005 APPEND "Sent Items" (\Seen) {310}
public struct Flag: Hashable, Sendable, CustomStringConvertible {
    /// The flag as written on the wire, backslash included for system flags.
    public let rawValue: String

    /// A flag from its wire text; the caller guarantees the text is an atom (optionally after `\`).
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let seen = Flag("\\Seen")
    public static let answered = Flag("\\Answered")
    public static let flagged = Flag("\\Flagged")
    public static let deleted = Flag("\\Deleted")
    public static let draft = Flag("\\Draft")
    public static let recent = Flag("\\Recent")
    /// `\*` in PERMANENTFLAGS: the client may create new keywords.
    public static let wildcard = Flag("\\*")

    public var description: String { rawValue }

    public static func == (lhs: Flag, rhs: Flag) -> Bool { lhs.rawValue.lowercased() == rhs.rawValue.lowercased() }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue.lowercased()) }
}
