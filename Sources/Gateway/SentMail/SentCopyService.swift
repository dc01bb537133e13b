// Gateway/SentMail: the background worker that files sent messages in the Sent folder, with retries from the spool.

import Foundation
import Logging
import MailCore
import Policy
import Store
import Transport

/// Works through the persisted sent-copy jobs one at a time, never on a session's queue.
///
/// A job is tried when due (for `auto`, `autoFileDelay` seconds after the send, so Exchange has filed its own copy
/// first); a failure is retried after `retryDelays[attempts - 1]` seconds; when the delays are used up the job is
/// marked `gaveUp`, kept on disk, logged as a warning and the journal's copy state becomes `failed`.
actor SentCopyService {
    private let spoolDirectory: String
    private let archive: MessageArchive
    private let database: MailGateDatabase
    private let credentials: any UpstreamCredentials
    private let logger: Logger
    private let retryDelays: [Double]
    private let limits: Limits
    /// Seconds a whole attempt may take (connect, login, search, APPEND) before its connection is closed.
    private let attemptTimeout: Double

    private var jobs: [String: SentCopyJob] = [:]
    private var loop: Task<Void, Never>?
    private var sleeper: CheckedContinuation<Void, Never>?
    private var timer: Task<Void, Never>?
    private var stopping = false
    /// Test hook: rewrites a job's endpoint before each attempt (e.g. a wrong port made right).
    private var endpointRewrite: (@Sendable (UpstreamEndpoint) -> UpstreamEndpoint)?
    /// Attempts made so far (all jobs), for tests and logs.
    private(set) var attemptCount = 0
    private var holdAll = false
    /// The kept upstream connections, by `connectionKey`.
    private var connections: [String: SentCopyIMAPSession.Connection] = [:]
    /// Seconds a kept connection may sit unused before it is logged out.
    private let idleClose: Double
    /// Connections opened so far and batch searches made (tests, logs).
    private(set) var connectionsOpened = 0
    private(set) var batchSearches = 0
    private let testHooks: SentMailTestHooks
    /// Which queued jobs exist and which one runs, readable without the actor (`cancelQueuedCopy`).
    private nonisolated let registry = SentCopyRegistry()

    init(
        spoolDirectory: String, archive: MessageArchive, database: MailGateDatabase,
        credentials: any UpstreamCredentials, logger: Logger, retryDelays: [Double], limits: Limits,
        attemptTimeout: Double = 600, idleClose: Double = 60, testHooks: SentMailTestHooks = SentMailTestHooks()
    ) {
        self.testHooks = testHooks
        self.idleClose = idleClose
        self.spoolDirectory = spoolDirectory
        self.archive = archive
        self.database = database
        self.credentials = credentials
        self.logger = logger
        self.retryDelays = retryDelays
        self.limits = limits
        self.attemptTimeout = attemptTimeout
    }

    // MARK: - Life cycle

    /// Reads every job left by an earlier run from the database (gave-up jobs are logged and left alone), moves
    /// job files of earlier versions (`<spool>/<id>.job.json`) into the database, and removes spill files of
    /// messages that never got the upstream's 250: their fate is in the journal and, with lock-after-send, their
    /// bytes in the archive; nothing waits for them.
    nonisolated static func loadJobs(spoolDirectory: String, database: MailGateDatabase, logger: Logger) -> [SentCopyJob] {
        for name in DurableFile.list(spoolDirectory) where name.hasSuffix(".job.json") {
            let path = spoolDirectory + "/" + name
            do throws(SentMailError) {
                let job = try SentCopyJob.load(path: path)
                try job.save(in: database, state: job.gaveUp ? .gaveUp : .queued)
                DurableFile.remove(path)
            } catch {
                logger.warning(
                    "A sent-copy job file cannot be read; it is left in place",
                    metadata: ["job": "\(path)", "error": "\(error)"])
            }
        }
        var jobs: [SentCopyJob] = []
        let records: [SentCopyJobRecord]
        do {
            records = try database.sentCopyJobs()
        } catch {
            logger.error("The sent-copy jobs cannot be read", metadata: ["error": "\(error.description)"])
            records = []
        }
        for record in records {
            do throws(SentMailError) {
                let job = try SentCopyJob.decode(record)
                if job.gaveUp {
                    logger.warning(
                        "A sent copy was given up earlier and is kept for an administrator",
                        metadata: [
                            "job": "\(record.id)", "account": "\(job.account)",
                            "messageID": "\(sanitizeForLog(job.messageID))",
                        ])
                    continue
                }
                jobs.append(job)
            } catch {
                logger.warning("A sent-copy job cannot be read; it is left in place", metadata: ["error": "\(error)"])
            }
        }
        for name in DurableFile.list(spoolDirectory) where name.hasSuffix(".eml.part") {
            DurableFile.remove(spoolDirectory + "/" + name)
        }
        if !jobs.isEmpty {
            let unsettled = jobs.filter { $0.resolveFate == true }.count
            logger.info(
                "Sent copies waiting from an earlier run",
                metadata: ["count": "\(jobs.count)", "fateToSettle": "\(unsettled)"])
        }
        return jobs
    }

    /// Queues `loaded` (from `loadJobs`) and starts the loop.
    func start(with loaded: [SentCopyJob]) {
        guard loop == nil else { return }
        stopping = false
        for job in loaded where jobs[job.id] == nil {
            jobs[job.id] = job
            registry.add(job)
        }
        loop = Task { await self.run() }
    }

    /// Stops after the attempt in flight; waits for the loop to end.
    func stop() async {
        stopping = true
        wake()
        await loop?.value
        loop = nil
        timer?.cancel()
    }

    /// Adds a job (already saved) and wakes the loop.
    func enqueue(_ job: SentCopyJob) {
        registry.add(job)
        guard !registry.isCancelled(job.id) else { return }
        jobs[job.id] = job
        wake()
    }

    /// `enqueue` from a queue: the job is visible to `cancelQueuedCopy` at once, the loop learns of it soon.
    nonisolated func enqueueSaved(_ job: SentCopyJob) {
        registry.add(job)
        Task { await self.enqueue(job) }
    }

    /// A client appended its own copy of `messageID` to Sent (IMAP) while the gateway's copy is still queued:
    /// the queued job is dropped (journal copy state `skipped`, counter `sent_copy_cancelled`) and true is
    /// returned. False when there is no such job in this process, or it is running or done.
    nonisolated func cancelQueuedCopy(accountEmail: String, messageID: String) -> Bool {
        guard let job = registry.cancel(accountEmail: accountEmail, messageID: messageID) else { return false }
        do {
            try database.finishSentCopyJob(
                id: job.id, journalSequence: job.journalSequence, sentCopyState: .skipped,
                counters: [CounterIncrement("sent_copy_cancelled", account: job.account, listener: job.listener)])
        } catch {
            // The job stays in the database: after a restart `auto` finds the client's copy and appends nothing.
            logger.warning(
                "A cancelled sent copy could not be removed from the database",
                metadata: ["account": "\(job.account)", "error": "\(error.description)"])
        }
        logger.info(
            "Queued sent copy cancelled: the client appended its own",
            metadata: ["account": "\(job.account)", "messageID": "\(sanitizeForLog(messageID))"])
        Task { await self.dropCancelled() }
        return true
    }

    private func dropCancelled() {
        for id in jobs.keys where registry.isCancelled(id) {
            jobs[id] = nil
            registry.remove(id)
        }
    }

    /// The jobs still queued (not given up), for tests and `stats`.
    var queuedJobs: [SentCopyJob] { Array(jobs.values) }

    /// Test hook: while true the loop attempts nothing (jobs stay queued).
    func setHoldAll(_ hold: Bool) {
        holdAll = hold
        wake()
    }

    /// Test hook: see `endpointRewrite`.
    func setEndpointRewrite(_ rewrite: (@Sendable (UpstreamEndpoint) -> UpstreamEndpoint)?) {
        endpointRewrite = rewrite
    }

    /// Makes every queued job due now (tests, and an administrator's "retry now").
    func retryAllNow() {
        for id in jobs.keys { jobs[id]?.nextAttemptAt = 0 }
        wake()
    }

    // MARK: - The loop

    private func run() async {
        await testHooks.holdSentCopies()
        while !stopping {
            let now = Date().timeIntervalSince1970
            if holdAll {
                await sleep(seconds: 3_600)
                continue
            }
            if let job = jobs.values.filter({ $0.nextAttemptAt <= now }).min(by: { $0.nextAttemptAt < $1.nextAttemptAt }
            ) {
                await attempt(job)
                continue
            }
            let idle = await closeIdleConnections(now: now)
            let next = (jobs.values.map(\.nextAttemptAt) + (idle.map { [$0] } ?? [])).min()
            await sleep(seconds: next.map { max(0.005, $0 - now) } ?? 3_600)
        }
        _ = await closeIdleConnections(now: Date().timeIntervalSince1970, all: true)
    }

    private func sleep(seconds: Double) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            sleeper = continuation
            timer?.cancel()
            timer = Task { [weak self] in
                try? await Task.sleep(nanoseconds: UInt64(min(seconds, 86_400) * 1_000_000_000))
                // Cancelled means a newer sleep replaced this timer: waking now would end that sleep at once, and
                // the loop would spin (a new timer per turn, cancelled by the next) at full CPU.
                guard !Task.isCancelled else { return }
                await self?.wake()
            }
        }
    }

    private func wake() {
        sleeper?.resume()
        sleeper = nil
    }

    private func attempt(_ queued: SentCopyJob) async {
        var job = queued
        guard registry.claim(job.id) else {
            // Cancelled by a client's own APPEND between the loop's pick and now.
            jobs[job.id] = nil
            registry.remove(job.id)
            return
        }
        defer { registry.release(job.id) }
        attemptCount += 1
        guard var endpoint = job.endpoint else {
            await giveUp(&job, reason: "the job names no usable IMAP endpoint")
            return
        }
        if let endpointRewrite { endpoint = endpointRewrite(endpoint) }
        let messagePath = SentCopyJob.messagePath(id: job.id, spool: spoolDirectory)
        let archived = archive.path(sha256: job.sha256)
        let source: SpooledMessage
        if job.inArchive == true, DurableFile.exists(archived) {
            source = .file(path: archived)
        } else if DurableFile.exists(messagePath) {
            source = .file(path: messagePath)
        } else if DurableFile.exists(archived) {
            source = .file(path: archived)
        } else {
            await giveUp(&job, reason: "the spooled message \(messagePath) is missing and there is no archived copy")
            return
        }
        let result = await pooledCopy(&job, message: source, endpoint: endpoint)
        switch result {
        case .success(let outcome) where job.resolveFate == true:
            settle(&job, outcome)
        case .success(let outcome):
            finish(job, outcome)
        case .failure(let error):
            await fail(&job, error: error)
        }
    }

    /// Copies `job` over the account's kept connection (opened, logged in and its Sent folder found on first
    /// use; closed after `idleClose` seconds without use). A kept connection that fails is dropped and the copy
    /// tried once more over a fresh one (the server may have closed it while idle). Before a search in `auto`
    /// mode, the due jobs of the same account are checked together with one `UID SEARCH OR …`: when none of them
    /// is filed, each goes straight to APPEND without its own search.
    private func pooledCopy(
        _ job: inout SentCopyJob, message: SpooledMessage, endpoint: UpstreamEndpoint
    ) async -> Result<SentCopyIMAPSession.Outcome, SentMailError> {
        let key = Self.connectionKey(job, endpoint)
        for round in 1...2 {
            let connection: SentCopyIMAPSession.Connection
            let reused: Bool
            if let existing = connections[key], !existing.broken {
                connection = existing
                reused = true
            } else {
                connections[key] = nil
                let (account, configured, credentials, limits) = (job.account, job.sentFolder, credentials, limits)
                let opened = await Self.withDeadline(attemptTimeout, onLateSuccess: { $0.close() }) {
                    () async throws(SentMailError) -> SentCopyIMAPSession.Connection in
                    try await SentCopyIMAPSession.open(
                        account: account, configured: configured, endpoint: endpoint, credentials: credentials,
                        limits: limits)
                }
                switch opened {
                case .failure(let error): return .failure(error)
                case .success(let fresh):
                    connection = fresh
                    connections[key] = fresh
                    connectionsOpened += 1
                }
                reused = false
            }
            if case .failure(let error) = await checkBatch(&job, key: key, on: connection) {
                connections[key] = nil
                if reused && round == 1 { continue }
                return .failure(error)
            }
            let current = job
            let result = await Self.withDeadline(attemptTimeout, onTimeout: { connection.close() }) {
                () async throws(SentMailError) -> SentCopyIMAPSession.Outcome in
                try await SentCopyIMAPSession.copy(job: current, message: message, on: connection)
            }
            if case .failure = result {
                connection.close()
                connections[key] = nil
                if reused && round == 1 { continue }
            }
            return result
        }
        return .failure(.copyFailed(reason: "no IMAP connection could be made"))
    }

    /// The batch check of `pooledCopy`: marks `job` and the other due `auto` jobs of its connection
    /// `knownNotFiled` when one search finds none of them.
    private func checkBatch(
        _ job: inout SentCopyJob, key: String, on connection: SentCopyIMAPSession.Connection
    ) async -> Result<Void, SentMailError> {
        guard job.mode == SentCopyMode.auto.rawValue, job.resolveFate != true, job.knownNotFiled != true else {
            return .success(())
        }
        let now = Date().timeIntervalSince1970
        let rewrite = endpointRewrite
        let batch = jobs.values.filter { other in
            guard other.id != job.id, other.nextAttemptAt <= now, other.mode == SentCopyMode.auto.rawValue,
                other.resolveFate != true, other.knownNotFiled != true, var endpoint = other.endpoint
            else { return false }
            if let rewrite { endpoint = rewrite(endpoint) }
            return Self.connectionKey(other, endpoint) == key
        }.prefix(Self.batchLimit - 1).map(\.id)
        guard !batch.isEmpty else { return .success(()) }
        let ids = [job.messageID] + batch.compactMap { jobs[$0]?.messageID }
        let result = await Self.withDeadline(attemptTimeout, onTimeout: { connection.close() }) {
            () async throws(SentMailError) -> Bool in
            try await SentCopyIMAPSession.anyFiled(messageIDs: ids, on: connection)
        }
        switch result {
        case .failure(let error):
            return .failure(error)
        case .success(true):
            batchSearches += 1
            return .success(())
        case .success(false):
            batchSearches += 1
            job.knownNotFiled = true
            for id in batch { jobs[id]?.knownNotFiled = true }
            return .success(())
        }
    }

    /// Logs out of the kept connections idle for `idleClose` seconds (all of them with `all`); returns when the
    /// next one falls idle.
    private func closeIdleConnections(now: Double, all: Bool = false) async -> Double? {
        for (key, connection) in connections where all || connection.broken || connection.lastUsed + idleClose <= now {
            connections[key] = nil
            if !connection.broken { await connection.logout() }
        }
        return connections.values.map { $0.lastUsed + idleClose }.min()
    }

    /// One kept connection per account, endpoint and configured Sent folder.
    private static func connectionKey(_ job: SentCopyJob, _ endpoint: UpstreamEndpoint) -> String {
        [job.account.lowercased(), endpoint.address.host, String(endpoint.address.port), endpoint.security.rawValue,
            job.sentFolder ?? ""].joined(separator: "\u{1}")
    }

    /// Message-IDs per batch search (the nested ORs stay short for every server).
    static let batchLimit = 32

    /// Runs `operation`; a watchdog ends the wait after `timeout` seconds (the transport does not observe task
    /// cancellation, so the operation is raced against a timer: `onTimeout` closes what it uses, and a result
    /// that arrives after the timer won goes to `onLateSuccess`).
    private static func withDeadline<T: Sendable>(
        _ timeout: Double, onTimeout: (@Sendable () -> Void)? = nil, onLateSuccess: (@Sendable (T) -> Void)? = nil,
        _ operation: @escaping @Sendable () async throws(SentMailError) -> T
    ) async -> Result<T, SentMailError> {
        let gate = ResultGate<Result<T, SentMailError>>()
        let watchdog = Task {
            try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
            if Task.isCancelled { return }
            if gate.resolve(.failure(.copyFailed(reason: "the attempt took longer than \(Int(timeout)) seconds"))) {
                onTimeout?()
            }
        }
        let result = await withCheckedContinuation { continuation in
            gate.install(continuation)
            Task {
                do throws(SentMailError) {
                    let value = try await operation()
                    if !gate.resolve(.success(value)) { onLateSuccess?(value) }
                } catch {
                    gate.resolve(.failure(error))
                }
            }
        }
        watchdog.cancel()
        return result
    }

    // MARK: - Outcomes

    private func finish(_ job: SentCopyJob, _ outcome: SentCopyIMAPSession.Outcome) {
        let state: SentCopyState
        let counter: String
        switch outcome {
        case .made(let folder):
            state = .made
            counter = "sent_copy_made"
            logger.info(
                "Sent copy filed",
                metadata: [
                    "account": "\(job.account)", "folder": "\(sanitizeForLog(folder))",
                    "messageID": "\(sanitizeForLog(job.messageID))",
                ])
        case .skipped(let folder):
            state = .skipped
            counter = "sent_copy_skipped"
            logger.info(
                "Sent copy already in the Sent folder; nothing appended",
                metadata: [
                    "account": "\(job.account)", "folder": "\(sanitizeForLog(folder))",
                    "messageID": "\(sanitizeForLog(job.messageID))",
                ])
        case .found, .notFound:
            logger.error("The sent-copy search answered an attempt that asked for a copy")
            return
        }
        record(job, state: state, counter: counter)
        DurableFile.remove(SentCopyJob.messagePath(id: job.id, spool: spoolDirectory))
        jobs[job.id] = nil
        registry.remove(job.id)
    }

    /// A job found at start-up still waiting for the upstream's verdict (MailGate stopped between the final dot
    /// and the journal completion): the search of Sent settles the row. Exchange files what it sends, so found
    /// means sent (row `sent`, copy `skipped`); not found leaves the row `unknown` with a log line, and a copy is
    /// made only with `sent_copy = "always"` (`auto` trusts the server to file what it sent).
    private func settle(_ job: inout SentCopyJob, _ outcome: SentCopyIMAPSession.Outcome) {
        let found: Bool
        let folder: String
        switch outcome {
        case .found(let name), .skipped(let name):
            found = true
            folder = name
        case .notFound(let name), .made(let name):
            found = false
            folder = name
        }
        let always = SentCopyMode(rawValue: job.mode) == .always
        var counters = [CounterIncrement(found ? "messages_relayed" : "messages_fate_unknown", account: job.account, listener: job.listener)]
        if found {
            counters.append(CounterIncrement("bytes_relayed", account: job.account, listener: job.listener, amount: Int64(job.size)))
            counters.append(CounterIncrement("sent_copy_skipped", account: job.account, listener: job.listener))
        }
        let copyAnyway = !found && always
        do {
            if let sequence = job.journalSequence, try database.journalEntry(sequence: sequence)?.status == .pending {
                let reply =
                    found
                    ? "(settled at restart: MailGate stopped before recording the upstream's reply; the message was found in \(sanitizeForLog(folder)) by its Message-ID)"
                    : "(fate unknown: MailGate stopped before recording the upstream's reply, and \(sanitizeForLog(folder)) holds no message with its Message-ID)"
                try database.completeJournalEntry(
                    sequence: sequence, status: found ? .sent : .unknown, upstreamReply: reply,
                    sentCopyState: found ? .skipped : (copyAnyway ? .pending : .failed), counters: counters,
                    sentCopyJobChange: copyAnyway ? .queue(id: job.id) : .remove(id: job.id))
            } else {
                try database.finishSentCopyJob(
                    id: job.id, journalSequence: job.journalSequence,
                    sentCopyState: found ? .skipped : (copyAnyway ? .pending : .failed),
                    keep: copyAnyway ? try? job.unsettled().record(state: .queued) : nil)
            }
        } catch {
            logger.warning(
                "The settled fate of an interrupted message could not be recorded; it is searched again",
                metadata: ["account": "\(job.account)", "error": "\(error)"])
            job.nextAttemptAt = Date().timeIntervalSince1970 + (retryDelays.first ?? 5)
            jobs[job.id] = job
            return
        }
        let metadata: Logger.Metadata = [
            "account": "\(job.account)", "messageID": "\(sanitizeForLog(job.messageID))",
            "folder": "\(sanitizeForLog(folder))", "sequence": "\(job.journalSequence.map(String.init) ?? "-")",
        ]
        if found {
            logger.notice("Interrupted message found in the Sent folder: journaled as sent, no copy needed", metadata: metadata)
        } else if copyAnyway {
            logger.warning(
                "Interrupted message not in the Sent folder: its fate stays unknown; sent_copy = always, so MailGate files its copy",
                metadata: metadata)
        } else {
            logger.warning(
                "Interrupted message not in the Sent folder: its fate stays unknown and MailGate makes no copy (sent_copy = auto trusts the server to file what it sent); check with the recipients or `mailgate journal verify`",
                metadata: metadata)
        }
        if copyAnyway {
            let queued = job.unsettled()
            jobs[job.id] = queued
        } else {
            jobs[job.id] = nil
            registry.remove(job.id)
        }
    }

    private func fail(_ job: inout SentCopyJob, error: SentMailError) async {
        job.attempts += 1
        job.lastError = String(error.description.prefix(500))
        if job.resolveFate == true, let sequence = job.journalSequence {
            // The search that would settle an interrupted message failed: its row becomes `unknown` now, so it
            // does not hold back the chain; the search is retried and settles only the copy.
            do {
                if try database.journalEntry(sequence: sequence)?.status == .pending {
                    try database.completeJournalEntry(
                        sequence: sequence, status: .unknown,
                        upstreamReply: "(fate unknown: MailGate stopped before recording the upstream's reply, and the Sent folder could not be searched: \(String(error.description.prefix(300))))",
                        counters: [CounterIncrement("messages_fate_unknown", account: job.account, listener: job.listener)])
                }
            } catch {
                logger.warning(
                    "An interrupted journal row could not be marked unknown", metadata: ["error": "\(error.description)"])
            }
        }
        guard let delay = SentCopyDecision.retryDelay(afterFailedAttempts: job.attempts, delays: retryDelays) else {
            await giveUp(&job, reason: error.description)
            return
        }
        job.nextAttemptAt = Date().timeIntervalSince1970 + delay
        save(job)
        jobs[job.id] = job
        logger.notice(
            "Sent copy failed; it will be retried",
            metadata: [
                "account": "\(job.account)", "attempt": "\(job.attempts)", "retryIn": "\(Int(delay))s",
                "error": "\(error.description)",
            ])
    }

    private func giveUp(_ job: inout SentCopyJob, reason: String) async {
        job.gaveUp = true
        job.lastError = String(reason.prefix(500))
        jobs[job.id] = nil
        registry.remove(job.id)
        record(job, state: .failed, counter: "sent_copy_failed", keep: try? job.record(state: .gaveUp))
        logger.warning(
            "Sent copy given up; the message and its job stay in the spool for an administrator",
            metadata: [
                "account": "\(job.account)", "messageID": "\(sanitizeForLog(job.messageID))",
                "job": "\(job.id)", "error": "\(reason)",
            ])
    }

    private func save(_ job: SentCopyJob) {
        do throws(SentMailError) {
            try job.save(in: database, state: job.resolveFate == true ? .awaitingVerdict : .queued)
        } catch {
            logger.error("A sent-copy job could not be saved", metadata: ["error": "\(error.description)"])
        }
    }

    /// The journal's copy state (when journaled), the job removed (or kept as given up) and the counter, in one
    /// transaction.
    private func record(_ job: SentCopyJob, state: SentCopyState, counter: String, keep: SentCopyJobRecord? = nil) {
        do {
            try database.finishSentCopyJob(
                id: job.id, journalSequence: job.journalSequence, sentCopyState: state,
                counters: [CounterIncrement(counter, account: job.account, listener: job.listener)], keep: keep)
        } catch {
            logger.warning(
                "The sent-copy outcome could not be recorded",
                metadata: ["job": "\(job.id)", "error": "\(error.description)"])
        }
    }
}

