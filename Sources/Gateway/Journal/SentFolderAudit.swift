// Gateway/Journal: `journal verify --against-server`: is every journaled sent message still in the Sent folder?
import Foundation
import IMAP
public import MailCore
public import Store

/// Checks over IMAP, by Message-ID, that every journaled *sent* message of one account is still in its Sent
/// folder or one of that folder's children (the lock lets a client move messages into a child of Sent).
///
/// The folder is found as the sent copy finds it: the configured `sent_folder`, else SPECIAL-USE `\Sent`, else the
/// known names. Exchange re-renders MIME, so bytes are not compared there (the archive holds the original); the
/// Message-ID header is. Per folder, a batch of Message-IDs is one `UID SEARCH OR HEADER Message-ID … …`; the
/// UIDs found are then fetched (`BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]`) to learn which of the batch they are, so
/// that a duplicate of one message can never hide the absence of another.
public struct SentFolderAudit: Sendable {
    /// Message-IDs per `UID SEARCH` (an `OR` tree of this many keys stays far below Exchange's command length).
    public static let batchSize = 40

    /// What the audit found for one account.
    public struct Report: Sendable {
        /// The folders searched, decoded, the Sent folder first.
        public var folders: [String]
        /// Journaled sent messages checked.
        public var checked: Int
        /// The entries whose Message-ID is in none of the folders, in sequence order.
        public var missing: [JournalEntry]
    }

    public let endpoint: UpstreamEndpoint
    public let sentFolder: String?
    public let credentials: any UpstreamCredentials
    public let timeout: Double

    public init(endpoint: UpstreamEndpoint, sentFolder: String?, credentials: any UpstreamCredentials, timeout: Double) {
        self.endpoint = endpoint
        self.sentFolder = sentFolder
        self.credentials = credentials
        self.timeout = timeout
    }

