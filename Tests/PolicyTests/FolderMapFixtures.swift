// Shared fixtures for the folder-map, lock and detection tests: upstream LIST replies shaped like Exchange
// Online's (English and German, with and without SPECIAL-USE attributes) and like Dovecot's.

import IMAP
import Policy

/// One LIST line from its decoded name.
func info(_ name: String, _ attributes: [MailboxAttribute] = [.hasNoChildren], delimiter: Character? = "/")
    -> MailboxInfo
{
    MailboxInfo(
        attributes: attributes,
        path: MailboxPath(name: MailboxName(decoded: name), pathSeparator: delimiter?.asciiValue))
}

/// A wire name from its bytes as text (`Gel&APY-schte Elemente`).
func wire(_ text: String) -> MailboxName { MailboxName(Array(text.utf8)) }

enum Fixture: String, CaseIterable, CustomStringConvertible {
    case englishSpecialUse, englishPlain, germanSpecialUse, germanPlain, dovecotInboxDot, dovecotIdentity

    var description: String { rawValue }

    /// The upstream's `LIST "" "*"`.
    var list: [MailboxInfo] {
        switch self {
        case .englishSpecialUse:
            // Exchange Online, as in m365-protocol.md §3.4: attributes on plain LIST.
            return [
                info("INBOX", [.hasChildren]), info("INBOX/Projects"), info("Archive", [.hasNoChildren, .archive]),
                info("Calendar", [.hasChildren]), info("Contacts"), info("Deleted Items", [.hasNoChildren, .trash]),
                info("Drafts", [.hasNoChildren, .drafts]), info("Junk Email", [.hasNoChildren, .junk]),
                info("Outbox"), info("Sent Items", [.hasChildren, .sent]), info("Sent Items/2025"),
                info("Sentinel"),
            ]
        case .englishPlain:
            return [
                info("INBOX", [.hasChildren]), info("INBOX/Projects"), info("Archive"), info("Deleted Items"),
                info("Drafts"), info("Junk Email"), info("Outbox"), info("Sent Items", [.hasChildren]),
                info("Sent Items/2025"), info("Sentinel"),
            ]
        case .germanSpecialUse:
            return [
                info("INBOX", [.hasChildren]), info("INBOX/Projekte"), info("Archiv", [.hasNoChildren, .archive]),
                info("Entwürfe", [.hasNoChildren, .drafts]), info("Gelöschte Elemente", [.hasChildren, .trash]),
                info("Gelöschte Elemente/Alt"), info("Gesendete Elemente", [.hasChildren, .sent]),
                info("Gesendete Elemente/2025"), info("Junk-E-Mail", [.hasNoChildren, .junk]), info("Postausgang"),
                info("Übersicht"),
            ]
        case .germanPlain:
            return [
                info("INBOX", [.hasChildren]), info("INBOX/Projekte"), info("Archiv"), info("Entwürfe"),
                info("Gelöschte Elemente", [.hasChildren]), info("Gelöschte Elemente/Alt"),
                info("Gesendete Elemente", [.hasChildren]), info("Gesendete Elemente/2025"), info("Junk-E-Mail"),
                info("Postausgang"), info("Übersicht"),
            ]
        case .dovecotInboxDot:
            // A Courier-style namespace: everything below INBOX, delimiter ".".
            return [
                info("INBOX", [.hasChildren], delimiter: "."), info("INBOX.Sent", [.hasChildren, .sent], delimiter: "."),
                info("INBOX.Sent.2025", delimiter: "."), info("INBOX.Trash", [.hasNoChildren, .trash], delimiter: "."),
                info("INBOX.Spam", [.hasNoChildren, .junk], delimiter: "."), info("INBOX.Work", delimiter: "."),
            ]
        case .dovecotIdentity:
            return [
                info("INBOX"), info("Sent", [.hasChildren, .sent]), info("Sent/2025"), info("Trash", [.hasNoChildren, .trash]),
                info("Junk", [.hasNoChildren, .junk]), info("Drafts", [.hasNoChildren, .drafts]),
            ]
        }
    }

    var map: FolderMap { FolderMap(configuration: FolderMapConfiguration(), upstreamList: list) }
}
