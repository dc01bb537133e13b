// Tests for Policy.FolderMap: names both ways, children, INBOX, delimiters, configuration, LIST rewrite.

import IMAP
import Policy
import Testing

@Suite("FolderMap names")
struct FolderMapNameTests {
    /// (fixture, client's name, server's name), decoded: both directions must hold.
    static let pairs: [(Fixture, String, String)] = [
        (.englishSpecialUse, "Sent", "Sent Items"),
        (.englishSpecialUse, "Sent/2025", "Sent Items/2025"),
        (.englishSpecialUse, "Sent/2025/Q1", "Sent Items/2025/Q1"),
        (.englishSpecialUse, "Trash", "Deleted Items"),
        (.englishSpecialUse, "Junk", "Junk Email"),
        (.englishPlain, "Sent", "Sent Items"),
        (.englishPlain, "Sent/2025", "Sent Items/2025"),
        (.englishPlain, "Trash", "Deleted Items"),
        (.englishPlain, "Junk", "Junk Email"),
        (.germanSpecialUse, "Sent", "Gesendete Elemente"),
        (.germanSpecialUse, "Sent/2025", "Gesendete Elemente/2025"),
        (.germanSpecialUse, "Trash", "Gelöschte Elemente"),
        (.germanSpecialUse, "Trash/Alt", "Gelöschte Elemente/Alt"),
        (.germanSpecialUse, "Trash/Über", "Gelöschte Elemente/Über"),
        (.germanSpecialUse, "Junk", "Junk-E-Mail"),
        (.germanPlain, "Sent", "Gesendete Elemente"),
        (.germanPlain, "Trash", "Gelöschte Elemente"),
        (.germanPlain, "Trash/Alt", "Gelöschte Elemente/Alt"),
        (.germanPlain, "Junk", "Junk-E-Mail"),
        (.dovecotInboxDot, "Sent", "INBOX.Sent"),
        (.dovecotInboxDot, "Sent.2025", "INBOX.Sent.2025"),
        (.dovecotInboxDot, "Trash", "INBOX.Trash"),
        (.dovecotInboxDot, "Junk", "INBOX.Spam"),
        (.dovecotIdentity, "Sent", "Sent"),
        (.dovecotIdentity, "Sent/2025", "Sent/2025"),
        (.dovecotIdentity, "Trash", "Trash"),
    ]

    @Test("client → server and server → client, decoded and on the wire", arguments: pairs)
    func bothWays(fixture: Fixture, client: String, server: String) {
        let map = fixture.map
        #expect(map.serverName(forClient: client) == server)
        #expect(map.clientName(forServer: server) == client)
        #expect(map.serverName(forClient: MailboxName(decoded: client)).bytes == MailboxName(decoded: server).bytes)
        #expect(map.clientName(forServer: MailboxName(decoded: server)).bytes == MailboxName(decoded: client).bytes)
    }

    /// (fixture, wire bytes the client sends, wire bytes upstream): modified UTF-7 as Exchange lists it.
    static let wirePairs: [(Fixture, String, String)] = [
        (.germanSpecialUse, "Trash", "Gel&APY-schte Elemente"),
        (.germanPlain, "Trash", "Gel&APY-schte Elemente"),
        (.germanPlain, "Trash/&ANw-ber", "Gel&APY-schte Elemente/&ANw-ber"),
        (.germanPlain, "Sent/&Jjo-", "Gesendete Elemente/&Jjo-"),
        (.englishPlain, "Sent/a&-b", "Sent Items/a&-b"),
    ]

    @Test("wire bytes map with the tail copied as it came", arguments: wirePairs)
    func wireBytes(fixture: Fixture, client: String, server: String) {
        let map = fixture.map
        #expect(map.serverName(forClient: wire(client)).bytes == Array(server.utf8))
        #expect(map.clientName(forServer: wire(server)).bytes == Array(client.utf8))
    }

    /// Names the map must leave alone, byte for byte, in both directions.
    static let untouched: [(Fixture, String)] = [
        (.englishSpecialUse, "INBOX"), (.englishSpecialUse, "inbox"), (.englishSpecialUse, "InBoX/Projects"),
        (.englishSpecialUse, "INBOX/Sent"), (.englishSpecialUse, "Drafts"), (.englishSpecialUse, "Sentinel"),
        (.englishSpecialUse, "Sent Items2"), (.englishSpecialUse, "sent"), (.englishSpecialUse, "Sent/"),
        (.englishSpecialUse, "Outbox/Sent"), (.englishSpecialUse, ""), (.englishSpecialUse, "Foo&bar"),
        (.englishSpecialUse, "Sent&AOQ-"), (.englishSpecialUse, "&AOQ-"),
        (.germanPlain, "Entw&APw-rfe"), (.germanPlain, "&ANw-bersicht"), (.germanPlain, "Gesendete"),
        (.germanPlain, "Trash.Alt"),
        (.dovecotInboxDot, "Sent/2025"), (.dovecotInboxDot, "INBOX.Work"), (.dovecotInboxDot, "inbox"),
        (.dovecotInboxDot, "Spam"),
    ]

