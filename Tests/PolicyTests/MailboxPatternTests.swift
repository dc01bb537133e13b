// Tests for Policy.MailboxPattern: `*` and `%` (RFC 3501 §6.3.8), INBOX in any case, decoded comparison.

import IMAP
import Policy
import Testing

@Suite("MailboxPattern")
struct MailboxPatternTests {
    /// (pattern, name, delimiter, matches)
    static let cases: [(String, String, Character?, Bool)] = [
        ("*", "INBOX", "/", true), ("*", "Sent/2025/Q1", "/", true), ("*", "", "/", true),
        ("%", "Sent", "/", true), ("%", "Sent/2025", "/", false), ("%", "", "/", true),
        ("Sent/%", "Sent/2025", "/", true), ("Sent/%", "Sent/2025/Q1", "/", false), ("Sent/*", "Sent/2025/Q1", "/", true),
        ("Sent/*", "Sent", "/", false), ("Sent*", "Sent", "/", true), ("Sent*", "Sentinel", "/", true),
        ("Sent*", "Sent/2025", "/", true), ("Sent%", "Sent/2025", "/", false), ("%/%", "Sent/2025", "/", true),
        ("%/%", "Sent/2025/Q1", "/", false), ("*/2025", "Sent/2025", "/", true), ("*/2025", "Sent/2025/x", "/", false),
        ("S%t", "Sent", "/", true), ("S%t", "Sen/t", "/", false), ("S*t", "Sen/t", "/", true),
        ("Sent", "Sent", "/", true), ("Sent", "sent", "/", false), ("Sent", "Sent ", "/", false),
        ("inbox", "INBOX", "/", true), ("INBOX", "inbox", "/", true), ("InBox/*", "INBOX/a", "/", true),
        ("inbox*", "INBOX", "/", true), ("inbox*", "INBOXES", "/", true),  // a leading "inbox" before a wildcard reads as INBOX
        ("inboxes", "INBOXES", "/", false),
        ("INBOX.%", "inbox.Work", ".", true), ("INBOX.%", "INBOX.Work.Sub", ".", false), ("%", "a/b", ".", true),
        ("%", "a.b", ".", false), ("%", "a.b", nil, true), ("*", "Gel&APY-schte Elemente", "/", true),
        ("Gel&APY-*", "Gel&APY-schte Elemente", "/", true), ("Gel%", "Gel&APY-schte Elemente", "/", true),
        ("Gel&APY-schte Elemente", "Gel&APY-schte Elemente", "/", true), ("G*e", "Gel&APY-schte Elemente", "/", true),
        ("*&APY-*", "Gel&APY-schte Elemente", "/", true), ("*&APw-*", "Gel&APY-schte Elemente", "/", false),
        ("%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%x", String(repeating: "a", count: 500), "/", false),
        ("*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%b", String(repeating: "a", count: 500), "/", false),
        ("&&-*", "&-x", "/", false), ("&-*", "&-x", "/", true),
    ]

    @Test("matches", arguments: cases)
    func matches(pattern: String, name: String, delimiter: Character?, expected: Bool) {
        let matcher = MailboxPattern(Array(pattern.utf8), delimiter: delimiter?.asciiValue)
        #expect(matcher.matches(wire(name)) == expected)
    }

    /// (pattern, prefix, can a longer name match)
    static let extensions: [(String, String, Bool)] = [
        ("*", "Sent/", true), ("%", "Sent/", false), ("S*", "Sent/", true), ("S%", "Sent/", false),
        ("%/%", "Sent/", true), ("Sent/%", "Sent/", true), ("T*", "Sent/", false), ("*/2025", "Sent/", true),
        ("Se", "Sent/", false), ("Sent", "Sent/", false), ("INBOX*", "Sent/", false),
    ]

    @Test("can match an extension", arguments: extensions)
    func canMatchExtension(pattern: String, prefix: String, expected: Bool) {
        let matcher = MailboxPattern(Array(pattern.utf8), delimiter: UInt8(ascii: "/"))
        #expect(matcher.canMatchExtension(of: wire(prefix)) == expected)
    }

    @Test("reference and mailbox join", arguments: [
        ("", "*", "*"), ("Sent/", "%", "Sent/%"), ("Sent", "/%", "Sent/%"), ("Sent/", "/%", "Sent/%"), ("", "", ""),
    ])
    func join(reference: String, mailbox: String, joined: String) {
        let pattern = MailboxPattern(reference: wire(reference), mailbox: wire(mailbox), delimiter: UInt8(ascii: "/"))
        #expect(pattern.bytes == Array(joined.utf8))
        #expect(pattern.hasWildcards == (joined.contains("*") || joined.contains("%")))
    }
}
