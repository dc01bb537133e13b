// Gateway: the folder map a session builds from what it found at login (Sent, Trash, Junk) and the client-side names.
import IMAP
import MailCore

/// Client names `Sent`, `Trash`, `Junk` ↔ the server's folders found at login (configured names, SPECIAL-USE,
/// known names: `SpecialFolderFinder`), children included (`Sent/2025` ↔ `Sent Items/2025`).
///
/// The client sees each mapped folder once, under its client name and with its SPECIAL-USE attribute; the server's
/// own name of a mapped folder is not listed, nor a server folder that happens to carry a client name of a mapped
/// role (it would shadow the mapped one); `show_sent_folder = false` hides Sent and its children. Everything else
/// passes byte for byte. Written in the gateway because imap-policy's `FolderMap` was not there yet; it implements
/// the same contract (`IMAPFolderTranslation`) and can replace this type without touching the relay.
struct DiscoveredFolderMap: IMAPFolderTranslation {
    struct Entry: Sendable {
        var use: SpecialUse
        var client: [UInt8]
        var server: [UInt8]
        var attribute: MailboxAttribute
    }

    let entries: [Entry]
    let delimiter: UInt8?
    let showSent: Bool

    /// Client-side names (decoded) by role; the defaults are `Sent`, `Trash`, `Junk`.
    static let defaultClientNames: [SpecialUse: String] = [.sent: "Sent", .trash: "Trash", .junk: "Junk"]

    init(
        serverFolders: [SpecialUse: MailboxName], delimiter: UInt8?, showSent: Bool,
        clientNames: [SpecialUse: String] = DiscoveredFolderMap.defaultClientNames
    ) {
        var entries: [Entry] = []
        for use in [SpecialUse.sent, .trash, .junk] {
            guard let server = serverFolders[use], let client = clientNames[use] else { continue }
            entries.append(
                Entry(use: use, client: MailboxName(decoded: client).bytes, server: server.bytes, attribute: use.attribute))
        }
        self.entries = entries
        self.delimiter = delimiter
        self.showSent = showSent
    }

    /// `name` is `base` or a child of it: the rest after the base (empty for the base itself).
    private func rest(of name: [UInt8], under base: [UInt8]) -> ArraySlice<UInt8>? {
        if name == base { return name[name.count...] }
        guard let delimiter, name.count > base.count, name.starts(with: base), name[base.count] == delimiter else {
            return nil
        }
        return name[base.count...]
    }

    func serverName(forClient name: MailboxName) -> MailboxName {
        for entry in entries {
            if let rest = rest(of: name.bytes, under: entry.client) { return MailboxName(entry.server + rest) }
        }
        return name
    }

    func clientName(forServer name: MailboxName) -> MailboxName {
        for entry in entries {
            if let rest = rest(of: name.bytes, under: entry.server) { return MailboxName(entry.client + rest) }
        }
        return name
    }

    func clientView(of info: MailboxInfo) -> MailboxInfo? {
        let bytes = info.name.bytes
        for entry in entries {
            if let rest = rest(of: bytes, under: entry.server) {
                if entry.use == .sent && !showSent { return nil }
                var view = info
                view.path = MailboxPath(name: MailboxName(entry.client + rest), pathSeparator: info.path.pathSeparator)
                if rest.isEmpty, !view.attributes.contains(entry.attribute) { view.attributes.append(entry.attribute) }
                if !rest.isEmpty { view.attributes.removeAll { $0 == entry.attribute } }
                return view
            }
        }
        // A server folder named like a client-side name of a mapped role (a Dovecot "Trash" beside "Deleted Items")
        // would be listed twice under one name: hide it.
        for entry in entries where entry.client != entry.server {
            if rest(of: bytes, under: entry.client) != nil { return nil }
        }
        return info
    }

    func isSentOrChild(serverName name: MailboxName) -> Bool {
        guard let sent = entries.first(where: { $0.use == .sent }) else { return false }
        return rest(of: name.bytes, under: sent.server) != nil
    }
}
