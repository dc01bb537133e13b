import Testing
@testable import IMAP

/// Exchange-shaped server responses and what they must parse to.
enum ResponseFixtures {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let parsed: [(String, IMAPResponse)] = [
        (
            "* OK The Microsoft Exchange IMAP4 service is ready. [TQBOADIA]\r\n",
            .untagged(.ok(ResponseText(text: "The Microsoft Exchange IMAP4 service is ready. [TQBOADIA]")))
        ),
        (
            "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+\r\n",
            .untagged(.capability(
                ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT",
                 "CHILDREN", "IDLE", "NAMESPACE", "LITERAL+"].map(Capability.init)))
        ),
        (
            "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+\r\n",
            .untagged(.capability(
                ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT",
                 "CLIENTACCESSRULES", "CLIENTNETWORKPRESENCELOCATION", "BACKENDAUTHENTICATE", "CHILDREN", "IDLE",
                 "NAMESPACE", "LITERAL+"].map(Capability.init)))
        ),
        ("A0001 OK CAPABILITY completed.\r\n", .tagged(TaggedResponse(tag: "A0001", status: .ok, text: "CAPABILITY completed."))),
        ("A0002 OK AUTHENTICATE completed.\r\n", .tagged(TaggedResponse(tag: "A0002", status: .ok, text: "AUTHENTICATE completed."))),
        ("A0002 NO AUTHENTICATE failed.\r\n", .tagged(TaggedResponse(tag: "A0002", status: .no, text: "AUTHENTICATE failed."))),
        (
            "A0003 BAD User is authenticated but not connected.\r\n",
            .tagged(TaggedResponse(tag: "A0003", status: .bad, text: "User is authenticated but not connected."))
        ),
        (
            "* BYE Session invalidated - AccessTokenExpired\r\n",
            .untagged(.bye(ResponseText(text: "Session invalidated - AccessTokenExpired")))
        ),
        ("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n", .continuation("eyJzdGF0dXMiOiI0MDEifQ==")),
        ("+ IDLE accepted, awaiting DONE command.\r\n", .continuation("IDLE accepted, awaiting DONE command.")),
        ("+\r\n", .continuation("")),
        ("+ \r\n", .continuation("")),
        (
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren, .sent], path: MailboxPath(name: MailboxName(bytes("Sent Items")), pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Gel&APY-schte Elemente\"\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren, .trash], path: MailboxPath(name: MailboxName(bytes("Gel&APY-schte Elemente")), pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk-E-Mail\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren, .junk], path: MailboxPath(name: MailboxName(bytes("Junk-E-Mail")), pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren], path: MailboxPath(name: MailboxName(bytes("Entw&APw-rfe")), pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\HasNoChildren) \"/\" {18}\r\nGesendete Elemente\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren], path: MailboxPath(name: MailboxName(bytes("Gesendete Elemente")), pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\HasNoChildren) \"/\" INBOX (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
            .untagged(.list(MailboxInfo(attributes: [.hasNoChildren], path: MailboxPath(name: .inbox, pathSeparator: 0x2F))))
        ),
        (
            "* LIST (\\Noselect) NIL \"\"\r\n",
            .untagged(.list(MailboxInfo(attributes: [.noSelect], path: MailboxPath(name: MailboxName([]), pathSeparator: nil))))
        ),
        (
            "* LIST () \"\\\\\" \"a\\\"b\"\r\n",
            .untagged(.list(MailboxInfo(attributes: [], path: MailboxPath(name: MailboxName(bytes("a\"b")), pathSeparator: 0x5C))))
        ),
        ("* 3 EXISTS\r\n", .untagged(.exists(3))),
        ("* 0 RECENT\r\n", .untagged(.recent(0))),
        ("* 5 EXPUNGE\r\n", .untagged(.expunge(5))),
        (
            "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)\r\n",
            .untagged(.flags([.seen, .answered, .flagged, .deleted, .draft, Flag("$MDNSent")]))
        ),
        (
            "* OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] Permanent flags\r\n",
            .untagged(.ok(ResponseText(code: .permanentFlags([.seen, .deleted, .wildcard]), text: "Permanent flags")))
        ),
        ("* OK [UIDVALIDITY 14] UIDVALIDITY value\r\n", .untagged(.ok(ResponseText(code: .uidValidity(14), text: "UIDVALIDITY value")))),
        ("* OK [UIDNEXT 4213] The next unique identifier value\r\n", .untagged(.ok(ResponseText(code: .uidNext(4213), text: "The next unique identifier value")))),
        ("* OK [UNSEEN 1] Is the first unseen message\r\n", .untagged(.ok(ResponseText(code: .unseen(1), text: "Is the first unseen message")))),
        ("A0004 OK [READ-WRITE] SELECT completed.\r\n", .tagged(TaggedResponse(tag: "A0004", status: .ok, code: .readWrite, text: "SELECT completed."))),
        ("A0004 NO [TRYCREATE] Mailbox doesn't exist\r\n", .tagged(TaggedResponse(tag: "A0004", status: .no, code: .tryCreate, text: "Mailbox doesn't exist"))),
        ("A0009 NO [CANNOT] Sent mail is locked.\r\n", .tagged(TaggedResponse(tag: "A0009", status: .no, code: .cannot, text: "Sent mail is locked."))),
        ("* OK [ALERT] Mailbox almost full\r\n", .untagged(.ok(ResponseText(code: .alert, text: "Mailbox almost full")))),
        ("A0006 OK [APPENDUID 14 4213] APPEND completed.\r\n", .tagged(TaggedResponse(tag: "A0006", status: .ok, code: .appendUID(uidValidity: 14, uid: 4213), text: "APPEND completed."))),
        ("A0007 OK [COPYUID 14 1:3,7 100:103] MOVE completed.\r\n", .tagged(TaggedResponse(tag: "A0007", status: .ok, code: .copyUID(uidValidity: 14, sourceUIDs: "1:3,7", destinationUIDs: "100:103"), text: "MOVE completed."))),
        ("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n", .untagged(.ok(ResponseText(code: .other(name: "HIGHESTMODSEQ", text: "715194045007"), text: "Highest")))),
        ("* OK [UIDNEXT x] lenient\r\n", .untagged(.ok(ResponseText(code: .other(name: "UIDNEXT", text: "x"), text: "lenient")))),
        ("* NO [BADCHARSET (UTF-8 US-ASCII)] charset\r\n", .untagged(.no(ResponseText(code: .badCharset(["UTF-8", "US-ASCII"]), text: "charset")))),
        (
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+] ready\r\n",
            .untagged(.ok(ResponseText(code: .capability([.imap4rev1, .saslIR, .literalPlus]), text: "ready")))
        ),
        ("* OK [READ-ONLY]\r\n", .untagged(.ok(ResponseText(code: .readOnly, text: "")))),
        ("* PREAUTH welcome back\r\n", .untagged(.preauth(ResponseText(text: "welcome back")))),
        ("* SEARCH 4212\r\n", .untagged(.search([4212]))),
        ("* SEARCH 2 84 882\r\n", .untagged(.search([2, 84, 882]))),
        ("* SEARCH\r\n", .untagged(.search([]))),
        ("* SEARCH \r\n", .untagged(.search([]))),
        (
            "* 12 FETCH (UID 4212 RFC822.SIZE 2048 FLAGS (\\Seen))\r\n",
            .untagged(.fetch(FetchResponse(sequenceNumber: 12, uid: 4212, rfc822Size: 2048, rawAttributes: bytes("UID 4212 RFC822.SIZE 2048 FLAGS (\\Seen)"))))
        ),
        (
            "* 1 FETCH (UID 7 BODY[] {12}\r\nhi)\r\n{3}\r\nxx RFC822.SIZE 9)\r\n",
            .untagged(.fetch(FetchResponse(sequenceNumber: 1, uid: 7, rfc822Size: 9, rawAttributes: bytes("UID 7 BODY[] {12}\r\nhi)\r\n{3}\r\nxx RFC822.SIZE 9"))))
        ),
        (
            "* 2 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID \"X-A]\")] {9}\r\nA: b\r\n\r\n UID 10)\r\n",
            .untagged(.fetch(FetchResponse(sequenceNumber: 2, uid: 10, rawAttributes: bytes("BODY[HEADER.FIELDS (MESSAGE-ID \"X-A]\")] {9}\r\nA: b\r\n\r\n UID 10"))))
        ),
        ("* ID (\"name\" \"Exchange\")\r\n", .untagged(.other(name: "ID", raw: bytes(" (\"name\" \"Exchange\")")))),
        ("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", .untagged(.other(name: "NAMESPACE", raw: bytes(" ((\"\" \"/\")) NIL NIL")))),
        ("* STATUS {5}\r\nINBOX (MESSAGES 3)\r\n", .untagged(.other(name: "STATUS", raw: bytes(" {5}\r\nINBOX (MESSAGES 3)")))),
        ("* 4 XFOO bar\r\n", .untagged(.other(name: "XFOO", raw: bytes("4  bar")))),
        ("a.b-c OK done\n", .tagged(TaggedResponse(tag: "a.b-c", status: .ok, text: "done"))),
        ("A0005 ok\r\n", .tagged(TaggedResponse(tag: "A0005", status: .ok, text: ""))),
    ]

    static let malformed: [String] = [
        "\r\n",
        "A0001 MAYBE text\r\n",
        "A0001\r\n",
        "* 3 EXISTS extra\r\n",
        "* LIST (\\HasNoChildren) \"//\" INBOX\r\n",
        "* LIST (\\HasNoChildren) \"/\"\r\n",
        "* LIST \\HasNoChildren \"/\" INBOX\r\n",
        "* SEARCH 0\r\n",
        "* SEARCH 1 x\r\n",
        "* FLAGS \\Seen\r\n",
        "* 1 FETCH UID 1\r\n",
        "* 1 FETCH (UID 1\r\n)\r\n",
        "* OK [ALERT no closing bracket\r\n",
        "* CAPABILITY\r\n",
        "+x\r\n",
        "* LIST () \"/\" \"bad\rname\"\r\n",
    ]
}

