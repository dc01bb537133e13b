// Policy: the folder map between the client's mailbox names (`Sent`, `Trash`, `Junk`) and the server's
// (`Sent Items`, `Gelöschte Elemente`, …), both ways, for commands and for LIST/LSUB/STATUS responses.

public import IMAP

/// What the folder map is built from: the `[server.NAME]` settings, decoded Unicode as the user wrote them.
public struct FolderMapConfiguration: Sendable, Hashable {
    /// `sent_folder`: the server's Sent folder; nil → found by SPECIAL-USE, else by known names.
    public var sentFolder: String?
    /// `trash_folder`.
    public var trashFolder: String?
    /// `spam_folder`.
    public var spamFolder: String?
    /// `imap_sent_name`: what the client sees, `Sent` by default.
    public var clientSentName: String
    /// `imap_trash_name`, `Trash` by default.
    public var clientTrashName: String
    /// `imap_spam_name`, `Junk` by default.
    public var clientJunkName: String
    /// `show_sent_folder`: false hides Sent (and its children) from LIST and LSUB; it stays selectable.
    public var showSentFolder: Bool

    public init(
        sentFolder: String? = nil, trashFolder: String? = nil, spamFolder: String? = nil,
        clientSentName: String = "Sent", clientTrashName: String = "Trash", clientJunkName: String = "Junk",
        showSentFolder: Bool = true
    ) {
        self.sentFolder = sentFolder
        self.trashFolder = trashFolder
        self.spamFolder = spamFolder
        self.clientSentName = clientSentName
        self.clientTrashName = clientTrashName
        self.clientJunkName = clientJunkName
        self.showSentFolder = showSentFolder
    }

    /// The configured server name of `role`, if any (empty counts as unset).
    public func serverName(of role: MappedRole) -> String? {
        let value: String?
        switch role {
        case .sent: value = sentFolder
        case .trash: value = trashFolder
        case .junk: value = spamFolder
        }
        return value?.isEmpty == true ? nil : value
    }

    /// The client-side name of `role`.
    public func clientName(of role: MappedRole) -> String {
        switch role {
        case .sent: return clientSentName
        case .trash: return clientTrashName
        case .junk: return clientJunkName
        }
    }
}

/// The three folders the gateway maps and marks for the client.
public enum MappedRole: String, Sendable, Hashable, CaseIterable {
    case sent, trash, junk

    /// The RFC 6154 attribute the client sees on the mapped folder.
    public var attribute: MailboxAttribute {
        switch self {
        case .sent: return .sent
        case .trash: return .trash
        case .junk: return .junk
        }
    }

    /// The detection role in `SpecialFolderFinder`.
    public var specialUse: SpecialUse {
        switch self {
        case .sent: return .sent
        case .trash: return .trash
        case .junk: return .junk
        }
    }
}

/// One mapped folder: its role, the client's name and the server's name, both as wire bytes.
public struct FolderMapping: Sendable, Hashable {
    public var role: MappedRole
    /// What the client sees (`Sent`), in modified UTF-7.
    public var clientName: MailboxName
    /// What the server calls it (`Gesendete Elemente`), exactly as the server spells it on the wire.
    public var serverName: MailboxName
    /// The hierarchy delimiter of the server's folder (`/` on Exchange, `.` or `/` on Dovecot), nil when flat.
    public var delimiter: UInt8?
    /// The server's LIST line for the folder when it was listed (its attributes are reused when the gateway
    /// has to synthesise the client-side line); nil for a configured folder the LIST did not show.
    public var serverInfo: MailboxInfo?

    public init(
        role: MappedRole, clientName: MailboxName, serverName: MailboxName, delimiter: UInt8?,
        serverInfo: MailboxInfo? = nil
    ) {
        self.role = role
        self.clientName = clientName
        self.serverName = serverName
        self.delimiter = delimiter
        self.serverInfo = serverInfo
    }

    /// Whether client and server agree on the name (a Dovecot `Sent`): only the attribute is added.
    public var isIdentity: Bool { clientName == serverName }
}

