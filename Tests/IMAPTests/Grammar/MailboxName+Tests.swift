import Testing
@testable import IMAP

@Suite struct MailboxNameTests {
    @Test func inboxIsCaseInsensitive() {
        #expect(MailboxName(Array("inbox".utf8)) == .inbox)
        #expect(MailboxName(Array("InBoX".utf8)).isInbox)
        #expect(Set([MailboxName(Array("inbox".utf8)), MailboxName.inbox]).count == 1)
        #expect(MailboxName(Array("Sent".utf8)) != MailboxName(Array("sent".utf8)))
        #expect(!MailboxName(Array("INBOX2".utf8)).isInbox)
    }

    @Test func decodedNameUsesModifiedUTF7() throws {
        let name = MailboxName(Array("Gel&APY-schte Elemente".utf8))
        #expect(try name.decodedName == "Gelöschte Elemente")
        #expect(MailboxName(decoded: "Entwürfe").bytes == Array("Entw&APw-rfe".utf8))
        #expect(throws: IMAPError.self) { try MailboxName(Array("Bad&".utf8)).decodedName }
    }

    @Test func pathSplitsAndJoins() throws {
        let path = MailboxPath(components: ["Posteingang", "Gelöschte"], pathSeparator: UInt8(ascii: "/"))
        #expect(path.name.bytes == Array("Posteingang/Gel&APY-schte".utf8))
        #expect(try path.decodedComponents() == ["Posteingang", "Gelöschte"])
        let flat = MailboxPath(name: MailboxName(Array("a/b".utf8)), pathSeparator: nil)
        #expect(try flat.decodedComponents() == ["a/b"])
    }

    @Test(arguments: ["INBOX", "Sent Items", "Gel&APY-schte Elemente", "", "quote\"back\\slash", "a]b", "50%*", "tab\tname", "ü raw"])
    func writtenMailboxParsesBack(text: String) throws {
        var writer = IMAPCommandWriter()
        writer.writeMailbox(MailboxName(Array(text.utf8)))
        writer.write("\r\n")
        var bytes: [UInt8] = []
        for case .bytes(let chunk) in writer.finish() { bytes += chunk }
        var buffer = ParseBuffer(bytes, limits: .standard)
        #expect(try buffer.parseAstring() == Array(text.utf8))
        try buffer.expectCRLF()
        #expect(buffer.isAtEnd)
    }
}