    /// Audits `entries` (the account's journal entries; only `sent` ones are looked for). `progress` is told
    /// (found or settled so far, total) after every batch.
    public func run(
        account: String, entries: [JournalEntry], progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> Report {
        let sent = entries.filter { $0.status == .sent }.sorted { $0.sequence < $1.sequence }
        let session = try await IMAPUpstreamSession.open(endpoint, timeout: timeout)
        defer { session.close() }
        try await logIn(account: account, session: session)
        let (_, listed) = try await expectOK(session, .list(reference: MailboxName([]), pattern: Array("*".utf8)), "LIST")
        guard let sentName = SentFolderFinder.find(in: listed, configured: sentFolder) else {
            throw AuditError("the server lists no Sent folder for \(account); set sent_folder for its server")
        }
        let folders = Self.folderAndChildren(sentName, in: listed)
        // Message-ID (as searched) → entries still not found.
        var remaining: [String: [JournalEntry]] = [:]
        var order: [String] = []
        for entry in sent {
            let id = Self.normalized(entry.messageID)
            if remaining[id] == nil { order.append(id) }
            remaining[id, default: []].append(entry)
        }
        let total = sent.count
        for folder in folders {
            let wanted = order.filter { remaining[$0] != nil }
            if wanted.isEmpty { break }
            let (examined, _) = try await session.run(.examine(folder))
            guard examined.status == .ok else { continue }  // a child that vanished or cannot be opened
            var start = 0
            while start < wanted.count {
                let batch = Array(wanted[start..<min(start + Self.batchSize, wanted.count)])
                start += batch.count
                for found in try await search(batch, session: session) { remaining[found] = nil }
                progress(total - remaining.values.reduce(0) { $0 + $1.count }, total)
            }
        }
        try? await session.logout()
        let missing = remaining.values.flatMap { $0 }.sorted { $0.sequence < $1.sequence }
        return Report(
            folders: folders.map { (try? $0.decodedName) ?? sanitizeForLog($0.bytes) }, checked: total,
            missing: missing)
    }

    /// The Message-IDs of `batch` present in the selected folder.
    private func search(_ batch: [String], session: IMAPUpstreamSession) async throws -> Set<String> {
        let (_, searched) = try await expectOK(
            session, .uidSearchHeaderAny(field: "Message-ID", values: batch), "UID SEARCH")
        var uids: [UInt32] = []
        for case .search(let numbers) in searched { uids += numbers }
        guard !uids.isEmpty else { return [] }
        let wanted = Set(batch)
        var found: Set<String> = []
        var start = 0
        let sorted = Array(Set(uids)).sorted()
        while start < sorted.count {
            let chunk = Array(sorted[start..<min(start + 200, sorted.count)])
            start += chunk.count
            let (_, fetched) = try await expectOK(
                session, .uidFetchHeaderFields(uids: chunk, fields: ["MESSAGE-ID"]), "UID FETCH")
            for case .fetch(let response) in fetched {
                if let id = Self.messageID(inFetched: response.rawAttributes), wanted.contains(id) { found.insert(id) }
            }
        }
        return found
    }

    /// The Sent folder followed by every selectable folder below it (by the delimiter the server reported).
    static func folderAndChildren(_ sent: MailboxName, in listed: [UntaggedResponse]) -> [MailboxName] {
        var folders = [sent]
        for case .list(let info) in listed {
            guard info.isSelectable, info.name != sent, let separator = info.path.pathSeparator else { continue }
            let prefix = sent.bytes + [separator]
            if info.name.bytes.count > prefix.count, Array(info.name.bytes.prefix(prefix.count)) == prefix {
                folders.append(info.name)
            }
        }
        return folders
    }

    /// A Message-ID as compared: trimmed, and the `<…>` part when there is one.
    static func normalized(_ id: String) -> String {
        let trimmed = id.trimmingCharacters(in: .whitespaces)
        if let open = trimmed.firstIndex(of: "<"), let close = trimmed[open...].firstIndex(of: ">") {
            return String(trimmed[open...close])
        }
        return trimmed
    }

    /// The Message-ID header field's value in a FETCH response's raw attributes (the header-fields literal),
    /// unfolded and normalized; nil when there is none.
    static func messageID(inFetched raw: [UInt8]) -> String? {
        let name = Array("message-id:".utf8)
        let lowered = raw.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        var index = 0
        while index + name.count <= lowered.count {
            let atLineStart = index == 0 || lowered[index - 1] == 0x0A
            if atLineStart, Array(lowered[index..<(index + name.count)]) == name {
                var value: [UInt8] = []
                var cursor = index + name.count
                while cursor < raw.count {
                    let byte = raw[cursor]
                    if byte == 0x0D || byte == 0x0A {
                        // A folded value continues on a line that starts with a blank.
                        var next = cursor
                        while next < raw.count, raw[next] == 0x0D || raw[next] == 0x0A { next += 1 }
                        guard next < raw.count, raw[next] == 0x20 || raw[next] == 0x09 else { break }
                        cursor = next
                        continue
                    }
                    value.append(byte)
                    cursor += 1
                }
                return normalized(String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespaces))
            }
            index += 1
        }
        return nil
    }

    /// AUTHENTICATE XOAUTH2; on NO, one forced refresh and one more try.
    private func logIn(account: String, session: IMAPUpstreamSession) async throws {
        var identity = try await credentials.xoauth2(for: account)
        for attempt in 1...2 {
            let tagged = try await session.authenticateXOAuth2(user: identity.user, token: identity.token)
            if tagged.status == .ok { return }
            guard attempt == 1 else {
                throw AuditError(
                    "the server refused the XOAUTH2 login of \(identity.user) after a token refresh "
                        + "(\(sanitizeForLog(tagged.text))); run `mailgate account test \(account)`")
            }
            identity = try await credentials.xoauth2AfterRejection(for: account, rejected: identity.token)
        }
    }

    private func expectOK(
        _ session: IMAPUpstreamSession, _ command: IMAPCommand, _ name: String
    ) async throws -> (TaggedResponse, [UntaggedResponse]) {
        let (tagged, untagged) = try await session.run(command)
        guard tagged.status == .ok else {
            throw AuditError("the server refused \(name): \(sanitizeForLog(tagged.text))")
        }
        return (tagged, untagged)
    }
}

/// Why the audit could not run to its end.
public struct AuditError: MailGateError {
    public let description: String
    init(_ description: String) { self.description = description }
}