@Suite struct ResponseParserTests {
    let parser = IMAPResponseParser()

    @Test(arguments: ResponseFixtures.parsed)
    func parsesFixture(text: String, expected: IMAPResponse) throws {
        let bytes = Array(text.utf8)
        let result = try #require(try parser.parseResponse(bytes))
        #expect(result.response == expected)
        #expect(result.consumedCount == bytes.count)
    }

    @Test(arguments: ResponseFixtures.parsed)
    func everyProperPrefixIsIncomplete(text: String, expected: IMAPResponse) throws {
        let bytes = Array(text.utf8)
        for length in 0..<bytes.count {
            #expect(try parser.parseResponse(Array(bytes.prefix(length))) == nil, "prefix \(length) of \(text)")
        }
    }

    @Test(arguments: ResponseFixtures.parsed)
    func parsesFollowedByNextResponse(text: String, expected: IMAPResponse) throws {
        let bytes = Array(text.utf8) + Array("A1 OK x\r\n".utf8)
        let result = try #require(try parser.parseResponse(bytes))
        #expect(result.response == expected)
        #expect(result.consumedCount == text.utf8.count)
    }

    @Test(arguments: ResponseFixtures.malformed)
    func rejectsMalformed(text: String) {
        #expect(throws: IMAPError.self) { try parser.parseResponse(Array(text.utf8)) }
    }

