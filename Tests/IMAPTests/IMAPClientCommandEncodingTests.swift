import Testing

@testable import IMAP

@Suite struct IMAPClientCommandEncodingTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The one command `input` frames to (literals accepted).
    static func command(_ input: String) throws -> IMAPClientCommand {
        var driver = FramerDriver()
        try driver.feed(bytes(input), chunkSize: 1000)
        return try #require(driver.commands.first)
    }

    static func flat(_ segments: [IMAPCommandSegment]) -> String {
        segments.map { segment in
            switch segment {
            case .bytes(let bytes): String(decoding: bytes, as: UTF8.self)
            case .waitForContinuation: "<wait>"
            }
        }.joined()
    }

    @Test func untouchedCommandIsTheClientsBytes() throws {
        let command = try Self.command("a1  SELECT   inbox\r\n")
        #expect(command.encodedForUpstream(literalPlus: false) == [.bytes(Self.bytes("a1  SELECT   inbox\r\n"))])
    }

    @Test func mailboxReplacedByAtomQuotedOrLiteral() throws {
        let command = try Self.command("a1 SELECT Sent\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(replacing: [0: .astring(Self.bytes("Sent"))], literalPlus: false))
                == "a1 SELECT Sent\r\n")
        #expect(
            Self.flat(
                command.encodedForUpstream(replacing: [0: .astring(Self.bytes("Sent Items"))], literalPlus: false))
                == "a1 SELECT \"Sent Items\"\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(replacing: [0: .astring(Self.bytes("a\"b\\c"))], literalPlus: false))
                == "a1 SELECT \"a\\\"b\\\\c\"\r\n")
        let utf8 = Self.bytes("Gelöscht")
        #expect(
            Self.flat(command.encodedForUpstream(replacing: [0: .astring(utf8)], literalPlus: true))
                == "a1 SELECT {9+}\r\nGelöscht\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(replacing: [0: .astring(utf8)], literalPlus: false))
                == "a1 SELECT {9}\r\n<wait>Gelöscht\r\n")
        #expect(
            Self.flat(
                command.encodedForUpstream(replacing: [0: .astring(utf8)], literalPlus: false, literalMinus: true))
                == "a1 SELECT {9+}\r\nGelöscht\r\n")
    }

    @Test func replacingOneArgumentKeepsTheOthers() throws {
        let command = try Self.command("a1 UID MOVE 1:5,7 \"Trash\"\r\n")
        let index = try #require(command.topLevelStringIndices.last)
        #expect(
            Self.flat(
                command.encodedForUpstream(replacing: [index: .astring(Self.bytes("Deleted Items"))], literalPlus: true)
            )
                == "a1 UID MOVE 1:5,7 \"Deleted Items\"\r\n")
        let rename = try Self.command("a2 RENAME {4+}\r\nSent \"Sent/2025\"\r\n")
        #expect(
            Self.flat(
                rename.encodedForUpstream(
                    replacing: [0: .astring(Self.bytes("Sent Items")), 1: .astring(Self.bytes("Sent Items/2025"))],
                    literalPlus: false))
                == "a2 RENAME \"Sent Items\" \"Sent Items/2025\"\r\n")
    }

    @Test func listPatternKeepsWildcards() throws {
        let command = try Self.command("a1 LIST \"\" \"Sent/*\"\r\n")
        #expect(
            Self.flat(
                command.encodedForUpstream(replacing: [1: .listMailbox(Self.bytes("Sent Items/*"))], literalPlus: true))
                == "a1 LIST \"\" \"Sent Items/*\"\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(replacing: [1: .listMailbox(Self.bytes("Sent%"))], literalPlus: true))
                == "a1 LIST \"\" Sent%\r\n")
    }

    @Test func clientLiteralsAreWrittenInTheUpstreamsForm() throws {
        let command = try Self.command("a1 APPEND Sent (\\Seen) {5}\r\nhello ~{2+}\r\nhi\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(literalPlus: true))
                == "a1 APPEND Sent (\\Seen) {5+}\r\nhello ~{2+}\r\nhi\r\n")
        #expect(
            Self.flat(command.encodedForUpstream(literalPlus: false))
                == "a1 APPEND Sent (\\Seen) {5}\r\n<wait>hello ~{2}\r\n<wait>hi\r\n")
        #expect(command.encodedForUpstream(literalPlus: false).filter { $0 == .waitForContinuation }.count == 2)
    }

    @Test func streamedHeadEndsWithTheAnnouncement() throws {
        var limits = IMAPLimits()
        limits.inlineLiteral = 4
        var driver = FramerDriver(limits: limits)
        try driver.feed(Self.bytes("a1 APPEND Sent {10}\r\n0123456789\r\n"), chunkSize: 100)
        guard case .streamBegin(let head)? = driver.events.dropFirst().first else {
            Issue.record("expected a stream, got \(driver.events)")
            return
        }
        #expect(
            Self.flat(head.encodedForUpstream(replacing: [0: .astring(Self.bytes("Sent Items"))], literalPlus: true))
                == "a1 APPEND \"Sent Items\" {10+}\r\n")
        #expect(Self.flat(head.encodedForUpstream(literalPlus: false)) == "a1 APPEND Sent {10}\r\n<wait>")
    }

    @Test func rawReplacement() throws {
        let command = try Self.command("a1 CLOSE\r\n")
        #expect(command.arguments.isEmpty)
        let store = try Self.command("a2 STORE 1 +FLAGS (\\Deleted)\r\n")
        #expect(
            Self.flat(store.encodedForUpstream(replacing: [1: .raw(Self.bytes("-FLAGS"))], literalPlus: true))
                == "a2 STORE 1 -FLAGS (\\Deleted)\r\n")
    }
}

