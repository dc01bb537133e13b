// IMAP: the mailbox name as it travels on the wire.

/// A mailbox name exactly as the server spells it on the wire (modified UTF-7 bytes), so that names the folder
/// map does not touch pass through byte for byte.
///
/// `INBOX` is case-insensitive (RFC 3501 §5.1): `inbox` and `INBOX` are equal and hash alike; every other name
/// compares byte for byte.
///
///     S: * LIST (\HasNoChildren \Trash) "/" "Gel&APY-schte Elemente"
public struct MailboxName: Hashable, Sendable, CustomStringConvertible {
    /// The wire bytes (modified UTF-7 unless the session enabled UTF8=ACCEPT).
    public let bytes: [UInt8]

    /// The name from its wire bytes, unchanged.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The wire form of a Unicode name (what a user writes in the configuration).
    public init(decoded name: String) { self.bytes = Array(ModifiedUTF7.encode(name).utf8) }

    /// The name that is always the user's primary mailbox.
    public static let inbox = MailboxName(Array("INBOX".utf8))

    /// Whether this is `INBOX` in any letter case.
    public var isInbox: Bool {
        bytes.count == 5 && zip(bytes, "INBOX".utf8).allSatisfy { ($0 & 0xDF) == $1 }
    }

    /// The Unicode name, for the folder map and for people; throws when the wire bytes are not modified UTF-7.
    public var decodedName: String {
        get throws(IMAPError) { try ModifiedUTF7.decode(bytes: bytes) }
    }

    /// The wire bytes as text (ASCII in practice), for logs and tests.
    public var description: String { String(decoding: bytes, as: UTF8.self) }

    public static func == (lhs: MailboxName, rhs: MailboxName) -> Bool {
        if lhs.isInbox && rhs.isInbox { return true }
        return lhs.bytes == rhs.bytes
    }

    public func hash(into hasher: inout Hasher) {
        if isInbox { hasher.combine(MailboxName.inbox.bytes) } else { hasher.combine(bytes) }
    }
}