    @Test("unmapped names pass unchanged both ways", arguments: untouched)
    func unchanged(fixture: Fixture, text: String) {
        let map = fixture.map
        let name = wire(text)
        let client = map.clientName(forServer: name)
        let server = map.serverName(forClient: name)
        // The client's "Sent Items" (the server's own name) goes upstream unchanged; back it reads as the client's.
        #expect(server.bytes == name.bytes)
        if map.role(ofServerName: name) == nil { #expect(client.bytes == name.bytes) }
    }

    @Test("the server's INBOX-prefixed name maps back in any letter case")
    func inboxCaseOnTheServer() {
        let map = Fixture.dovecotInboxDot.map
        #expect(map.clientName(forServer: wire("inbox.Sent")) == wire("Sent"))
        #expect(map.clientName(forServer: wire("Inbox.Sent.2025")).bytes == Array("Sent.2025".utf8))
        #expect(map.role(ofServerName: wire("INBOX.Sent.2025"))?.role == .sent)
        #expect(map.role(ofServerName: wire("INBOX.Sent.2025"))?.isChild == true)
    }

    @Test("the server's own name of a mapped folder, sent by a client, goes upstream as it is")
    func serverNameFromTheClient() {
        let map = Fixture.englishSpecialUse.map
        #expect(map.serverName(forClient: wire("Sent Items")) == wire("Sent Items"))
        #expect(map.serverName(forClient: wire("Sent Items/2025")) == wire("Sent Items/2025"))
    }

    @Test("detection: roles and server names per fixture", arguments: [
        (Fixture.englishSpecialUse, "Sent Items", "Deleted Items", "Junk Email"),
        (.englishPlain, "Sent Items", "Deleted Items", "Junk Email"),
        (.germanSpecialUse, "Gesendete Elemente", "Gelöschte Elemente", "Junk-E-Mail"),
        (.germanPlain, "Gesendete Elemente", "Gelöschte Elemente", "Junk-E-Mail"),
        (.dovecotInboxDot, "INBOX.Sent", "INBOX.Trash", "INBOX.Spam"),
        (.dovecotIdentity, "Sent", "Trash", "Junk"),
    ])
    func detection(fixture: Fixture, sent: String, trash: String, junk: String) throws {
        let map = fixture.map
        #expect(try map.serverName(of: .sent)?.decodedName == sent)
        #expect(try map.serverName(of: .trash)?.decodedName == trash)
        #expect(try map.serverName(of: .junk)?.decodedName == junk)
        #expect(map.mapping(for: .sent)?.delimiter == (fixture == .dovecotInboxDot ? UInt8(ascii: ".") : UInt8(ascii: "/")))
    }

    @Test("configuration: server names override detection, client names are configurable")
    func configuration() throws {
        let configuration = FolderMapConfiguration(
            sentFolder: "Archive", trashFolder: "Papierkorb", spamFolder: nil, clientSentName: "Gesendet",
            clientTrashName: "Gelöscht", clientJunkName: "Spam")
        let map = FolderMap(configuration: configuration, upstreamList: Fixture.englishSpecialUse.list)
        #expect(map.serverName(forClient: "Gesendet") == "Archive")
        #expect(map.serverName(forClient: "Gesendet/x") == "Archive/x")
        #expect(map.clientName(forServer: "Archive") == "Gesendet")
        // A configured folder the LIST does not show is still mapped, encoded as given.
        #expect(map.serverName(forClient: "Gelöscht") == "Papierkorb")
        #expect(map.serverName(forClient: wire("Gel&APY-scht")) == wire("Papierkorb"))
        #expect(map.clientName(forServer: wire("Papierkorb")).bytes == Array("Gel&APY-scht".utf8))
        #expect(map.serverName(forClient: "Spam") == "Junk Email")
        // The defaults are no longer mapped.
        #expect(map.serverName(forClient: "Sent") == "Sent")
        #expect(map.serverName(forClient: "Trash") == "Trash")
        #expect(map.mapping(for: .trash)?.serverInfo == nil)
    }

    @Test("a configured name is matched case-insensitively to keep the server's spelling")
    func configuredSpelling() throws {
        let configuration = FolderMapConfiguration(sentFolder: "gesendete elemente")
        let map = FolderMap(configuration: configuration, upstreamList: Fixture.germanPlain.list)
        #expect(map.serverName(of: .sent) == wire("Gesendete Elemente"))
    }

    @Test("a role found nowhere is not mapped")
    func missingRole() {
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: [info("INBOX"), info("Work")])
        #expect(map.mappings.isEmpty)
        #expect(map.serverName(forClient: wire("Sent")) == wire("Sent"))
    }

