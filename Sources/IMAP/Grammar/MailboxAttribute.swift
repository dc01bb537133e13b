// IMAP: mailbox attributes in LIST responses (RFC 3501 §7.2.2, RFC 6154 SPECIAL-USE, RFC 5258).

/// One attribute of a LIST line (`\HasNoChildren`, `\Sent`), compared without regard to case.
///
/// Exchange Online puts the SPECIAL-USE attributes on plain LIST replies without advertising SPECIAL-USE:
///
///     S: * LIST (\HasNoChildren \Sent) "/" "Sent Items"
public struct MailboxAttribute: Hashable, Sendable, CustomStringConvertible {
    /// The attribute as written on the wire, backslash included.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let noInferiors = MailboxAttribute("\\Noinferiors")
    public static let noSelect = MailboxAttribute("\\Noselect")
    public static let marked = MailboxAttribute("\\Marked")
    public static let unmarked = MailboxAttribute("\\Unmarked")
    public static let nonExistent = MailboxAttribute("\\NonExistent")
    public static let hasChildren = MailboxAttribute("\\HasChildren")
    public static let hasNoChildren = MailboxAttribute("\\HasNoChildren")
    public static let all = MailboxAttribute("\\All")
    public static let archive = MailboxAttribute("\\Archive")
    public static let drafts = MailboxAttribute("\\Drafts")
    public static let flagged = MailboxAttribute("\\Flagged")
    public static let junk = MailboxAttribute("\\Junk")
    public static let sent = MailboxAttribute("\\Sent")
    public static let trash = MailboxAttribute("\\Trash")

    public var description: String { rawValue }

    public static func == (lhs: MailboxAttribute, rhs: MailboxAttribute) -> Bool {
        lhs.rawValue.lowercased() == rhs.rawValue.lowercased()
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue.lowercased()) }
}
