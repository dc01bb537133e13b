// Tests for Policy.SentLock: every lock-after-send rule, the allowed commands included.

import IMAP
import Policy
import Testing

@Suite("SentLock")
struct SentLockTests {
    static let lock = SentLock(folderMap: Fixture.englishPlain.map, enabled: true)
    static let sent = wire("Sent Items")
    static let sentChild = wire("Sent Items/2025")
    static let inbox = wire("INBOX")
    static let trash = wire("Deleted Items")
    static let other = wire("Sentinel")

    /// (label, selected server mailbox, command, expected decision)
    static let rules: [(String, MailboxName?, LockedCommand, LockDecision)] = [
        ("STORE +FLAGS \\Deleted in Sent", sent, .store(uid: false, mode: .add, flags: [.deleted]), .refuse(.markDeleted)),
        ("UID STORE +FLAGS.SILENT (\\Seen \\Deleted)", sent, .store(uid: true, mode: .add, flags: [.seen, Flag("\\DELETED")]), .refuse(.markDeleted)),
        ("STORE FLAGS (\\Deleted) replaces the set", sent, .store(uid: false, mode: .replace, flags: [.deleted]), .refuse(.markDeleted)),
        ("UID STORE FLAGS (\\Seen \\Deleted) in a child", sentChild, .store(uid: true, mode: .replace, flags: [.seen, .deleted]), .refuse(.markDeleted)),
        ("STORE +FLAGS \\Seen", sent, .store(uid: false, mode: .add, flags: [.seen]), .allow),
        ("UID STORE +FLAGS \\Flagged", sent, .store(uid: true, mode: .add, flags: [.flagged]), .allow),
        ("STORE -FLAGS \\Seen", sent, .store(uid: false, mode: .remove, flags: [.seen]), .allow),
        ("STORE +FLAGS keyword", sent, .store(uid: false, mode: .add, flags: [Flag("$Forwarded"), Flag("Work")]), .allow),
        ("STORE FLAGS (\\Seen $Label1) replaces without \\Deleted", sent, .store(uid: false, mode: .replace, flags: [.seen, Flag("$Label1")]), .allow),
        ("STORE FLAGS () clears", sent, .store(uid: false, mode: .replace, flags: []), .allow),
        ("STORE -FLAGS \\Deleted undeletes", sent, .store(uid: false, mode: .remove, flags: [.deleted]), .allow),
        ("STORE +FLAGS \\Deleted in INBOX", inbox, .store(uid: false, mode: .add, flags: [.deleted]), .allow),
        ("STORE +FLAGS \\Deleted in Sentinel", other, .store(uid: false, mode: .add, flags: [.deleted]), .allow),
        ("STORE with nothing selected", nil, .store(uid: false, mode: .add, flags: [.deleted]), .allow),
        ("EXPUNGE in Sent", sent, .expunge, .refuse(.expunge)),
        ("EXPUNGE in a child of Sent", sentChild, .expunge, .refuse(.expunge)),
        ("UID EXPUNGE in Sent", sent, .uidExpunge, .refuse(.expunge)),
        ("EXPUNGE in Trash", trash, .expunge, .allow),
        ("UID EXPUNGE in INBOX", inbox, .uidExpunge, .allow),
        ("MOVE out of Sent to Trash", sent, .move(uid: false, target: trash), .refuse(.moveOut)),
        ("UID MOVE out of Sent to INBOX", sent, .move(uid: true, target: inbox), .refuse(.moveOut)),
        ("UID MOVE out of a child to Sentinel", sentChild, .move(uid: true, target: other), .refuse(.moveOut)),
        ("UID MOVE from Sent into its child", sent, .move(uid: true, target: sentChild), .allow),
        ("MOVE from a child back into Sent", sentChild, .move(uid: false, target: sent), .allow),
        ("MOVE from INBOX into Sent", inbox, .move(uid: false, target: sent), .allow),
        // Decided (issue 8 point 4): moving into Sent's children from outside is allowed like moving into Sent;
        // from then on the message is protected there too (the row above this one's twin: MOVE out of a child).
        ("UID MOVE from INBOX into a child of Sent", inbox, .move(uid: true, target: sentChild), .allow),
        ("COPY from Trash into a child of Sent", trash, .copy(uid: false, target: sentChild), .allow),
        ("COPY out of Sent", sent, .copy(uid: false, target: trash), .allow),
        ("UID COPY out of Sent", sent, .copy(uid: true, target: inbox), .allow),
        ("DELETE Sent", nil, .delete(sent), .refuse(.deleteFolder)),
        ("DELETE a child of Sent", inbox, .delete(sentChild), .refuse(.deleteFolder)),
        ("DELETE Sentinel", nil, .delete(other), .allow),
        ("DELETE Trash", sent, .delete(trash), .allow),
        ("RENAME Sent", nil, .rename(from: sent, to: wire("Old")), .refuse(.renameFolder)),
        ("RENAME a child of Sent", nil, .rename(from: sentChild, to: wire("2025")), .refuse(.renameFolder)),
        ("RENAME into Sent", nil, .rename(from: wire("Work"), to: wire("Sent Items/Work")), .allow),
        ("RENAME Sentinel", nil, .rename(from: other, to: wire("Guard")), .allow),
        ("APPEND to Sent with \\Deleted", nil, .append(mailbox: sent, flags: [.seen, .deleted]), .refuse(.appendDeleted)),
        ("APPEND to a child with \\Deleted", nil, .append(mailbox: sentChild, flags: [.deleted]), .refuse(.appendDeleted)),
        ("APPEND to Sent with \\Seen", nil, .append(mailbox: sent, flags: [.seen]), .allow),
        ("APPEND to Sent without flags", sent, .append(mailbox: sent, flags: []), .allow),
        ("APPEND to Trash with \\Deleted", nil, .append(mailbox: trash, flags: [.deleted]), .allow),
        ("CLOSE in Sent", sent, .close, .rewriteCloseToUnselect),
        ("CLOSE in a child of Sent", sentChild, .close, .rewriteCloseToUnselect),
        ("CLOSE in INBOX", inbox, .close, .allow),
        ("FETCH in Sent", sent, .other, .allow),
    ]

