// Gateway/Download: one download run: each imap-download account's new INBOX messages into its local Maildir.
public import Config
public import Foundation
public import Logging
public import Store
import IMAP
import MailCore

/// What one account's run did.
public struct AccountDownloadReport: Sendable, Equatable {
    public var account: String
    /// Messages stored (new, or fetched again with reload).
    public var messages = 0
    public var bytes = 0
    public var deletedAfterLoading = 0
    public var deletedAfterDays = 0
    /// Known messages moved to a new UIDVALIDITY instead of being fetched again.
    public var reidentified = 0
    /// Why the run stopped early; nil when it completed.
    public var failure: DownloadError?

    public init(account: String) { self.account = account }

    /// One line for `mailgate download`.
    public var line: String {
        var text =
            "\(account): \(messages) message\(messages == 1 ? "" : "s") (\(bytes) bytes) downloaded, "
            + "\(deletedAfterLoading + deletedAfterDays) deleted on the server"
        if reidentified > 0 { text += ", \(reidentified) re-identified after a UIDVALIDITY change" }
        if let failure { text += "; FAILED: \(failure.description)" }
        return text
    }
}

/// Downloads the INBOX of every account whose server has `incoming = "imap-download"`, a bounded number of
/// accounts at a time; one account's failure is reported and the others go on.
///
/// Per message: fetch into `tmp/` (streamed), fsync, rename into `new/`, fsync; only then the row and the
/// high-water mark are committed, and only then (`delete_after_loading`) is the message deleted on the server.
/// Only INBOX is ever selected, so the Sent folder (lock after send) is never touched by retention.
public final class DownloadRunner: Sendable {
    /// The configuration in force: fixed for `mailgate download`, the live one inside `serve` (SIGHUP).
    public var configuration: MailGateConfiguration { current() }
    private let current: @Sendable () -> MailGateConfiguration
    private let database: MailGateDatabase
    private let stateDirectory: String
    private let credentials: any UpstreamCredentials
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// Accounts downloaded at the same time.
    public let concurrency: Int

    /// The only mailbox downloaded.
    static let mailbox = "INBOX"

