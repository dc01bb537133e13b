// Policy: a client's APPEND of a message it just sent through the gateway, filed once only (issue 8 point 6).

public import Foundation
internal import MailCore

/// What the journal knows about a sent message, in the Policy module's own terms (Policy does not see the
/// Store): the gateway maps its `JournalEntry` (newest entry with the Message-ID for this account) onto it.
public struct JournaledSend: Sendable, Hashable {
    /// Where the send stands (`JournalStatus`).
    public enum Status: String, Sendable, Hashable {
        /// The upstream's answer is still awaited.
        case pending
        /// The upstream accepted it.
        case sent
        /// The upstream refused it: it was not sent.
        case failed
        /// MailGate lost the answer: it may have been sent.
        case unknown
    }

    /// Where the gateway's own copy in Sent stands (`SentCopyState`).
    public enum Copy: Sendable, Hashable {
        /// Queued (or retrying): the gateway will search or append later.
        case queued
        /// The gateway appended it; the UID when the upstream answered with APPENDUID.
        case made(ExistingCopy?)
        /// Not appended because the server (or an earlier client APPEND) filed it.
        case skipped
        /// Given up after its retries.
        case failed
        /// No copy wanted (`sent_copy = "never"`).
        case disabled
    }

    public var status: Status
    /// When the send was accepted (the journal's `createdAt`).
    public var sentAt: Date
    public var copy: Copy

    public init(status: Status, sentAt: Date, copy: Copy) {
        self.status = status
        self.sentAt = sentAt
        self.copy = copy
    }
}

/// A message already in Sent, as `[APPENDUID uidvalidity uid]` names it (RFC 4315).
public struct ExistingCopy: Sendable, Hashable {
    public var uidValidity: UInt32
    public var uid: UInt32

    public init(uidValidity: UInt32, uid: UInt32) {
        self.uidValidity = uidValidity
        self.uid = uid
    }
}

/// What the gateway does with a client's APPEND.
public enum AppendDedupDecision: Sendable, Hashable {
    /// Forward the APPEND as it came.
    case forward
    /// Forward the APPEND, and cancel the gateway's queued copy so that the client's is the only one.
    ///
    /// Cancel first, atomically (mark the queued copy `skipped` only if it is still queued); when the copy was
    /// made meanwhile, decide again with the new state instead of forwarding.
    case forwardCancellingQueuedCopy
    /// Ask the upstream first: `UID SEARCH HEADER Message-ID "<id>"` in the Sent folder (the server may have
    /// filed the message itself, as Exchange does), then `AppendDedup.afterSearch`.
    case searchSent(messageID: String, cancelQueuedCopy: Bool)
    /// Do not store: answer `TAG OK [APPENDUID v u] APPEND completed.` (the code only when UIDPLUS is offered to
    /// the client and `existing` is known, else a plain OK), swallow the message, and cancel the queued copy
    /// when asked; count an APPEND de-duplicated.
    case alreadyFiled(existing: ExistingCopy?, cancelQueuedCopy: Bool)
}

/// The APPEND de-duplication rules, free of I/O.
///
/// Only an APPEND to the server's Sent folder itself (not its subfolders) is looked at, and only when the
/// message carries a Message-ID that the journal recorded for a send of this account within `window`
/// (default 24 h). The aim is exactly one copy in Sent:
///
/// | journal                          | decision                                                        |
/// |----------------------------------|-----------------------------------------------------------------|
/// | no entry, outside window, failed | forward                                                         |
/// | copy made, UID known             | already filed (APPENDUID of the gateway's copy)                 |
/// | copy made (no UID), skipped, copy failed, disabled | search Sent: found → already filed; else forward |
/// | copy queued, `sent_copy = always` | forward and cancel the queued copy                             |
/// | copy queued, `sent_copy = auto`  | search Sent (the server may have filed it): found → already filed and cancel; else forward and cancel |
///
/// A send still `pending` or `unknown` is treated like `sent`: a client appends only what it believes was sent.
/// Known limit: with `sent_copy = auto` the server may file its own copy after the search found none; that
/// race is the server's (the gateway's own search has the same one).
public enum AppendDedup {
    /// The default window: a client saves its copy right after sending; a day covers offline clients.
    public static let defaultWindow: TimeInterval = 24 * 3600

