// IMAP: the client commands MailGate sends upstream (RFC 3501 §6, RFC 4959, RFC 2177).

public import MailCore

/// A command MailGate sends to the upstream server. Secrets (SASL responses, passwords) are held `Redacted`.
public enum IMAPCommand: Equatable, Sendable {
    ///     C: A0001 CAPABILITY
    case capability
    ///     C: A0002 NOOP
    case noop
    ///     C: A0009 LOGOUT
    case logout
    /// SASL authentication; `initialResponse` is the raw (not yet base64) client response sent on the command
    /// line (SASL-IR, RFC 4959), written `=` when empty.
    ///
    ///     C: A0002 AUTHENTICATE XOAUTH2 dXNlcj10ZXN0QGNvbnRvc28…
    case authenticate(mechanism: String, initialResponse: Redacted<[UInt8]>?)
    /// Plain-text login; both credentials are sent as literals so no quoting rule can go wrong.
    ///
    ///     C: A0002 LOGIN {20}
    ///     S: + Ready
    ///     C: user@contoso.com {8}
    case login(username: String, password: Redacted<String>)
    /// `LIST reference pattern`; the pattern is in wire form (modified UTF-7) and may hold `%` and `*`.
    ///
    ///     C: A0003 LIST "" "*"
    case list(reference: MailboxName, pattern: [UInt8])
    ///     C: A0004 SELECT "Sent Items"
    case select(MailboxName)
    ///     C: A0004 EXAMINE "Sent Items"
    case examine(MailboxName)
    /// `UID SEARCH HEADER field value`, adding `CHARSET UTF-8` when either is not ASCII.
    ///
    ///     C: A0005 UID SEARCH HEADER Message-ID "<1234@contoso.com>"
    case uidSearchHeader(field: String, value: String)
    /// `UID SEARCH OR HEADER field v1 OR HEADER field v2 HEADER field v3`: any of several values (the sent-copy
    /// worker's batch check of Message-IDs). With one value it is `uidSearchHeader`.
    ///
    ///     C: A0008 UID SEARCH OR HEADER Message-ID "<1@c>" HEADER Message-ID "<2@c>"
    case uidSearchHeaderAny(field: String, values: [String])
    /// `APPEND mailbox [(flags)] [date-time] literal`; `internalDate` is an RFC 3501 date-time without quotes,
    /// e.g. `17-Jul-1996 02:44:25 -0700`.
    ///
    ///     C: A0006 APPEND "Sent Items" (\Seen) {310}
    case append(mailbox: MailboxName, flags: [Flag], internalDate: String?, message: [UInt8])
    /// RFC 2177; ended by `IMAPCommandEncoder.done`.
    ///
    ///     C: A0007 IDLE
    case idle

    /// The command's name, for logs and errors.
    public var name: String {
        switch self {
        case .capability: return "CAPABILITY"
        case .noop: return "NOOP"
        case .logout: return "LOGOUT"
        case .authenticate: return "AUTHENTICATE"
        case .login: return "LOGIN"
        case .list: return "LIST"
        case .select: return "SELECT"
        case .examine: return "EXAMINE"
        case .uidSearchHeader: return "UID SEARCH"
        case .uidSearchHeaderAny: return "UID SEARCH"
        case .append: return "APPEND"
        case .idle: return "IDLE"
        }
    }
}

/// A command with its tag.
public struct TaggedCommand: Equatable, Sendable {
    public var tag: String
    public var command: IMAPCommand

    public init(tag: String, command: IMAPCommand) {
        self.tag = tag
        self.command = command
    }
}

/// A piece of an encoded command: bytes to write, or a point where a synchronizing literal's `{n}` CRLF has
/// been written and the payload may only follow after the server's `+` (RFC 3501 §7.5).
public enum IMAPCommandSegment: Hashable, Sendable {
    case bytes([UInt8])
    case waitForContinuation
}
