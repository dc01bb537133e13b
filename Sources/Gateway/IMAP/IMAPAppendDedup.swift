// Gateway: what the IMAP session needs to file a client's copy of a sent message once (issue 8 point 6): the
// journal in Policy's `AppendDedup` terms, cancelling the gateway's own queued copy, and searching Sent upstream.
import Foundation
public import IMAP
import MailCore
import Policy
import Store

/// Cancels the gateway's own sent copy that is still queued, because the client's APPEND will file the message.
///
/// The SMTP side's `SentCopyService` implements it (with exactly this signature); the IMAP session only calls it.
/// Returns true when a queued copy was cancelled (marked skipped, never to be appended), false when there was
/// none queued any more (it was made or decided meanwhile): the session then decides again.
public protocol SentCopyCancelling: Sendable {
    func cancelQueuedCopy(accountEmail: String, messageID: String) -> Bool
}

/// Searches the account's Sent folder upstream for a Message-ID.
public protocol SentFolderSearching: Sendable {
    /// The UIDs holding `messageID` in `folder` and the folder's UIDVALIDITY (nil when the server did not say).
    func search(account: String, settings: IMAPAccountSettings, folder: MailboxName, messageID: String) async throws
        -> (uids: [UInt32], uidValidity: UInt32?)
}

/// The search on a short side session (its own XOAUTH2 login): `EXAMINE` Sent, `UID SEARCH HEADER Message-ID`,
/// `LOGOUT`. A side session, not the client's own, so that the client's selected mailbox and its view of message
/// numbers are never disturbed. It costs one login, but only for an APPEND to Sent of a message the journal knows.
struct UpstreamSentFolderSearch: SentFolderSearching {
    let credentials: any UpstreamCredentials
    let limits: Limits

    func search(account: String, settings: IMAPAccountSettings, folder: MailboxName, messageID: String) async throws
        -> (uids: [UInt32], uidValidity: UInt32?)
    {
        if settings.endpoint.security == .none && !settings.allowInsecureUpstream {
            throw IMAPSessionError.protocolViolation("imap_security = \"none\" needs allow_insecure_upstream = true")
        }
        let session = try await IMAPUpstreamSession.open(
            settings.endpoint, timeout: limits.connectTimeoutSeconds, limits: limits)
        defer { session.close() }
        var identity = try await credentials.xoauth2(for: account)
        var tagged = try await session.authenticateXOAuth2(user: identity.user, token: identity.token)
        if tagged.status != .ok {
            identity = try await credentials.xoauth2AfterRejection(for: account, rejected: identity.token)
            tagged = try await session.authenticateXOAuth2(user: identity.user, token: identity.token)
            guard tagged.status == .ok else {
                throw IMAPSessionError.protocolViolation("the server refused the XOAUTH2 login for the Sent search")
            }
        }
        let (examined, untagged) = try await session.run(.examine(folder))
        guard examined.status == .ok else {
            throw IMAPSessionError.protocolViolation("EXAMINE of Sent was refused: \(sanitizeForLog(examined.text))")
        }
        var uidValidity: UInt32?
        for case .ok(let text) in untagged {
            if case .uidValidity(let value)? = text.code { uidValidity = value }
        }
        let (searched, found) = try await session.run(.uidSearchHeader(field: "Message-ID", value: messageID))
        guard searched.status == .ok else {
            throw IMAPSessionError.protocolViolation("UID SEARCH in Sent was refused: \(sanitizeForLog(searched.text))")
        }
        var uids: [UInt32] = []
        for case .search(let numbers) in found { uids += numbers }
        try? await session.logout()
        return (uids, uidValidity)
    }
}

extension IMAPSentJournal {
    /// Without a richer answer from the journal: the copy state mapped onto `JournaledSend` (sent now, so the
    /// window always holds; the conformer already applied `since`).
    func journaledSend(account: String, messageID: String, since: Date) -> JournaledSend? {
        switch copyState(account: account, messageID: messageID, since: since) {
        case .unknown: return nil
        case .filed: return JournaledSend(status: .sent, sentAt: Date(), copy: .skipped)
        case .queued: return JournaledSend(status: .sent, sentAt: Date(), copy: .queued)
        }
    }
}

extension StoreSentJournal {
    /// The newest journal entry of this account with the Message-ID, in Policy's terms.
    func newestSend(account: String, messageID: String, since: Date) -> JournaledSend? {
        guard let entries = try? database.journalEntries(account: account) else { return nil }
        let matching = entries.filter { $0.messageID == messageID && $0.createdAt >= since }
        guard let newest = matching.max(by: { $0.sequence < $1.sequence }) else { return nil }
        return JournaledSend(status: Self.status(newest.status), sentAt: newest.createdAt, copy: Self.copy(newest.sentCopyState))
    }

    static func status(_ status: JournalStatus) -> JournaledSend.Status {
        switch status {
        case .pending: .pending
        case .sent: .sent
        case .failed: .failed
        case .unknown: .unknown
        }
    }

    static func copy(_ state: SentCopyState) -> JournaledSend.Copy {
        switch state {
        case .pending: .queued
        case .made: .made(nil)  // the journal keeps no UID: Sent is searched for it
        case .skipped: .skipped
        case .failed: .failed
        case .disabled: .disabled
        }
    }
}

/// The journal lookup the session uses: the Store's entries when it has them, else the copy state.
enum IMAPJournalLookup {
    static func send(_ journal: any IMAPSentJournal, account: String, messageID: String, since: Date) -> JournaledSend? {
        if let store = journal as? StoreSentJournal {
            return store.newestSend(account: account, messageID: messageID, since: since)
        }
        if let detailed = journal as? any IMAPSentJournalDetail {
            return detailed.detailedSend(account: account, messageID: messageID, since: since)
        }
        return journal.journaledSend(account: account, messageID: messageID, since: since)
    }
}

/// A journal that can say more than the copy state (tests; another store).
protocol IMAPSentJournalDetail: IMAPSentJournal {
    func detailedSend(account: String, messageID: String, since: Date) -> JournaledSend?
}

/// The text of the OK for an APPEND that was not stored again.
enum IMAPAppendDedupAnswer {
    /// `TAG OK [APPENDUID v u] …` when UIDPLUS is offered and the copy is known, else a plain OK (RFC 4315 §3).
    static func line(tag: String, existing: ExistingCopy?, uidPlus: Bool) -> String {
        let code = uidPlus ? existing.map { "[APPENDUID \($0.uidValidity) \($0.uid)] " } ?? "" : ""
        return "\(tag) OK \(code)APPEND completed (MailGate: this message is already in Sent)\r\n"
    }
}