    /// The first decision for an APPEND.
    ///
    /// - Parameters:
    ///   - toSentFolder: whether the APPEND's (server-side) mailbox is the server's Sent folder.
    ///   - messageID: the message's Message-ID (`AppendMessageIDProbe`), nil when it has none.
    ///   - journal: the journal's newest entry for this account and Message-ID, nil when there is none.
    ///   - mode: the server's `sent_copy`.
    public static func decide(
        toSentFolder: Bool, messageID: String?, journal: JournaledSend?, mode: SentCopyMode, now: Date,
        window: TimeInterval = defaultWindow
    ) -> AppendDedupDecision {
        guard toSentFolder, let messageID, let journal else { return .forward }
        let age = now.timeIntervalSince(journal.sentAt)
        guard age <= window, age >= -300 else { return .forward }  // a clock step back of minutes is tolerated
        if journal.status == .failed { return .forward }
        switch journal.copy {
        case .made(let existing?):
            return .alreadyFiled(existing: existing, cancelQueuedCopy: false)
        case .made(nil), .skipped, .failed, .disabled:
            return .searchSent(messageID: messageID, cancelQueuedCopy: false)
        case .queued:
            switch mode {
            case .always: return .forwardCancellingQueuedCopy
            case .auto, .never: return .searchSent(messageID: messageID, cancelQueuedCopy: true)
            }
        }
    }

    /// The decision after `UID SEARCH HEADER Message-ID` in Sent.
    ///
    /// - Parameters:
    ///   - foundUIDs: the UIDs the search returned.
    ///   - uidValidity: the Sent folder's UIDVALIDITY when known (for APPENDUID).
    ///   - cancelQueuedCopy: what `searchSent` carried.
    public static func afterSearch(foundUIDs: [UInt32], uidValidity: UInt32?, cancelQueuedCopy: Bool)
        -> AppendDedupDecision
    {
        guard let newest = foundUIDs.max() else {
            return cancelQueuedCopy ? .forwardCancellingQueuedCopy : .forward
        }
        let existing = uidValidity.map { ExistingCopy(uidValidity: $0, uid: newest) }
        return .alreadyFiled(existing: existing, cancelQueuedCopy: cancelQueuedCopy)
    }
}

/// Reads the Message-ID from the head of an APPEND's message while the gateway holds those bytes back, bounded.
///
/// The gateway cannot decide on an APPEND to Sent before it knows the Message-ID, which is in the header block;
/// it feeds the literal's bytes here until `messageID` is decided, holding at most `limit` bytes (then it decides
/// "no usable Message-ID" and the APPEND is forwarded). The probe keeps no bytes itself: the caller holds them.
///
///     var probe = AppendMessageIDProbe()
///     if case .decided(let id) = probe.append(chunk) { … }
public struct AppendMessageIDProbe: Sendable {
    public enum State: Sendable, Hashable {
        /// The header block has not ended yet; feed more.
        case needMore
        /// Decided: the Message-ID, or nil when the header has none (or is longer than the limit).
        case decided(String?)
    }

    /// Most bytes held before deciding anyway.
    public let limit: Int
    public private(set) var state: State = .needMore
    private var header: [UInt8] = []
    private var scanned = 0

    /// - Parameter limit: 64 KiB by default: client headers are a few KiB; past it the APPEND is forwarded.
    public init(limit: Int = 65_536) { self.limit = max(0, limit) }

    /// Takes the next bytes of the message.
    public mutating func append(_ bytes: some Collection<UInt8>) -> State {
        guard case .needMore = state else { return state }
        let room = limit + 4 - header.count
        header.append(contentsOf: bytes.prefix(max(0, room)))
        if let end = MessageIDInjector.headerEnd(in: header, from: scanned) {
            state = .decided(MessageID.extract(fromHeaderOf: Array(header[..<end]) + [0x0D, 0x0A]))
            header = []
        } else if header.count > limit {
            state = .decided(nil)
            header = []
        } else {
            scanned = max(0, header.count - 2)
        }
        return state
    }

    /// The message ended (all header, or empty): decide on what was seen.
    public mutating func finish() -> State {
        guard case .needMore = state else { return state }
        state = .decided(MessageID.extract(fromHeaderOf: header + [0x0D, 0x0A, 0x0D, 0x0A]))
        header = []
        return state
    }
}
