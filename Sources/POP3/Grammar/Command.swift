// POP3: client commands (RFC 1939 §4–7, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

public import MailCore

/// The POP3 command keywords.
public enum POP3Verb: String, Hashable, Sendable, CaseIterable {
    case user = "USER", pass = "PASS", apop = "APOP", auth = "AUTH", capa = "CAPA", stat = "STAT", list = "LIST"
    case uidl = "UIDL", retr = "RETR", top = "TOP", dele = "DELE", noop = "NOOP", rset = "RSET", quit = "QUIT"
    case stls = "STLS"
}

/// One POP3 command, as the server side parses it and the upstream side sends it. Secrets are `Redacted`.
///
///     C: RETR 1
///     C: AUTH XOAUTH2
public enum POP3Command: Equatable, Sendable {
    case user(String)
    /// PASS; the argument is the rest of the line, spaces included (RFC 1939 §7).
    case pass(Redacted<String>)
    /// AUTH, with no mechanism (a mechanism list request), a mechanism, and an optional initial response in
    /// its base64 wire form (`=` for an empty one).
    case auth(mechanism: String?, initialResponse: Redacted<String>?)
    case capa
    case stat
    case list(Int?)
    case uidl(Int?)
    case retr(Int)
    case top(Int, lines: Int)
    case dele(Int)
    case noop
    case rset
    case quit
    case stls

    public var verb: POP3Verb {
        switch self {
        case .user: return .user
        case .pass: return .pass
        case .auth: return .auth
        case .capa: return .capa
        case .stat: return .stat
        case .list: return .list
        case .uidl: return .uidl
        case .retr: return .retr
        case .top: return .top
        case .dele: return .dele
        case .noop: return .noop
        case .rset: return .rset
        case .quit: return .quit
        case .stls: return .stls
        }
    }

    /// Whether a `+OK` to this command is followed by a multi-line body ending in `.` CRLF.
    public var hasMultilineResponse: Bool {
        switch self {
        case .capa, .retr, .top, .list(nil), .uidl(nil), .auth(nil, _): return true
        default: return false
        }
    }
}