    @Test func numbersThatOverflowAreTypedErrors() {
        #expect(throws: IMAPError.numberTooLarge(digits: "99999999999", maximumValue: UInt64(UInt32.max))) {
            try parser.parseResponse(Array("* SEARCH 99999999999\r\n".utf8))
        }
        #expect(throws: IMAPError.numberTooLarge(digits: "4294967296", maximumValue: UInt64(UInt32.max))) {
            try parser.parseResponse(Array("* 1 FETCH (UID 4294967296)\r\n".utf8))
        }
        #expect(throws: IMAPError.numberTooLarge(digits: "99999999999999999999", maximumValue: UInt64(Int.max))) {
            try parser.parseResponse(Array("* LIST () \"/\" {99999999999999999999}\r\n".utf8))
        }
    }

    @Test func deepNestingIsRejected() {
        let deep = "* 1 FETCH (BODYSTRUCTURE " + String(repeating: "(", count: 101) + String(repeating: ")", count: 101) + ")\r\n"
        #expect(throws: IMAPError.tooMuchNesting(limit: 100)) { try parser.parseResponse(Array(deep.utf8)) }
        let fine = "* 1 FETCH (BODYSTRUCTURE " + String(repeating: "(", count: 98) + String(repeating: ")", count: 98) + ")\r\n"
        #expect(throws: Never.self) { try parser.parseResponse(Array(fine.utf8)) }
    }

    @Test func literalOverTheLimitIsRejectedBeforeItArrives() {
        var limits = IMAPLimits()
        limits.responseLiteral = 10
        let parser = IMAPResponseParser(limits: limits)
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 11, maximumCount: 10)) {
            try parser.parseResponse(Array("* LIST () \"/\" {11}\r\n".utf8))
        }
    }

    @Test func exchangeConditionsAreRecognised() {
        #expect(ResponseText(text: "Session invalidated - AccessTokenExpired").exchangeCondition == .accessTokenExpired)
        #expect(ResponseText(text: "User is authenticated but not connected.").exchangeCondition == .authenticatedButNotConnected)
        #expect(ResponseText(text: "LOGOUT completed.").exchangeCondition == nil)
    }
}