/// The mailbox-name translation between client and server (DESIGN.md §6, issue 8 point 4).
///
/// The client sees `Sent`, `Trash`, `Junk` (names configurable) carrying `\Sent`, `\Trash`, `\Junk`; the server
/// keeps its own names (`Sent Items`, `Gelöschte Elemente` = `Gel&APY-schte Elemente` on the wire). Children map
/// with their parent (`Sent/2025` ↔ `Sent Items/2025`, joined by the server's delimiter). Everything else —
/// INBOX in any case, INBOX's children, every other folder, names that are not valid modified UTF-7 — passes
/// through byte for byte.
///
/// Two rules keep the listing unambiguous:
/// - a server folder whose name *is* a client-side name of another folder (a user folder `Sent` beside Exchange's
///   `Sent Items`) is hidden from LIST/LSUB: the client's `Sent` means the mapped folder, so that folder cannot be
///   reached through the gateway and would only be listed twice under one name;
/// - `\Sent`, `\Trash`, `\Junk` on any other server folder are removed, so a client sees exactly one of each.
///
/// Mapping works on wire bytes: modified UTF-7 keeps printable ASCII (and so every delimiter) as itself and
/// `ModifiedUTF7.decode` accepts only the one minimal encoding, so a byte prefix `Sent/` is exactly the decoded
/// prefix, and the tail after it is copied unchanged.
///
///     C: A3 SELECT Sent                  → upstream: A3 SELECT "Sent Items"
///     S: * LIST (\HasNoChildren) "/" "Gesendete Elemente"   → client: * LIST (\HasNoChildren \Sent) "/" Sent
public struct FolderMap: Sendable {
    /// The mapped folders, at most one per role, in the order sent, trash, junk.
    public let mappings: [FolderMapping]
    /// `show_sent_folder`.
    public let showSentFolder: Bool
    /// The delimiter used for names outside the mapped folders (the first mapping's, else the one given).
    public let delimiter: UInt8?

    /// A map from explicit mappings (tests, or a gateway that detected the folders itself). Mappings whose
    /// client name is INBOX, or whose client or server name repeats an earlier mapping's, are dropped.
    public init(mappings: [FolderMapping], showSentFolder: Bool = true, delimiter: UInt8? = nil) {
        var kept: [FolderMapping] = []
        for mapping in mappings {
            if mapping.clientName.isInbox || mapping.serverName.isInbox || mapping.clientName.bytes.isEmpty { continue }
            if kept.contains(where: {
                $0.role == mapping.role || $0.clientName == mapping.clientName || $0.serverName == mapping.serverName
            }) {
                continue
            }
            kept.append(mapping)
        }
        self.mappings = kept
        self.showSentFolder = showSentFolder
        self.delimiter = kept.first?.delimiter ?? delimiter
    }

    /// The map for one account: each role's server folder from the configuration, else found in the upstream's
    /// `LIST "" "*"` (SPECIAL-USE attribute first, then known names; `SpecialFolderFinder`). A role found nowhere
    /// is not mapped (its names pass unchanged).
    ///
    /// - Parameter delimiter: the server's hierarchy delimiter when known from `LIST "" ""`; otherwise taken
    ///   from the mapped folder's own LIST line, else from the first line that has one.
    public init(configuration: FolderMapConfiguration, upstreamList: [MailboxInfo], delimiter: UInt8? = nil) {
        let fallbackDelimiter = delimiter ?? upstreamList.lazy.compactMap(\.path.pathSeparator).first
        var mappings: [FolderMapping] = []
        for role in MappedRole.allCases {
            guard
                let server = SpecialFolderFinder.find(
                    role.specialUse, in: upstreamList, configured: configuration.serverName(of: role))
            else { continue }
            let info = upstreamList.first(where: { $0.name == server })
            mappings.append(
                FolderMapping(
                    role: role, clientName: MailboxName(decoded: configuration.clientName(of: role)),
                    serverName: server, delimiter: info?.path.pathSeparator ?? fallbackDelimiter, serverInfo: info))
        }
        self.init(mappings: mappings, showSentFolder: configuration.showSentFolder, delimiter: fallbackDelimiter)
    }

    /// The mapping of `role`, if that role is mapped.
    public func mapping(for role: MappedRole) -> FolderMapping? { mappings.first { $0.role == role } }

    /// The server's name of `role`'s folder (for the lock, the sent copy and de-duplication).
    public func serverName(of role: MappedRole) -> MailboxName? { mapping(for: role)?.serverName }

    // MARK: - Names in commands (client → server)

    /// The server's name for a mailbox argument of a client command; unchanged (the very same bytes) when the
    /// name is not a mapped folder or below one.
    public func serverName(forClient name: MailboxName) -> MailboxName {
        translate(name, from: \.clientName, to: \.serverName)
    }