/// Resolves a continuation once, from whichever of several racing tasks finishes first; also lets the loser
/// learn that it lost (the IMAP attempt closes its connection).
final class ResultGate<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: every field is read and written under `lock`.
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Value, Never>?
    private var resolved = false
    private var onResolve: [@Sendable () -> Void] = []

    func install(_ continuation: CheckedContinuation<Value, Never>) {
        lock.lock()
        self.continuation = continuation
        lock.unlock()
    }

    /// Runs `action` when the gate resolves (at once if it has).
    func whenResolved(_ action: @escaping @Sendable () -> Void) {
        lock.lock()
        if resolved {
            lock.unlock()
            action()
            return
        }
        onResolve.append(action)
        lock.unlock()
    }

    /// Resolves the gate with `value`; false when it was resolved already (the value is dropped).
    @discardableResult
    func resolve(_ value: Value) -> Bool {
        lock.lock()
        guard !resolved, let continuation else {
            lock.unlock()
            return false
        }
        resolved = true
        self.continuation = nil
        let actions = onResolve
        onResolve = []
        lock.unlock()
        continuation.resume(returning: value)
        for action in actions { action() }
        return true
    }
}

/// The queued jobs of this process by account and Message-ID, and which one is running: the part of the worker's
/// state that `cancelQueuedCopy` reads from an IMAP session's queue, without waiting for the actor.
final class SentCopyRegistry: @unchecked Sendable {
    // @unchecked Sendable: every field is read and written under `lock`.
    private struct Entry {
        var job: SentCopyJob
        var running = false
        var cancelled = false
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    func add(_ job: SentCopyJob) {
        lock.withLock {
            if entries[job.id] == nil { entries[job.id] = Entry(job: job) }
        }
    }

    func remove(_ id: String) {
        lock.withLock { _ = entries.removeValue(forKey: id) }
    }

    func isCancelled(_ id: String) -> Bool {
        lock.withLock { entries[id]?.cancelled ?? false }
    }

    /// Marks the job running; false when it was cancelled.
    func claim(_ id: String) -> Bool {
        lock.withLock {
            guard entries[id]?.cancelled != true else { return false }
            entries[id]?.running = true
            return true
        }
    }

    func release(_ id: String) {
        lock.withLock { entries[id]?.running = false }
    }

    /// Cancels the queued (not running) job of `messageID` for `accountEmail`; returns it, or nil.
    func cancel(accountEmail: String, messageID: String) -> SentCopyJob? {
        let account = accountEmail.lowercased()
        return lock.withLock {
            guard
                let (id, entry) = entries.first(where: {
                    $0.value.job.account.lowercased() == account && $0.value.job.messageID == messageID
                        && !$0.value.cancelled
                }), !entry.running
            else { return nil }
            entries[id]?.cancelled = true
            return entry.job
        }
    }
}