    @Test("explicit mappings: INBOX and repeated names are dropped")
    func explicitMappings() {
        let slash = UInt8(ascii: "/")
        let map = FolderMap(mappings: [
            FolderMapping(role: .sent, clientName: .inbox, serverName: wire("Sent Items"), delimiter: slash),
            FolderMapping(role: .trash, clientName: wire("Trash"), serverName: wire("Deleted Items"), delimiter: slash),
            FolderMapping(role: .junk, clientName: wire("Trash"), serverName: wire("Junk Email"), delimiter: slash),
        ])
        #expect(map.mappings.map(\.role) == [.trash])
        #expect(map.serverName(forClient: MailboxName.inbox) == .inbox)
    }
}

@Suite("FolderMap LIST and LSUB")
struct FolderMapListTests {
    /// The client's view of a whole `LIST "" "*"`: names (decoded) and attributes.
    static func view(_ map: FolderMap, _ list: [MailboxInfo], pattern: String = "*") -> [String: [MailboxAttribute]] {
        var result: [String: [MailboxAttribute]] = [:]
        for line in list {
            guard let item = map.clientListItem(line, reference: wire(""), pattern: MailboxName(decoded: pattern))
            else { continue }
            let name = (try? item.name.decodedName) ?? item.name.description
            #expect(result[name] == nil, "\(name) listed twice")
            result[name] = item.attributes
        }
        return result
    }

    @Test("Exchange English, with and without SPECIAL-USE: mapped names carry their attribute", arguments: [
        Fixture.englishSpecialUse, .englishPlain,
    ])
    func english(fixture: Fixture) {
        let view = Self.view(fixture.map, fixture.list)
        #expect(view["Sent"] == [.hasChildren, .sent])
        #expect(view["Sent/2025"] == [.hasNoChildren])
        #expect(view["Trash"] == [.hasNoChildren, .trash])
        #expect(view["Junk"] == [.hasNoChildren, .junk])
        #expect(view["Sent Items"] == nil)
        #expect(view["Deleted Items"] == nil)
        #expect(view["Junk Email"] == nil)
        #expect(view["INBOX"] == [.hasChildren])
        #expect(view["INBOX/Projects"] != nil)
        #expect(view["Sentinel"] != nil)
        #expect(view["Outbox"] != nil)
        if fixture == .englishSpecialUse {
            #expect(view["Drafts"] == [.hasNoChildren, .drafts])
            #expect(view["Archive"] == [.hasNoChildren, .archive])
        }
    }

    @Test("Exchange German, with and without SPECIAL-USE", arguments: [Fixture.germanSpecialUse, .germanPlain])
    func german(fixture: Fixture) {
        let view = Self.view(fixture.map, fixture.list)
        #expect(view["Sent"] == [.hasChildren, .sent])
        #expect(view["Sent/2025"] == [.hasNoChildren])
        #expect(view["Trash"] == [.hasChildren, .trash])
        #expect(view["Trash/Alt"] == [.hasNoChildren])
        #expect(view["Junk"] == [.hasNoChildren, .junk])
        #expect(view["Gesendete Elemente"] == nil)
        #expect(view["Gelöschte Elemente"] == nil)
        #expect(view["Junk-E-Mail"] == nil)
        #expect(view["Entwürfe"] != nil)
        #expect(view["Übersicht"] != nil)
        #expect(view.count == fixture.list.count)
    }