    @Test("rules", arguments: rules)
    func rule(label: String, selected: MailboxName?, command: LockedCommand, expected: LockDecision) {
        #expect(Self.lock.decide(command, selected: selected) == expected, "\(label)")
    }

    @Test("CLOSE after EXAMINE of Sent does not expunge and passes")
    func closeReadOnly() {
        #expect(Self.lock.decide(.close, selected: Self.sent, readOnly: true) == .allow)
    }

    @Test("lock_after_send = false allows everything", arguments: rules)
    func disabled(label: String, selected: MailboxName?, command: LockedCommand, expected: LockDecision) {
        let lock = SentLock(folderMap: Fixture.englishPlain.map, enabled: false)
        #expect(lock.decide(command, selected: selected) == .allow, "\(label)")
    }

    @Test("no Sent folder known: nothing is protected")
    func noSentFolder() {
        let lock = SentLock(sentFolder: nil, delimiter: UInt8(ascii: "/"))
        #expect(lock.decide(.expunge, selected: Self.sent) == .allow)
    }

    @Test("German, and Dovecot with \".\": the protected tree and the folder above it")
    func otherMailboxes() {
        let german = SentLock(folderMap: Fixture.germanPlain.map, enabled: true)
        #expect(german.decide(.expunge, selected: wire("Gesendete Elemente/2025")) == .refuse(.expunge))
        #expect(german.decide(.expunge, selected: wire("Gesendete")) == .allow)
        let dot = SentLock(folderMap: Fixture.dovecotInboxDot.map, enabled: true)
        #expect(dot.isProtected(wire("INBOX.Sent.2025")))
        #expect(dot.isProtected(wire("inbox.Sent")))
        #expect(!dot.isProtected(wire("INBOX.Sent/2025")))
        // Renaming INBOX moves its messages, not its children (RFC 3501 §6.3.5): allowed.
        #expect(dot.decide(.rename(from: wire("INBOX"), to: wire("Old")), selected: nil) == .allow)
        let nested = SentLock(sentFolder: wire("Mail/Sent"), delimiter: UInt8(ascii: "/"))
        #expect(nested.decide(.rename(from: wire("Mail"), to: wire("Post")), selected: nil) == .refuse(.renameFolder))
        #expect(nested.decide(.delete(wire("Mail")), selected: nil) == .allow)
    }

    @Test("every refusal has a sentence that names the lock")
    func sentences() {
        for refusal in LockRefusal.allCases {
            #expect(refusal.sentence.contains("lock_after_send"))
            #expect(!refusal.sentence.contains("\r") && !refusal.sentence.contains("\n"))
        }
        #expect(LockedCommand.store(uid: true, mode: .add, flags: []).name == "UID STORE")
    }
}