    /// `now` is the clock `delete_after_days` and the recorded download times use (tests set it).
    public convenience init(
        configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String,
        credentials: any UpstreamCredentials, logger: Logger, concurrency: Int = 4,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            current: { configuration }, database: database, stateDirectory: stateDirectory, credentials: credentials,
            logger: logger, concurrency: concurrency, now: now)
    }

    /// For `serve`: accounts, servers and tokens of the directory in force at each run, so an account or
    /// `[server]` a SIGHUP added is downloaded from the next run on.
    convenience init(live: LiveDirectory, database: MailGateDatabase, stateDirectory: String, logger: Logger) {
        self.init(
            current: { live.configuration }, database: database, stateDirectory: stateDirectory, credentials: live,
            logger: logger, concurrency: 4, now: { Date() })
    }

    private init(
        current: @escaping @Sendable () -> MailGateConfiguration, database: MailGateDatabase, stateDirectory: String,
        credentials: any UpstreamCredentials, logger: Logger, concurrency: Int, now: @escaping @Sendable () -> Date
    ) {
        self.current = current
        self.database = database
        self.stateDirectory = stateDirectory
        self.credentials = credentials
        self.logger = logger
        self.concurrency = max(1, concurrency)
        self.now = now
    }

    /// Whether any server downloads on a schedule.
    public var hasDownloadServers: Bool { configuration.servers.values.contains { $0.incoming == .imapDownload } }

    /// The accounts a run covers (all of imap-download servers, or the one asked for, which must be one).
    public func accounts(only: String? = nil) throws -> [String] {
        let accounts = try database.accounts().filter { account in
            configuration.servers[account.serverName]?.incoming == .imapDownload
        }.map(\.email)
        guard let only else { return accounts }
        guard accounts.contains(only.lowercased()) else {
            throw DownloadError.notConfigured(
                "\(only.lowercased()) is not an account of a server with incoming = \"imap-download\".")
        }
        return [only.lowercased()]
    }

    /// Runs `accounts`, at most `concurrency` at a time; `progress` is called as each finishes.
    public func run(
        accounts: [String], reload: Bool = false, progress: @escaping @Sendable (AccountDownloadReport) -> Void = { _ in }
    ) async -> [AccountDownloadReport] {
        await withTaskGroup(of: AccountDownloadReport.self) { group in
            var reports: [AccountDownloadReport] = []
            var pending = accounts[...]
            var running = 0
            while running < concurrency, let next = pending.popFirst() {
                group.addTask { await self.runAccount(next, reload: reload) }
                running += 1
            }
            while let report = await group.next() {
                progress(report)
                reports.append(report)
                if let next = pending.popFirst() {
                    group.addTask { await self.runAccount(next, reload: reload) }
                }
            }
            return reports.sorted { $0.account < $1.account }
        }
    }

    /// One account's run; never throws: a failure ends up in the report, logged and counted.
    public func runAccount(_ email: String, reload: Bool = false) async -> AccountDownloadReport {
        var report = AccountDownloadReport(account: email.lowercased())
        count("download.runs", email)
        do {
            try await download(email.lowercased(), reload: reload, report: &report)
        } catch let error as DownloadError {
            report.failure = error
        } catch let error as StoreError {
            report.failure = .database(error.description)
        } catch {
            report.failure = .connect(String(describing: error))
        }
        if let failure = report.failure {
            count("download.failures.\(failure.cause)", email)
            if case .storeFull = failure {
                logger.warning("download of \(report.account) stopped: \(failure.description)")
            } else {
                logger.error("download of \(report.account) failed: \(failure.description)")
            }
        } else {
            logger.info("\(report.line)")
        }
        return report
    }

    // MARK: - One account

    private func download(_ email: String, reload: Bool, report: inout AccountDownloadReport) async throws {
        let configuration = configuration  // one snapshot per account run
        guard let account = try database.account(email: email) else {
            throw DownloadError.notConfigured("There is no account \(email).")
        }
        guard let server = configuration.servers[account.serverName], server.incoming == .imapDownload else {
            throw DownloadError.notConfigured("\(email) does not belong to a server with incoming = \"imap-download\".")
        }
        guard let endpoint = AccountDirectory.imapEndpoint(server) else {
            throw DownloadError.notConfigured("[server.\(server.name)] has no imap endpoint to download from.")
        }
        let store = MaildirStore(stateDirectory: stateDirectory, account: email)
        var rows = try database.downloadedMessages(account: email, mailbox: Self.mailbox)
        try store.prepare(recorded: Set(rows.filter { $0.deletedLocallyAt == nil }.map(\.fileName)))

        let session: DownloadIMAPSession
        do {
            session = try await DownloadIMAPSession.open(endpoint, limits: configuration.limits)
        } catch let error as DownloadError {
            throw error
        } catch {
            throw DownloadError.connect(String(describing: error))
        }
        defer { session.close() }
        try await logIn(email, session)
        let (uidValidity, exists) = try await session.selectInbox()
        let validity = Int64(uidValidity)

        // A new UIDVALIDITY: the old UIDs mean nothing; find the known messages by Message-ID and size.
        var state = try database.downloadState(email: email, mailbox: Self.mailbox)
        if rows.contains(where: { $0.uidValidity != validity }) || (state.map { $0.uidValidity != validity } ?? false) {
            let moved = try await reidentify(rows: rows, uidValidity: validity, exists: exists, session: session)
            report.reidentified = moved.count
            let reset = DownloadState(
                accountEmail: email, mailbox: Self.mailbox, uidValidity: validity, lastUID: 0, updatedAt: now())
            try database.reidentifyDownloads(moved, uidValidity: validity, state: reset)
            if !moved.isEmpty {
                logger.notice(
                    "download: UIDVALIDITY of \(email)'s INBOX changed to \(uidValidity); \(moved.count) known messages re-identified by Message-ID and size")
            }
            rows = try database.downloadedMessages(account: email, mailbox: Self.mailbox)
            state = reset
        }
        let byUID = Dictionary(
            rows.filter { $0.uidValidity == validity }.map { ($0.uid, $0) }, uniquingKeysWith: { first, _ in first })
        let lastUID = state?.lastUID ?? 0

        var candidates: [UInt32] = []
        if exists > 0 {
            if reload {
                candidates = try await session.searchUIDs(from: nil)
            } else {
                candidates = try await session.searchUIDs(from: UInt32(clamping: lastUID + 1)).filter {
                    Int64($0) > lastUID && byUID[Int64($0)] == nil
                }
                // After a UIDVALIDITY change the mark starts at 0: every unknown UID is new.
            }
        }
        for uid in candidates {
            try await fetch(
                uid: uid, uidValidity: uidValidity, email: email, store: store, session: session,
                known: byUID[Int64(uid)], server: server, report: &report)
        }
        if candidates.isEmpty, state == nil {
            try database.saveDownloadStateOnly(
                DownloadState(
                    accountEmail: email, mailbox: Self.mailbox, uidValidity: validity, lastUID: 0, updatedAt: now()))
        }
        if server.deleteAfterDays > 0 {
            try await deleteOld(email: email, uidValidity: validity, days: server.deleteAfterDays, session: session,
                report: &report)
        }
        await session.logout()
    }

    /// Fetches one message into the store, records it, and deletes it upstream when the server says so.
    private func fetch(
        uid: UInt32, uidValidity: UInt32, email: String, store: MaildirStore, session: DownloadIMAPSession,
        known: DownloadedMessage?, server: ServerSettings, report: inout AccountDownloadReport
    ) async throws {
        let limit = configuration.download.maxStoreBytes
        let used = try database.locallyStoredBytes() - Int64(known?.deletedLocallyAt == nil ? known?.size ?? 0 : 0)
        guard used < Int64(limit) else { throw DownloadError.storeFull(limit: limit) }
        let fileName = known?.fileName ?? MaildirStore.fileName(uidValidity: uidValidity, uid: uid)
        let writer = try store.begin(fileName: fileName, byteLimit: limit - Int(used))
        let octets: Int?
        do {
            octets = try await session.fetchBody(uid: uid, into: writer)
        } catch let error as DownloadError {
            writer.abandon()
            throw error
        } catch {
            writer.abandon()
            throw DownloadError.connect(String(describing: error))
        }
        guard octets != nil else {
            // Gone between SEARCH and FETCH (another client expunged it): nothing to store.
            writer.abandon()
            return
        }
        let sha256 = try writer.finish()
        let header = try Self.readHeader(store.path(of: fileName))
        let message = DownloadedMessage(
            id: known?.id, accountEmail: email, mailbox: Self.mailbox, uidValidity: Int64(uidValidity), uid: Int64(uid),
            messageID: MessageID.extract(fromHeaderOf: header) ?? "", size: Int64(writer.count), sha256: sha256,
            fileName: fileName, downloadedAt: now())
        var recorded = try database.recordDownload(
            message,
            state: DownloadState(
                accountEmail: email, mailbox: Self.mailbox, uidValidity: Int64(uidValidity), lastUID: Int64(uid),
                updatedAt: now()))
        report.messages += 1
        report.bytes += writer.count
        count("download.messages", email)
        count("download.bytes", email, amount: Int64(writer.count))

        if server.deleteAfterLoading {
            // The file is durable and recorded: only now may the server's copy go.
            try await session.delete(uids: [uid])
            let at = now()
            try database.markDeletedUpstream([recorded.id!], at: at)
            recorded.deletedUpstreamAt = at
            report.deletedAfterLoading += 1
            count("download.deleted.after_loading", email)
            logger.notice(
                "download: deleted \(email) INBOX UID \(uid) (\(recorded.messageID)) on the server after loading (delete_after_loading)")
        }
    }

    /// Deletes on the server what was downloaded more than `days` days ago (by the recorded time).
    private func deleteOld(
        email: String, uidValidity: Int64, days: Int, session: DownloadIMAPSession, report: inout AccountDownloadReport
    ) async throws {
        let cutoff = now().addingTimeInterval(-Double(days) * 86_400)
        let due = try database.downloadedMessages(account: email, mailbox: Self.mailbox).filter {
            $0.uidValidity == uidValidity && $0.deletedUpstreamAt == nil && $0.downloadedAt <= cutoff
        }
        guard !due.isEmpty else { return }
        try await session.delete(uids: due.map { UInt32(clamping: $0.uid) })
        try database.markDeletedUpstream(due.compactMap(\.id), at: now())
        report.deletedAfterDays += due.count
        count("download.deleted.after_days", email, amount: Int64(due.count))
        for row in due {
            logger.notice(
                "download: deleted \(email) INBOX UID \(row.uid) (\(row.messageID)) on the server \(days) days after loading (delete_after_days)")
        }
    }

    /// Known rows matched to the mailbox's messages under the new UIDVALIDITY by Message-ID and size.
    private func reidentify(
        rows: [DownloadedMessage], uidValidity: Int64, exists: UInt32, session: DownloadIMAPSession
    ) async throws -> [(id: Int64, uid: Int64)] {
        let stale = rows.filter { $0.uidValidity != uidValidity && !$0.messageID.isEmpty && $0.deletedUpstreamAt == nil }
        guard exists > 0, !stale.isEmpty else { return [] }
        let present = try await session.identities()
        var taken = Set(rows.filter { $0.uidValidity == uidValidity }.map(\.uid))
        var moves: [(id: Int64, uid: Int64)] = []
        for row in stale {
            guard
                let match = present.first(where: {
                    $0.messageID == row.messageID && Int64($0.size) == row.size && !taken.contains(Int64($0.uid))
                })
            else { continue }
            taken.insert(Int64(match.uid))
            moves.append((row.id!, Int64(match.uid)))
        }
        return moves
    }

    /// AUTHENTICATE XOAUTH2; on NO one forced refresh and one more try.
    private func logIn(_ email: String, _ session: DownloadIMAPSession) async throws {
        var identity: (user: String, token: Redacted<String>)
        do { identity = try await credentials.xoauth2(for: email) } catch {
            throw DownloadError.token(String(describing: error))
        }
        if try await session.authenticateXOAuth2(user: identity.user, token: identity.token) { return }
        do { identity = try await credentials.xoauth2AfterRejection(for: email, rejected: identity.token) } catch {
            throw DownloadError.token(String(describing: error))
        }
        guard try await session.authenticateXOAuth2(user: identity.user, token: identity.token) else {
            throw DownloadError.loginRefused(identity.user)
        }
    }

    /// The first bytes of a stored message (enough for its header block's Message-ID).
    static func readHeader(_ path: String) throws(DownloadError) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .storeWrite("cannot read back \(path)")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: MessageID.headerScanLimit)) ?? nil
        return data.map { [UInt8]($0) } ?? []
    }

    private func count(_ name: String, _ account: String, amount: Int64 = 1) {
        // A lost counter must not fail a run.
        try? database.increment([CounterIncrement(name, account: account, amount: amount)])
    }
}
