import Testing
@testable import IMAP

@Suite struct SpecialFolderFinderTests {
    static func list(_ lines: String) throws -> [UntaggedResponse] {
        var decoder = IMAPResponseDecoder()
        decoder.append(Array(lines.utf8))
        var responses: [UntaggedResponse] = []
        while let response = try decoder.next() {
            if case .untagged(let untagged) = response { responses.append(untagged) }
        }
        return responses
    }

    static let english = """
        * LIST (\\HasChildren) "/" INBOX\r
        * LIST (\\HasNoChildren \\Drafts) "/" Drafts\r
        * LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r
        * LIST (\\HasNoChildren \\Trash) "/" "Deleted Items"\r
        * LIST (\\HasNoChildren \\Junk) "/" "Junk Email"\r
        * LIST (\\HasNoChildren \\Archive) "/" Archive\r
        * LIST (\\HasNoChildren) "/" Outbox\r

        """

    /// German names, as Exchange lists them when the SPECIAL-USE attributes are missing.
    static let germanWithoutAttributes = """
        * LIST (\\HasChildren) "/" INBOX\r
        * LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r
        * LIST (\\HasNoChildren) "/" "Gesendete Elemente"\r
        * LIST (\\HasNoChildren) "/" "Gel&APY-schte Elemente"\r
        * LIST (\\HasNoChildren) "/" Junk-E-Mail\r
        * LIST (\\HasNoChildren) "/" Archiv\r

        """

    @Test func findsEnglishFoldersByAttribute() throws {
        let responses = try Self.list(Self.english)
        #expect(SentFolderFinder.find(in: responses, configured: nil) == MailboxName(Array("Sent Items".utf8)))
        #expect(SpecialFolderFinder.find(.trash, in: responses) == MailboxName(Array("Deleted Items".utf8)))
        #expect(SpecialFolderFinder.find(.junk, in: responses) == MailboxName(Array("Junk Email".utf8)))
        #expect(SpecialFolderFinder.find(.drafts, in: responses) == MailboxName(Array("Drafts".utf8)))
        #expect(SpecialFolderFinder.find(.archive, in: responses) == MailboxName(Array("Archive".utf8)))
    }

    @Test func findsGermanFoldersByDecodedName() throws {
        let responses = try Self.list(Self.germanWithoutAttributes)
        #expect(SentFolderFinder.find(in: responses, configured: nil) == MailboxName(Array("Gesendete Elemente".utf8)))
        #expect(SpecialFolderFinder.find(.trash, in: responses) == MailboxName(Array("Gel&APY-schte Elemente".utf8)))
        #expect(SpecialFolderFinder.find(.junk, in: responses) == MailboxName(Array("Junk-E-Mail".utf8)))
        #expect(SpecialFolderFinder.find(.drafts, in: responses) == MailboxName(Array("Entw&APw-rfe".utf8)))
        #expect(SpecialFolderFinder.find(.archive, in: responses) == MailboxName(Array("Archiv".utf8)))
    }

    @Test func configuredNameWinsAndKeepsTheServerSpelling() throws {
        let responses = try Self.list(Self.germanWithoutAttributes)
        #expect(SentFolderFinder.find(in: responses, configured: "gelöschte elemente") == MailboxName(Array("Gel&APY-schte Elemente".utf8)))
        #expect(SentFolderFinder.find(in: responses, configured: "Mein Gesendet") == MailboxName(decoded: "Mein Gesendet"))
        #expect(SentFolderFinder.find(in: try Self.list(Self.english), configured: "Outbox") == MailboxName(Array("Outbox".utf8)))
    }

    @Test func attributeBeatsNamesAndNoselectIsSkipped() throws {
        let responses = try Self.list("""
            * LIST (\\Noselect \\Sent) "/" Gone\r
            * LIST (\\HasNoChildren) "/" Sent\r
            * LIST (\\HasNoChildren \\Sent) "/" Versandt\r

            """)
        #expect(SentFolderFinder.find(in: responses, configured: nil) == MailboxName(Array("Versandt".utf8)))
    }

    @Test func nothingFoundIsNil() throws {
        let responses = try Self.list("* LIST (\\HasNoChildren) \"/\" INBOX\r\n")
        #expect(SentFolderFinder.find(in: responses, configured: nil) == nil)
        for use in SpecialUse.allCases { #expect(SpecialFolderFinder.find(use, in: responses) == nil) }
    }

    @Test func caseInsensitiveKnownNames() throws {
        let responses = try Self.list("* LIST () \"/\" \"SENT ITEMS\"\r\n* LIST () \"/\" papierkorb\r\n")
        #expect(SentFolderFinder.find(in: responses, configured: nil) == MailboxName(Array("SENT ITEMS".utf8)))
        #expect(SpecialFolderFinder.find(.trash, in: responses) == MailboxName(Array("papierkorb".utf8)))
    }
}
