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

    /// Folder names tried in order, compared case-insensitively with the decoded LIST names (so
    /// `Gel&APY-schte Elemente` matches `Gelöschte Elemente`): Exchange's English and German names first, then the
    /// other languages Exchange localises its default folders into, then common names of other servers.
    ///
    /// Sources, so that nobody has to trust a list from memory:
    /// - [E] m365-protocol.md §3.4: Exchange Online over IMAP, English (`Sent Items`, `Deleted Items`,
    ///   `Junk Email`) and German (`Gesendete Elemente`, `Gelöschte Elemente`, `Junk-E-Mail`).
    /// - [F] michelderooij/Fix-MailboxFolders, Fix-MailboxFolders.ps1 (v1.6, 2022), table `$LanguageInfo`: the
    ///   localised names of Exchange's well-known folders per regional setting, used to repair mailboxes: en-US
    ///   (`Junk E-mail` before Exchange 2013, `Junk Email` since), nl-NL, sv-SE, es-ES, fr-FR/fr-CA, ru-RU,
    ///   cs-CZ, de-DE (with the Exchange 2007 names `Gesendete Objekte`, `Gelöschte Objekte`), da-DK, ja-JP,
    ///   it-IT, pt-BR/pt-PT (the script gives `Itens excluídos` and `Itens eliminados`, one per variant), no-NO.
    /// - [P] a third-party PST importer's fallback table of Outlook default names (no authority; one source
    ///   only): Polish, Hungarian, Finnish, Turkish, Chinese, Korean Sent/Deleted names, and the newer Swedish
    ///   `Skickade objekt` / `Borttagna objekt`. **Unconfirmed** for Exchange Online's IMAP view.
    /// - [U] **unconfirmed**, no source seen: the Junk names of Polish, Finnish, Hungarian, Turkish, Chinese and
    ///   Korean are listed as Outlook is believed to show them; a wrong entry only costs a missed fallback
    ///   (set `spam_folder` then), and SPECIAL-USE or an earlier name still wins.
    /// - [G] generic names of other servers (Dovecot's and Thunderbird's defaults, Apple's `Sent Messages`).
    public var knownNames: [String] {
        switch self {
        case .sent:
            return [
                "Sent Items", "Gesendete Elemente",  // [E]
                "Gesendete Objekte", "Verzonden items", "Skickat", "Elementos enviados", "Éléments envoyés",
                "Отправленные", "Odeslaná pošta", "Sendt post", "送信済みアイテム", "Posta inviata", "Itens enviados",
                "Sendte elementer",  // [F]
                "Skickade objekt", "Elementy wysłane", "Elküldött elemek", "Lähetetyt", "Gönderilmiş Öğeler",
                "已发送邮件", "보낸 편지함",  // [P]
                "Sent", "Gesendet", "Sent Messages", "Sent Mail",  // [G]
            ]
        case .trash:
            return [
                "Deleted Items", "Gelöschte Elemente",  // [E]
                "Gelöschte Objekte", "Verwijderde items", "Borttaget", "Elementos eliminados", "Éléments supprimés",
                "Удаленные", "Odstraněná pošta", "Slettet post", "削除済みアイテム", "Posta eliminata",
                "Itens excluídos", "Itens eliminados", "Slettede elementer",  // [F]
                "Borttagna objekt", "Elementy usunięte", "Törölt elemek", "Poistetut", "Silinmiş Öğeler",
                "已删除邮件", "지운 편지함",  // [P]
                "Trash", "Papierkorb", "Deleted Messages",  // [G]
            ]
        case .junk:
            return [
                "Junk Email", "Junk-E-Mail",  // [E] (the German one is also [F]'s de-DE and da-DK `Junk-E-mail`)
                "Junk E-mail", "Ongewenste e-mail", "Skräppost", "Correo no deseado", "Courrier indésirable",
                "Нежелательная почта", "Nevyžádaná pošta", "迷惑メール", "Posta indesiderata", "Lixo eletrônico",
                "Søppelpost",  // [F]
                "Wiadomości-śmieci", "Levélszemét", "Roskaposti", "Gereksiz E-posta", "垃圾邮件",
                "정크 메일",  // [U]
                "Spam", "Junk",  // [G]
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
