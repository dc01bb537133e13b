// Gateway: applying a folder map to the relayed stream: mailbox arguments of client commands, LIST/LSUB/STATUS
// responses, LIST pattern matching on the client's names.
import IMAP
import MailCore
import Policy

/// What the relay needs of a folder map: names both ways and the client's view of a LIST line.
///
/// Why a protocol: the map itself (imap-policy's `FolderMap`: SPECIAL-USE and known names in many languages,
/// configured names) is policy; the gateway only applies it to bytes.
protocol IMAPFolderTranslation: Sendable {
    /// The server's wire name for a client's mailbox name; names the map does not touch come back unchanged.
    func serverName(forClient name: MailboxName) -> MailboxName
    /// The client's wire name for a server's mailbox name.
    func clientName(forServer name: MailboxName) -> MailboxName
    /// The client's view of one upstream LIST/LSUB line (renamed, `\Sent` etc. added), nil when it is hidden.
    func clientView(of info: MailboxInfo) -> MailboxInfo?
    /// Whether `name` (server side) is the Sent folder or one of its children (lock after send).
    func isSentOrChild(serverName name: MailboxName) -> Bool
}

enum IMAPFolderRewriting {
    /// Which arguments of a command are mailbox names (RFC 3501 §6.3, RFC 6851), by upper-cased name.
    static func mailboxArguments(of command: String) -> [Int] {
        switch command {
        case "SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS", "APPEND": [0]
        case "RENAME": [0, 1]
        case "COPY", "MOVE": [1]
        default: []
        }
    }

    /// Whether a LIST pattern has wildcards (RFC 3501 §6.3.8).
    static func hasWildcards(_ pattern: [UInt8]) -> Bool {
        pattern.contains(UInt8(ascii: "*")) || pattern.contains(UInt8(ascii: "%"))
    }

    /// RFC 3501 §6.3.8: `*` matches anything, `%` anything but the hierarchy delimiter; INBOX in any case.
    /// Policy's `MailboxPattern` does the matching (an NFA walk): a client's hostile pattern such as `*%*%*%…x`
    /// costs time linear in name × pattern, never a backtracking blow-up on the session's queue.
    static func matches(_ name: [UInt8], pattern: [UInt8], delimiter: UInt8?) -> Bool {
        MailboxPattern(pattern, delimiter: delimiter).matches(MailboxName(name))
    }

    /// `* LIST (attributes) "d" name` CRLF (or LSUB).
    static func encodeList(_ info: MailboxInfo, keyword: String) -> [UInt8] {
        var out = Array("* \(keyword) (".utf8)
        out += Array(info.attributes.map(\.rawValue).joined(separator: " ").utf8)
        out += Array(") ".utf8)
        if let delimiter = info.path.pathSeparator {
            out.append(UInt8(ascii: "\""))
            if delimiter == UInt8(ascii: "\"") || delimiter == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(delimiter)
            out.append(UInt8(ascii: "\""))
        } else {
            out += Array("NIL".utf8)
        }
        out.append(0x20)
        out += IMAPCommandLine.encodeAstring(info.name.bytes)
        out += [0x0D, 0x0A]
        return out
    }
}

/// imap-policy's `FolderMap` as the relay uses it: the relay asks upstream for `"" "*"` whenever the client's
/// pattern has wildcards and applies the client's pattern itself, so the per-line view is taken with `*`.
extension FolderMap: IMAPFolderTranslation {
    func clientView(of info: MailboxInfo) -> MailboxInfo? {
        clientListItem(info, reference: MailboxName([]), pattern: MailboxName(Array("*".utf8)))
    }

    func isSentOrChild(serverName name: MailboxName) -> Bool {
        role(ofServerName: name)?.role == .sent
    }
}