@Suite struct IMAPCapabilityFilterTests {
    static func list(_ text: String) -> [Capability] { text.split(separator: " ").map { Capability(String($0)) } }

    @Test func exchangeAfterLogin() {
        let upstream = Self.list(
            "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES "
                + "CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+")
        #expect(
            IMAPCapabilityFilter.wire(IMAPCapabilityFilter.clientCapabilities(fromUpstream: upstream))
                == "IMAP4 IMAP4rev1 UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ SPECIAL-USE")
    }

    @Test func dovecotAfterLogin() {
        let upstream = Self.list(
            "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES MULTIAPPEND URL-PARTIAL "
                + "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH "
                + "ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
                + "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE COMPRESS=DEFLATE STARTTLS LOGINDISABLED UTF8=ACCEPT "
                + "URLAUTH URLAUTH=BINARY auth=xoauth2")
        let client = IMAPCapabilityFilter.clientCapabilities(fromUpstream: upstream)
        for removed in [
            "SASL-IR", "LOGIN-REFERRALS", "COMPRESS=DEFLATE", "STARTTLS", "LOGINDISABLED", "UTF8=ACCEPT",
            "URLAUTH", "URLAUTH=BINARY", "AUTH=XOAUTH2",
        ] {
            #expect(!client.contains(Capability(removed)), "\(removed)")
        }
        #expect(client.filter { $0 == .specialUse }.count == 1)
        #expect(client.contains(.literalPlus) && client.contains(Capability("BINARY")) && client.contains(.move))
        #expect(client.first == .imap4rev1)
    }

    @Test func extraRemovalsAndAdditions() {
        let client = IMAPCapabilityFilter.clientCapabilities(
            fromUpstream: Self.list("IMAP4rev1 IDLE LITERAL- ENABLE"), alsoRemove: [Capability("ENABLE")],
            alsoAdd: [.idle])
        #expect(IMAPCapabilityFilter.wire(client) == "IMAP4rev1 IDLE LITERAL- SPECIAL-USE")
    }
}
