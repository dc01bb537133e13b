// Gateway/SentMail: the background worker that files sent messages in the Sent folder, with retries from the spool.

import Foundation
import Logging
import MailCore
import Policy
import Store

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

    init(
        spoolDirectory: String, archive: MessageArchive, database: MailGateDatabase,
        credentials: any UpstreamCredentials, logger: Logger, retryDelays: [Double], limits: Limits,
        attemptTimeout: Double = 600
    ) {
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

    /// Reads every job file left in the spool (gave-up jobs are logged and left alone) and removes spill files of
    /// messages that never got the upstream's 250: their fate is in the journal and, with lock-after-send, their
    /// bytes in the archive; nothing waits for them.
    nonisolated static func loadJobs(spoolDirectory: String, logger: Logger) -> [SentCopyJob] {
        var jobs: [SentCopyJob] = []
        for name in DurableFile.list(spoolDirectory) where name.hasSuffix(".job.json") {
            let path = spoolDirectory + "/" + name
            do {
                let job = try SentCopyJob.load(path: path)
                if job.gaveUp {
                    logger.warning(
                        "A sent copy was given up earlier and is kept for an administrator",
                        metadata: [
                            "job": "\(path)", "account": "\(job.account)",
                            "messageID": "\(sanitizeForLog(job.messageID))",
                        ])
                    continue
                }
                jobs.append(job)
            } catch {
                logger.warning(
                    "A sent-copy job file cannot be read; it is left in place", metadata: ["error": "\(error)"])
            }
        }
        for name in DurableFile.list(spoolDirectory) where name.hasSuffix(".eml.part") {
            DurableFile.remove(spoolDirectory + "/" + name)
        }
        if !jobs.isEmpty {
            logger.info("Sent copies waiting from an earlier run", metadata: ["count": "\(jobs.count)"])
        }
        return jobs
    }

    /// Queues `loaded` (from `loadJobs`) and starts the loop.
    func start(with loaded: [SentCopyJob]) {
        guard loop == nil else { return }
        stopping = false
        for job in loaded where jobs[job.id] == nil { jobs[job.id] = job }
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

    /// Adds a job (already saved on disk) and wakes the loop.
    func enqueue(_ job: SentCopyJob) {
        jobs[job.id] = job
        wake()
    }

    /// The jobs still queued (not given up), for tests and `stats`.
    var queuedJobs: [SentCopyJob] { Array(jobs.values) }

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
        while !stopping {
            let now = Date().timeIntervalSince1970
            if let job = jobs.values.filter({ $0.nextAttemptAt <= now }).min(by: { $0.nextAttemptAt < $1.nextAttemptAt }
            ) {
                await attempt(job)
                continue
            }
            let next = jobs.values.map(\.nextAttemptAt).min()
            await sleep(seconds: next.map { max(0.005, $0 - now) } ?? 3_600)
        }
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
        attemptCount += 1
        guard var endpoint = job.endpoint else {
            await giveUp(&job, reason: "the job names no usable IMAP endpoint")
            return
        }
        if let endpointRewrite { endpoint = endpointRewrite(endpoint) }
        let messagePath = SentCopyJob.messagePath(id: job.id, spool: spoolDirectory)
        let archived = archive.path(sha256: job.sha256)
        let source: SpooledMessage
        if DurableFile.exists(messagePath) {
            source = .file(path: messagePath)
        } else if DurableFile.exists(archived) {
            source = .file(path: archived)
        } else {
            await giveUp(&job, reason: "the spooled message \(messagePath) is missing and there is no archived copy")
            return
        }
        let result = await Self.copyWithDeadline(
            job: job, message: source, endpoint: endpoint, credentials: credentials, limits: limits,
            timeout: attemptTimeout)
        switch result {
        case .success(let outcome):
            finish(job, outcome)
        case .failure(let error):
            await fail(&job, error: error)
        }
    }

    /// Runs one IMAP attempt; a watchdog ends it after `timeout` seconds (the transport does not observe task
    /// cancellation, so the attempt is raced against a timer and abandoned when the timer wins).
    private static func copyWithDeadline(
        job: SentCopyJob, message: SpooledMessage, endpoint: UpstreamEndpoint, credentials: any UpstreamCredentials,
        limits: Limits, timeout: Double
    ) async -> Result<SentCopyIMAPSession.Outcome, SentMailError> {
        let gate = ResultGate<Result<SentCopyIMAPSession.Outcome, SentMailError>>()
        return await withCheckedContinuation { continuation in
            gate.install(continuation)
            Task {
                do throws(SentMailError) {
                    let outcome = try await SentCopyIMAPSession.copy(
                        job: job, message: message, endpoint: endpoint, credentials: credentials, limits: limits,
                        deadline: gate)
                    gate.resolve(.success(outcome))
                } catch {
                    gate.resolve(.failure(error))
                }
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
                gate.resolve(.failure(.copyFailed(reason: "the attempt took longer than \(Int(timeout)) seconds")))
            }
        }
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
        }
        record(job, state: state, counter: counter)
        DurableFile.remove(SentCopyJob.jobPath(id: job.id, spool: spoolDirectory))
        DurableFile.remove(SentCopyJob.messagePath(id: job.id, spool: spoolDirectory))
        jobs[job.id] = nil
    }

    private func fail(_ job: inout SentCopyJob, error: SentMailError) async {
        job.attempts += 1
        job.lastError = String(error.description.prefix(500))
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
        save(job)
        jobs[job.id] = nil
        record(job, state: .failed, counter: "sent_copy_failed")
        logger.warning(
            "Sent copy given up; the message and its job stay in the spool for an administrator",
            metadata: [
                "account": "\(job.account)", "messageID": "\(sanitizeForLog(job.messageID))",
                "job": "\(SentCopyJob.jobPath(id: job.id, spool: spoolDirectory))", "error": "\(reason)",
            ])
    }

    private func save(_ job: SentCopyJob) {
        do {
            try job.save(spool: spoolDirectory)
        } catch {
            logger.error("A sent-copy job could not be saved", metadata: ["error": "\(error.description)"])
        }
    }

    /// The journal's copy state (when journaled) and the counter.
    private func record(_ job: SentCopyJob, state: SentCopyState, counter: String) {
        if let sequence = job.journalSequence {
            do {
                try database.updateSentCopyState(sequence: sequence, state: state)
            } catch {
                logger.warning(
                    "The journal's sent-copy state could not be updated",
                    metadata: ["sequence": "\(sequence)", "error": "\(error.description)"])
            }
        }
        do {
            try database.increment([CounterIncrement(counter, account: job.account, listener: job.listener)])
        } catch {
            logger.warning("A counter could not be written", metadata: ["error": "\(error.description)"])
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

    func resolve(_ value: Value) {
        lock.lock()
        guard !resolved, let continuation else {
            lock.unlock()
            return
        }
        resolved = true
        self.continuation = nil
        let actions = onResolve
        onResolve = []
        lock.unlock()
        continuation.resume(returning: value)
        for action in actions { action() }
    }
}
