// GatewayTests/Journal: the pieces of `journal verify --against-server` that need no server: reading the
// Message-ID out of a FETCH, normalizing it, and which folders count as Sent's children.
import IMAP
import Testing

@testable import Gateway

@Suite("Sent-folder audit: parsing")
struct SentFolderAuditTests {
    static func raw(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("the Message-ID in a header-fields literal, in any case, folded or not")
    func messageIDFromFetch() {
        let plain = "UID 7 BODY[HEADER.FIELDS (MESSAGE-ID)] {30}\r\nMessage-ID: <a.1@contoso.test>\r\n\r\n"
        #expect(SentFolderAudit.messageID(inFetched: Self.raw(plain)) == "<a.1@contoso.test>")
        let lower = "UID 8 BODY[HEADER.FIELDS (\"MESSAGE-ID\")] {28}\r\nmessage-id:<b@contoso.test>\r\n\r\n"
        #expect(SentFolderAudit.messageID(inFetched: Self.raw(lower)) == "<b@contoso.test>")
        let folded = "BODY[HEADER.FIELDS (MESSAGE-ID)] {40}\r\nMessage-Id:\r\n <folded.one@contoso.test>\r\n\r\n UID 9"
        #expect(SentFolderAudit.messageID(inFetched: Self.raw(folded)) == "<folded.one@contoso.test>")
        #expect(SentFolderAudit.messageID(inFetched: Self.raw("UID 10 BODY[HEADER.FIELDS (MESSAGE-ID)] {2}\r\n\r\n")) == nil)
        // A field whose name merely ends in message-id is not the Message-ID.
        let other = "BODY[HEADER.FIELDS (MESSAGE-ID)] {40}\r\nX-Original-Message-ID: <x@contoso.test>\r\n\r\n"
        #expect(SentFolderAudit.messageID(inFetched: Self.raw(other)) == nil)
    }

    @Test("Message-IDs compare by their <…> part, blanks and comments around it ignored")
    func normalization() {
        #expect(SentFolderAudit.normalized("  <a@b> ") == "<a@b>")
        #expect(SentFolderAudit.normalized("<a@b> (comment)") == "<a@b>")
        #expect(SentFolderAudit.normalized("bare@id") == "bare@id")
    }

    @Test("the Sent folder's children by the server's delimiter, not look-alike names or \\Noselect ones")
    func children() {
        func list(_ name: String, _ attributes: [MailboxAttribute] = []) -> UntaggedResponse {
            .list(MailboxInfo(attributes: attributes, path: MailboxPath(name: MailboxName(decoded: name), pathSeparator: UInt8(ascii: "/"))))
        }
        let sent = MailboxName(decoded: "Sent Items")
        let listed = [
            list("INBOX"), list("Sent Items", [.sent]), list("Sent Items/2026"), list("Sent Items/2026/Q4"),
            list("Sent Items Old"), list("Sent Items/Hidden", [.noSelect]), list("Archive/Sent Items/x"),
        ]
        let folders = SentFolderAudit.folderAndChildren(sent, in: listed).map { try? $0.decodedName }
        #expect(folders == ["Sent Items", "Sent Items/2026", "Sent Items/2026/Q4"])
    }
}
