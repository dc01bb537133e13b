// Tests for Policy.AppendDedup and AppendMessageIDProbe: every de-duplication case, every chunking.

import Foundation
import Policy
import Testing

@Suite("AppendDedup")
struct AppendDedupTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let id = "<abc.123@contoso.test>"
    static let uid = ExistingCopy(uidValidity: 7, uid: 42)

    static func sent(_ copy: JournaledSend.Copy, status: JournaledSend.Status = .sent, ago: TimeInterval = 60)
        -> JournaledSend
    {
        JournaledSend(status: status, sentAt: now.addingTimeInterval(-ago), copy: copy)
    }

    /// (label, to Sent, Message-ID, journal, sent_copy, expected)
    static let cases: [(String, Bool, String?, JournaledSend?, SentCopyMode, AppendDedupDecision)] = [
        ("not to Sent", false, id, sent(.made(uid)), .auto, .forward),
        ("no Message-ID", true, nil, sent(.made(uid)), .auto, .forward),
        ("not in the journal", true, id, nil, .auto, .forward),
        ("sent 25 h ago", true, id, sent(.made(uid), ago: 25 * 3600), .auto, .forward),
        ("sent 23 h ago", true, id, sent(.made(uid), ago: 23 * 3600), .auto, .alreadyFiled(existing: uid, cancelQueuedCopy: false)),
        ("sent in the future (clock far off)", true, id, sent(.made(uid), ago: -3600), .auto, .forward),
        ("the send failed", true, id, sent(.queued, status: .failed), .always, .forward),
        ("copy made, UID known", true, id, sent(.made(uid)), .always, .alreadyFiled(existing: uid, cancelQueuedCopy: false)),
        ("copy made, UID unknown", true, id, sent(.made(nil)), .always, .searchSent(messageID: id, cancelQueuedCopy: false)),
        ("server filed it (skipped)", true, id, sent(.skipped), .auto, .searchSent(messageID: id, cancelQueuedCopy: false)),
        ("copy gave up", true, id, sent(.failed), .auto, .searchSent(messageID: id, cancelQueuedCopy: false)),
        ("no copy wanted", true, id, sent(.disabled), .never, .searchSent(messageID: id, cancelQueuedCopy: false)),
        ("copy queued, always", true, id, sent(.queued), .always, .forwardCancellingQueuedCopy),
        ("copy queued, auto", true, id, sent(.queued), .auto, .searchSent(messageID: id, cancelQueuedCopy: true)),
        ("copy queued, send pending", true, id, sent(.queued, status: .pending), .always, .forwardCancellingQueuedCopy),
        ("copy queued, send unknown", true, id, sent(.queued, status: .unknown), .auto, .searchSent(messageID: id, cancelQueuedCopy: true)),
    ]

    @Test("first decision", arguments: cases)
    func decide(
        label: String, toSent: Bool, messageID: String?, journal: JournaledSend?, mode: SentCopyMode,
        expected: AppendDedupDecision
    ) {
        let decision = AppendDedup.decide(
            toSentFolder: toSent, messageID: messageID, journal: journal, mode: mode, now: Self.now)
        #expect(decision == expected, "\(label)")
    }

    @Test("a configured window")
    func window() {
        let journal = Self.sent(.made(Self.uid), ago: 3 * 3600)
        #expect(
            AppendDedup.decide(toSentFolder: true, messageID: Self.id, journal: journal, mode: .auto, now: Self.now, window: 3600)
                == .forward)
        #expect(
            AppendDedup.decide(toSentFolder: true, messageID: Self.id, journal: journal, mode: .auto, now: Self.now, window: 4 * 3600)
                == .alreadyFiled(existing: Self.uid, cancelQueuedCopy: false))
    }

    /// (found UIDs, UIDVALIDITY, cancel queued, expected)
    static let searches: [([UInt32], UInt32?, Bool, AppendDedupDecision)] = [
        ([], 7, false, .forward),
        ([], 7, true, .forwardCancellingQueuedCopy),
        ([12], 7, false, .alreadyFiled(existing: ExistingCopy(uidValidity: 7, uid: 12), cancelQueuedCopy: false)),
        ([12, 30, 5], 7, true, .alreadyFiled(existing: ExistingCopy(uidValidity: 7, uid: 30), cancelQueuedCopy: true)),
        ([12], nil, false, .alreadyFiled(existing: nil, cancelQueuedCopy: false)),
    ]

    @Test("after the search in Sent", arguments: searches)
    func afterSearch(found: [UInt32], uidValidity: UInt32?, cancel: Bool, expected: AppendDedupDecision) {
        #expect(AppendDedup.afterSearch(foundUIDs: found, uidValidity: uidValidity, cancelQueuedCopy: cancel) == expected)
    }

    /// A whole flow for each journal state ends with exactly one copy in Sent: the simulated folder starts with
    /// what the server or the gateway filed, the queued copy adds one unless cancelled, the client's APPEND adds
    /// one when forwarded.
    @Test("exactly one copy ends in Sent", arguments: [
        (JournaledSend.Copy.made(uid), SentCopyMode.always, true),
        (.made(nil), .always, true), (.skipped, .auto, true), (.queued, .always, false), (.queued, .auto, true),
        (.queued, .auto, false), (.disabled, .never, true), (.disabled, .never, false), (.failed, .auto, false),
    ])
    func exactlyOne(copy: JournaledSend.Copy, mode: SentCopyMode, serverHasIt: Bool) {
        var folder = serverHasIt ? 1 : 0
        var queuedCopyWillBeMade = copy == .queued && !serverHasIt
        if case .made = copy { folder = 1 }
        var decision = AppendDedup.decide(
            toSentFolder: true, messageID: Self.id, journal: Self.sent(copy), mode: mode, now: Self.now)
        if case .searchSent(_, let cancel) = decision {
            decision = AppendDedup.afterSearch(
                foundUIDs: folder > 0 ? [9] : [], uidValidity: 3, cancelQueuedCopy: cancel)
        }
        switch decision {
        case .forward: folder += 1
        case .forwardCancellingQueuedCopy:
            folder += 1
            queuedCopyWillBeMade = false
        case .alreadyFiled(_, let cancel): if cancel { queuedCopyWillBeMade = false }
        case .searchSent: Issue.record("searched twice")
        }
        if queuedCopyWillBeMade { folder += 1 }
        #expect(folder == 1, "\(copy) \(mode) server filed: \(serverHasIt)")
    }
}