    /// `serverName(forClient:)` for decoded Unicode names (configuration, logs, tests).
    public func serverName(forClient name: String) -> String {
        let mapped = serverName(forClient: MailboxName(decoded: name))
        return (try? mapped.decodedName) ?? name
    }

    // MARK: - Names in responses (server → client)

    /// The client's name for a mailbox name in a response (STATUS, LIST, a response code); unchanged when the
    /// name is not a mapped folder or below one.
    ///
    /// For `* STATUS` the gateway should prefer echoing the name the client itself sent (a client that
    /// addressed `Sent Items` directly expects `Sent Items` back); this is for names it does not know.
    public func clientName(forServer name: MailboxName) -> MailboxName {
        translate(name, from: \.serverName, to: \.clientName)
    }

    /// The first mapping whose `from` name is `name` or an ancestor of it, with that prefix replaced by its `to`
    /// name; `name` itself (the very same bytes) when none is.
    private func translate(
        _ name: MailboxName, from: KeyPath<FolderMapping, MailboxName>, to: KeyPath<FolderMapping, MailboxName>
    ) -> MailboxName {
        for mapping in mappings {
            if let mapped = Self.replacingPrefix(
                of: name, from: mapping[keyPath: from], to: mapping[keyPath: to], delimiter: mapping.delimiter)
            {
                return mapped
            }
        }
        return name
    }

    /// `clientName(forServer:)` for decoded Unicode names.
    public func clientName(forServer name: String) -> String {
        let mapped = clientName(forServer: MailboxName(decoded: name))
        return (try? mapped.decodedName) ?? name
    }

    /// The role of the mapped folder `serverName` is, or is below (`Sent Items/2025` → `.sent`).
    public func role(ofServerName serverName: MailboxName) -> (role: MappedRole, isChild: Bool)? {
        for mapping in mappings {
            switch Self.relation(of: serverName, to: mapping.serverName, delimiter: mapping.delimiter) {
            case .same: return (mapping.role, false)
            case .child: return (mapping.role, true)
            case .unrelated: continue
            }
        }
        return nil
    }

    /// Whether `serverName` is the server's Sent folder itself (not a subfolder): where an APPEND is looked at by
    /// `AppendDedup`.
    public func isSentFolder(_ serverName: MailboxName) -> Bool {
        guard let role = role(ofServerName: serverName) else { return false }
        return role.role == .sent && !role.isChild
    }

    // MARK: - LIST and LSUB

    /// The client's view of one upstream LIST/LSUB line, or nil when the client must not see it.
    ///
    /// The name is mapped back; a mapped folder gets its attribute (`\Sent`, `\Trash`, `\Junk`); those attributes
    /// are removed from every other line; a server folder shadowed by a client-side name is hidden; Sent and its
    /// children are hidden when `show_sent_folder = false`; and a line whose client-side name the client's pattern
    /// does not match is dropped (it came from a broader upstream pattern, or it was the server's own name of a
    /// mapped folder).
    ///
    /// - Parameters:
    ///   - reference, pattern: the client's own LIST arguments.
    ///   - specialUseOnly: the client asked `LIST (SPECIAL-USE) …` (RFC 6154 §5.1): keep only lines that carry a
    ///     special-use attribute after the rewrite.
    public func clientListItem(
        _ info: MailboxInfo, reference: MailboxName, pattern: MailboxName, specialUseOnly: Bool = false
    ) -> MailboxInfo? {
        // The delimiter reply to LIST "" "" has an empty name: nothing to map.
        if info.name.bytes.isEmpty { return specialUseOnly ? nil : info }
        var result = info
        if let (role, isChild) = role(ofServerName: info.name) {
            if role == .sent && !showSentFolder { return nil }
            result.path.name = clientName(forServer: info.name)
            // A mapped folder carries its own attribute and no other role's; its children carry none of them.
            result.attributes.removeAll { attribute in
                mappings.contains { (isChild || $0.role != role) && $0.role.attribute == attribute }
            }
            if !isChild && !result.attributes.contains(role.attribute) { result.attributes.append(role.attribute) }
        } else {
            if isShadowed(info.name) { return nil }
            result.attributes.removeAll { attribute in mappings.contains { $0.role.attribute == attribute } }
        }
        let joined = MailboxPattern(
            reference: reference, mailbox: pattern, delimiter: info.path.pathSeparator ?? delimiter)
        guard joined.matches(result.name) else { return nil }
        if specialUseOnly && !result.attributes.contains(where: Self.specialUseAttributes.contains) { return nil }
        return result
    }