    @Test("the rewritten line keeps the server's delimiter and wire form")
    func wireForm() throws {
        let map = Fixture.germanPlain.map
        let item = try #require(
            map.clientListItem(info("Gelöschte Elemente/Alt"), reference: wire(""), pattern: wire("*")))
        #expect(item.name.bytes == Array("Trash/Alt".utf8))
        #expect(item.path.pathSeparator == UInt8(ascii: "/"))
        let untouched = try #require(map.clientListItem(info("Entwürfe"), reference: wire(""), pattern: wire("*")))
        #expect(untouched.name.bytes == Array("Entw&APw-rfe".utf8))
    }

    @Test("a server folder named like a client-side name is hidden, its stray attribute too")
    func shadowed() {
        let list = Fixture.englishSpecialUse.list + [info("Sent"), info("Sent/old"), info("Trash", [.hasNoChildren, .trash])]
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: list)
        let view = Self.view(map, list)
        #expect(view["Sent"] == [.hasChildren, .sent])
        #expect(view["Sent/old"] == nil)
        #expect(view["Trash"] == [.hasNoChildren, .trash])
    }

    @Test("a child never carries a role attribute; isSentFolder is the folder itself")
    func childAttributes() throws {
        let map = Fixture.englishSpecialUse.map
        let child = try #require(
            map.clientListItem(info("Sent Items/2025", [.hasNoChildren, .sent, .trash]), reference: wire(""), pattern: wire("*")))
        #expect(child.attributes == [.hasNoChildren])
        let sent = try #require(
            map.clientListItem(info("Sent Items", [.hasChildren, .junk]), reference: wire(""), pattern: wire("*")))
        #expect(sent.attributes == [.hasChildren, .sent])
        #expect(map.isSentFolder(wire("Sent Items")))
        #expect(!map.isSentFolder(wire("Sent Items/2025")))
        #expect(!map.isSentFolder(wire("Deleted Items")))
        #expect(!map.isSentFolder(wire("Sent")))
    }

    @Test("\\Sent on a folder other than the mapped one is removed")
    func strayAttribute() {
        let configuration = FolderMapConfiguration(sentFolder: "Outbox")
        let map = FolderMap(configuration: configuration, upstreamList: Fixture.englishSpecialUse.list)
        let view = Self.view(map, Fixture.englishSpecialUse.list)
        #expect(view["Sent"] == [.hasNoChildren, .sent])  // Outbox's line
        #expect(view["Sent Items"] == [.hasChildren])
        #expect(view["Sent Items/2025"] != nil)
        #expect(view["Drafts"] == [.hasNoChildren, .drafts])
    }

    @Test("show_sent_folder = false hides Sent and its children, and it stays mapped")
    func hiddenSent() {
        let configuration = FolderMapConfiguration(showSentFolder: false)
        let map = FolderMap(configuration: configuration, upstreamList: Fixture.germanPlain.list)
        let view = Self.view(map, Fixture.germanPlain.list)
        #expect(view["Sent"] == nil)
        #expect(view["Sent/2025"] == nil)
        #expect(view["Gesendete Elemente"] == nil)
        #expect(view["Trash"] != nil)
        #expect(map.serverName(forClient: "Sent") == "Gesendete Elemente")
        #expect(map.synthesizedListItems(reference: wire(""), pattern: wire("*"), listed: []).map(\.name) == [
            wire("Trash"), wire("Junk"),
        ])
    }

    @Test("Dovecot identity names: only the attributes matter")
    func identity() {
        let fixture = Fixture.dovecotIdentity
        let view = Self.view(fixture.map, fixture.list)
        #expect(view["Sent"] == [.hasChildren, .sent])
        #expect(view["Sent/2025"] != nil)
        #expect(view.count == fixture.list.count)
    }

    @Test("LIST (SPECIAL-USE) keeps only special-use folders")
    func specialUseOnly() {
        let map = Fixture.germanPlain.map
        let names = Fixture.germanPlain.list.compactMap {
            map.clientListItem($0, reference: wire(""), pattern: wire("*"), specialUseOnly: true)?.name
        }
        #expect(names == [wire("Trash"), wire("Sent"), wire("Junk")])
    }

    @Test("the delimiter reply to LIST \"\" \"\" passes")
    func delimiterQuery() {
        let map = Fixture.englishPlain.map
        let line = MailboxInfo(attributes: [.noSelect], path: MailboxPath(name: wire(""), pathSeparator: UInt8(ascii: "/")))
        #expect(map.clientListItem(line, reference: wire(""), pattern: wire("")) == line)
        #expect(map.synthesizedListItems(reference: wire(""), pattern: wire(""), listed: []).isEmpty)
    }

    /// Runs one client LIST the way the gateway does against a simulated server holding `list`: upstream `"" "*"`
    /// for a pattern with wildcards, else the mapped name; the server's own pattern match, the rewrite of each
    /// line, then the synthesised lines.
    static func proxiedList(_ map: FolderMap, _ list: [MailboxInfo], reference: String, pattern: String) -> Set<String> {
        let joined = wire(reference + pattern)
        let delimiter = list.first?.path.pathSeparator
        let upstreamPattern = MailboxPattern(reference: wire(""), mailbox: joined, delimiter: delimiter).hasWildcards
            ? wire("*") : map.serverName(forClient: joined)
        let serverPattern = MailboxPattern(reference: wire(""), mailbox: upstreamPattern, delimiter: delimiter)
        var sent: [MailboxName] = []
        for line in list where serverPattern.matches(line.name) {
            if let item = map.clientListItem(line, reference: wire(reference), pattern: wire(pattern)) {
                sent.append(item.name)
            }
        }
        sent += map.synthesizedListItems(reference: wire(reference), pattern: wire(pattern), listed: Set(sent)).map(\.name)
        #expect(Set(sent).count == sent.count, "a name listed twice for \(reference) \(pattern)")
        return Set(sent.map { (try? $0.decodedName) ?? $0.description })
    }

    static let patterns: [(String, String)] = [
        ("", "*"), ("", "%"), ("", "S*"), ("", "S%"), ("", "Sent"), ("", "Sent/*"), ("", "Sent/%"), ("", "%/%"),
        ("", "*/2025"), ("", "T*"), ("", "J%"), ("", "G*"), ("", "Gel*"), ("", "Junk*"), ("", "INBOX*"),
        ("", "inbox"), ("", "Trash/%"), ("Sent/", "%"), ("", "*e*"), ("", "%t"), ("", "Sent.*"), ("", "INBOX.%"),
        ("", "Ü*"), ("", "&ANw-*"), ("", "D%"), ("", "*Items*"),
    ]

    @Test(
        "every pattern lists exactly the client-side names it matches, whatever the server calls them",
        arguments: Fixture.allCases)
    func completeAndSound(fixture: Fixture) {
        let map = fixture.map
        let delimiter = fixture.list.first?.path.pathSeparator
        // The client's whole view, and the mapped names even when the server's list lacked them.
        var everything = Set(Self.view(map, fixture.list).keys)
        for mapping in map.mappings { everything.insert((try? mapping.clientName.decodedName) ?? "") }
        for (reference, pattern) in Self.patterns {
            let matcher = MailboxPattern(reference: wire(reference), mailbox: wire(pattern), delimiter: delimiter)
            let expected = everything.filter { matcher.matches(MailboxName(decoded: $0)) }
            #expect(
                Self.proxiedList(map, fixture.list, reference: reference, pattern: pattern) == expected,
                "\(fixture) LIST \"\(reference)\" \"\(pattern)\"")
        }
    }

    @Test("spot checks of proxied LIST")
    func spotChecks() {
        let german = Fixture.germanPlain
        #expect(Self.proxiedList(german.map, german.list, reference: "", pattern: "S%") == ["Sent"])
        #expect(Self.proxiedList(german.map, german.list, reference: "", pattern: "G*") == [])
        #expect(Self.proxiedList(german.map, german.list, reference: "", pattern: "Sent/*") == ["Sent/2025"])
        #expect(Self.proxiedList(german.map, german.list, reference: "", pattern: "%") == [
            "INBOX", "Archiv", "Entwürfe", "Trash", "Sent", "Junk", "Postausgang", "Übersicht",
        ])
        let dot = Fixture.dovecotInboxDot
        #expect(Self.proxiedList(dot.map, dot.list, reference: "", pattern: "%") == ["INBOX", "Sent", "Trash", "Junk"])
        #expect(Self.proxiedList(dot.map, dot.list, reference: "", pattern: "INBOX.%") == ["INBOX.Work"])
        #expect(Self.proxiedList(dot.map, dot.list, reference: "", pattern: "Sent.*") == ["Sent.2025"])
    }

    @Test("a synthesised line reuses the server's attributes, else only the role's")
    func synthesisedAttributes() throws {
        let map = Fixture.germanPlain.map
        let lines = map.synthesizedListItems(reference: wire(""), pattern: wire("%"), listed: [wire("Junk")])
        #expect(lines.map(\.name) == [wire("Sent"), wire("Trash")])
        #expect(lines.first?.attributes == [.hasChildren, .sent])
        let configured = FolderMap(
            configuration: FolderMapConfiguration(trashFolder: "Papierkorb"), upstreamList: Fixture.germanPlain.list)
        let trash = try #require(
            configured.synthesizedListItems(reference: wire(""), pattern: wire("Trash"), listed: []).first)
        #expect(trash.attributes == [.trash])
        #expect(trash.path.pathSeparator == UInt8(ascii: "/"))
    }
}