@Suite("AppendMessageIDProbe")
struct AppendMessageIDProbeTests {
    static func run(_ text: String, chunk: Int, limit: Int = 65_536) -> AppendMessageIDProbe.State {
        var probe = AppendMessageIDProbe(limit: limit)
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            let end = min(bytes.count, index + chunk)
            if case .decided = probe.append(bytes[index..<end]) { return probe.state }
            index = end
        }
        return probe.finish()
    }

    static let messages: [(String, String?)] = [
        ("From: a@b.c\r\nMessage-ID: <x1@b.c>\r\nSubject: s\r\n\r\nbody\r\n", "<x1@b.c>"),
        ("message-id:\r\n <folded@b.c>\r\n\r\nbody", "<folded@b.c>"),
        ("From: a@b.c\nMessage-Id: <lf@b.c>\n\nbody\n", "<lf@b.c>"),
        ("From: a@b.c\r\nSubject: none\r\n\r\nMessage-ID: <in-body@b.c>\r\n", nil),
        ("Message-ID: <only-header@b.c>", "<only-header@b.c>"),
        ("", nil),
        ("\r\nMessage-ID: <after-empty-line@b.c>\r\n", nil),
    ]

    @Test("Message-ID found at every chunk size", arguments: messages)
    func found(text: String, expected: String?) {
        for chunk in 1...max(1, text.utf8.count) {
            #expect(Self.run(text, chunk: chunk) == .decided(expected), "chunk \(chunk)")
        }
    }

    @Test("a header longer than the limit decides without an id and holds no more")
    func bounded() {
        let text = "X-Long: " + String(repeating: "a", count: 5000) + "\r\nMessage-ID: <late@b.c>\r\n\r\n"
        #expect(Self.run(text, chunk: 100, limit: 1024) == .decided(nil))
        #expect(Self.run(text, chunk: 100, limit: 10_000) == .decided("<late@b.c>"))
    }
}
