// IMAP: finding the server's Sent, Trash, Junk, Drafts and Archive folders in its LIST replies.

/// The special-use roles MailGate maps (RFC 6154), each with its LIST attribute and the names Exchange and
/// other servers give the folder when the attribute is missing (m365-protocol.md §3.4, §3.5).
public enum SpecialUse: String, Hashable, Sendable, CaseIterable {
    case sent, trash, junk, drafts, archive

    /// The SPECIAL-USE attribute that marks the folder.
    public var attribute: MailboxAttribute {
        switch self {
        case .sent: return .sent
        case .trash: return .trash
        case .junk: return .junk
        case .drafts: return .drafts
        case .archive: return .archive
        }
    }

    /// Folder names tried in order, compared case-insensitively with the decoded LIST names: Exchange's English
    /// and German names first, then common names of other servers and languages.
    public var knownNames: [String] {
        switch self {
        case .sent:
            return [
                "Sent Items", "Gesendete Elemente", "Sent", "Gesendet", "Sent Messages", "Sent Mail",
                "Éléments envoyés", "Elementos enviados", "Posta inviata", "Verzonden items", "Itens Enviados",
                "Elementy wysłane",
            ]
        case .trash:
            return [
                "Deleted Items", "Gelöschte Elemente", "Trash", "Papierkorb", "Deleted Messages", "Éléments supprimés",
                "Elementos eliminados", "Posta eliminata", "Verwijderde items", "Itens Excluídos", "Elementy usunięte",
            ]
        case .junk:
            return [
                "Junk Email", "Junk-E-Mail", "Spam", "Junk", "Courrier indésirable", "Correo no deseado",
                "Posta indesiderata", "Ongewenste e-mail", "Lixo Eletrônico", "Wiadomości-śmieci",
            ]
        case .drafts:
            return ["Drafts", "Entwürfe", "Brouillons", "Borradores", "Bozze", "Concepten", "Rascunhos", "Wersje robocze"]
        case .archive:
            return ["Archive", "Archiv", "Archives", "Archivo", "Archivio", "Archief", "Arquivo", "Archiwum"]
        }
    }
}

/// Picks the folder for a special-use role from a LIST "" "*" reply.
///
/// Order: the configured name wins (matched against the list to keep the server's exact spelling, else encoded
/// as given); then a selectable mailbox carrying the SPECIAL-USE attribute; then the first known name found.
/// Names are decoded from modified UTF-7 before comparing, so `Gel&APY-schte Elemente` matches `Gelöschte Elemente`.
public enum SpecialFolderFinder {
    public static func find(_ use: SpecialUse, in mailboxes: [MailboxInfo], configured: String? = nil) -> MailboxName? {
        let selectable = mailboxes.filter(\.isSelectable)
        if let configured, !configured.isEmpty {
            return match(configured, in: selectable) ?? MailboxName(decoded: configured)
        }
        if let marked = selectable.first(where: { $0.attributes.contains(use.attribute) }) {
            return marked.name
        }
        for name in use.knownNames {
            if let found = match(name, in: selectable) { return found }
        }
        return nil
    }

    /// `find(_:in:configured:)` over the LIST lines among `responses`.
    public static func find(_ use: SpecialUse, in responses: [UntaggedResponse], configured: String? = nil) -> MailboxName? {
        let mailboxes = responses.compactMap { response -> MailboxInfo? in
            if case .list(let info) = response { return info }
            return nil
        }
        return find(use, in: mailboxes, configured: configured)
    }

    private static func match(_ wanted: String, in mailboxes: [MailboxInfo]) -> MailboxName? {
        let key = wanted.lowercased()
        for mailbox in mailboxes {
            guard let decoded = try? mailbox.name.decodedName else { continue }
            if decoded.lowercased() == key { return mailbox.name }
        }
        return nil
    }
}

/// The Sent folder for the sent copy: `SpecialFolderFinder.find(.sent, …)`.
public enum SentFolderFinder {
    public static func find(in listResponses: [MailboxInfo], configured: String?) -> MailboxName? {
        SpecialFolderFinder.find(.sent, in: listResponses, configured: configured)
    }

    public static func find(in listResponses: [UntaggedResponse], configured: String?) -> MailboxName? {
        SpecialFolderFinder.find(.sent, in: listResponses, configured: configured)
    }
}
