// ConfigTests: the client-side IMAP folder names imap_sent_name, imap_trash_name, imap_spam_name.
import Config
import Testing

@Suite("IMAP client folder names")
struct IMAPFolderNameTests {
    @Test("defaults are Sent, Trash and Junk")
    func defaults() throws {
        let server = try #require(try parse(minimalOAuth + minimalServer).servers["m365"])
        #expect(server.imapSentName == "Sent")
        #expect(server.imapTrashName == "Trash")
        #expect(server.imapSpamName == "Junk")
    }

    @Test("configured names are loaded, non-ASCII included")
    func configured() throws {
        let text = minimalOAuth + minimalServer
            + "imap_sent_name = \"Gesendet\"\nimap_trash_name = \"Gelöscht\"\nimap_spam_name = \"Spam\"\n"
        let server = try #require(try parse(text).servers["m365"])
        #expect(server.imapSentName == "Gesendet")
        #expect(server.imapTrashName == "Gelöscht")
        #expect(server.imapSpamName == "Spam")
    }

    @Test("INBOX, an empty name and a name used twice are refused with the key named", arguments: [
        ("imap_sent_name = \"inbox\"\n", "imap_sent_name", "INBOX"),
        ("imap_trash_name = \"\"\n", "imap_trash_name", "empty"),
        ("imap_spam_name = \"Trash\"\n", "imap_spam_name", "already uses"),
    ])
    func refused(line: String, key: String, phrase: String) throws {
        let error = try #require(failure(minimalOAuth + minimalServer + line))
        #expect(error.key == "server.m365.\(key)" || error.description.contains(key))
        #expect(error.description.contains(phrase))
    }
}