    /// The lines to add at the end of a client's LIST for mapped folders its pattern matches but the upstream's
    /// reply did not carry: a configured `sent_folder` the upstream does not LIST (the gateway asks upstream for
    /// `"" "*"` whenever the client's pattern has wildcards, and for the mapped server name when it has none).
    /// `listed` are the client-side names already sent for this command.
    ///
    /// Only the mapped folders themselves are synthesised (not their children), with the attributes of the
    /// server's LIST line at detection time, else just the role attribute. Not for LSUB: whether the folder is
    /// subscribed is the server's to say.
    public func synthesizedListItems(
        reference: MailboxName, pattern: MailboxName, listed: Set<MailboxName>, specialUseOnly: Bool = false
    ) -> [MailboxInfo] {
        guard !pattern.bytes.isEmpty else { return [] }
        var lines: [MailboxInfo] = []
        for mapping in mappings {
            if mapping.role == .sent && !showSentFolder { continue }
            if listed.contains(mapping.clientName) { continue }
            let joined = MailboxPattern(reference: reference, mailbox: pattern, delimiter: mapping.delimiter)
            guard joined.matches(mapping.clientName) else { continue }
            var attributes = mapping.serverInfo?.attributes ?? []
            attributes.removeAll { attribute in Self.specialUseAttributes.contains(attribute) && attribute != mapping.role.attribute }
            if !attributes.contains(mapping.role.attribute) { attributes.append(mapping.role.attribute) }
            lines.append(
                MailboxInfo(
                    attributes: attributes, path: MailboxPath(name: mapping.clientName, pathSeparator: mapping.delimiter)))
        }
        _ = specialUseOnly  // every synthesised line carries a special-use attribute
        return lines
    }

    // MARK: - Internals

    static let specialUseAttributes: [MailboxAttribute] = [.all, .archive, .drafts, .flagged, .junk, .sent, .trash]

    /// Whether a server name is a mapped client-side name (or below one) without being a mapped server folder.
    func isShadowed(_ serverName: MailboxName) -> Bool {
        for mapping in mappings where !mapping.isIdentity {
            if Self.relation(of: serverName, to: mapping.clientName, delimiter: mapping.delimiter) != .unrelated {
                return true
            }
        }
        return false
    }

    enum Relation { case same, child, unrelated }

    /// How `name` stands to `root`: the same mailbox, below it (root + delimiter + more), or neither. A leading
    /// INBOX component compares in any letter case.
    static func relation(of name: MailboxName, to root: MailboxName, delimiter: UInt8?) -> Relation {
        let nameBytes = name.bytes
        let rootBytes = root.bytes
        guard nameBytes.count >= rootBytes.count else { return .unrelated }
        if !prefixEqual(nameBytes, rootBytes, delimiter: delimiter) { return .unrelated }
        if nameBytes.count == rootBytes.count { return .same }
        if let delimiter, nameBytes[rootBytes.count] == delimiter, nameBytes.count > rootBytes.count + 1 {
            return .child
        }
        return .unrelated
    }

    /// Whether the first `root.count` bytes of `name` are `root` (a leading INBOX component case-insensitively).
    private static func prefixEqual(_ name: [UInt8], _ root: [UInt8], delimiter: UInt8?) -> Bool {
        var start = 0
        if root.count >= 5 && isInboxComponent(root, delimiter: delimiter) {
            guard isInboxComponent(name, delimiter: delimiter) else { return false }
            start = 5
        }
        return name[start..<root.count].elementsEqual(root[start..<root.count])
    }

    /// Whether `bytes` begins with the component INBOX (any case) followed by the end or the delimiter.
    private static func isInboxComponent(_ bytes: [UInt8], delimiter: UInt8?) -> Bool {
        guard bytes.count >= 5, MailboxName(Array(bytes[0..<5])).isInbox else { return false }
        return bytes.count == 5 || bytes[5] == delimiter
    }

    /// `root`'s bytes replaced by `replacement`'s when `name` is `root` or below it; nil otherwise.
    static func replacingPrefix(
        of name: MailboxName, from root: MailboxName, to replacement: MailboxName, delimiter: UInt8?
    ) -> MailboxName? {
        switch relation(of: name, to: root, delimiter: delimiter) {
        case .same: return replacement
        case .child: return MailboxName(replacement.bytes + name.bytes[root.bytes.count...])
        case .unrelated: return nil
        }
    }
}
