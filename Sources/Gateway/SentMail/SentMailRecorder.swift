// Gateway/SentMail: the recorder every relayed message passes through: Message-ID, hash, spool, archive, journal,
// counters and the queued sent copy.

import Crypto
public import Dispatch
import Foundation
public import Logging
public import MailCore
import Policy
public import Store
import Transport

/// Records the messages an SMTP session relays (DESIGN.md §6): makes sure each has a Message-ID, hashes and
/// spools the exact bytes, journals and archives them when `lock_after_send` is on, and files a copy in the
/// account's Sent folder in the background.
///
/// One recorder per process; `begin` is called for each message by the SMTP sessions, on their own queues.
public final class SentMailRecorder: Sendable {
    let database: MailGateDatabase
    let stateDirectory: String
    /// `<state>/spool`: spill files, spooled messages and their job files.
    let spoolDirectory: String
    /// `<state>/archive`: the retained originals, `<aa>/<sha256>`.
    let archive: MessageArchive
    let limits: Limits
    let logger: Logger
    let autoFileDelay: Double
    let service: SentCopyService
    /// Crash-test windows and injected failures (inert unless a test sets them).
    let testHooks: SentMailTestHooks
    /// The one journal writer (group commit) every recording of this process goes through.
    let journalWriter: JournalWriter
    /// `MAILGATE_PROFILE_SMTP=1`: one log line per message with the time of each stage after the client's data.
    let profilesStages: Bool

    /// - Parameters:
    ///   - database: where the journal rows and counters go.
    ///   - stateDirectory: `state_dir`; `spool/` and `archive/` are made inside it (mode 0700).
    ///   - credentials: the XOAUTH2 identities for the sent copy's IMAP logins.
    ///   - copyRetryDelays: seconds between failed sent-copy attempts; when used up, the copy is given up (state
    ///     `failed`, job kept on disk, a warning logged).
    ///   - autoFileDelay: seconds `sent_copy = "auto"` waits after the send before searching the Sent folder, so
    ///     that Exchange has filed its own copy.
    public init(
        database: MailGateDatabase, stateDirectory: String, limits: Limits, credentials: any UpstreamCredentials,
        logger: Logger, copyRetryDelays: [Double] = [5, 30, 120, 600, 3600], autoFileDelay: Double = 3
    ) {
        self.database = database
        self.stateDirectory = stateDirectory
        self.spoolDirectory = stateDirectory + "/spool"
        self.archive = MessageArchive(directory: stateDirectory + "/archive")
        self.limits = limits
        self.logger = logger
        self.autoFileDelay = autoFileDelay
        let hooks = SentMailTestHooks()
        self.testHooks = hooks
        self.journalWriter = JournalWriter(database: database, archive: archive, logger: logger)
        self.profilesStages = ProcessInfo.processInfo.environment["MAILGATE_PROFILE_SMTP"] == "1"
        self.service = SentCopyService(
            spoolDirectory: spoolDirectory, archive: archive, database: database, credentials: credentials,
            logger: logger, retryDelays: copyRetryDelays, limits: limits, testHooks: hooks)
    }

    /// Starts the background sent-copy worker and re-queues every spooled copy left by an earlier run (the job
    /// files are read before this returns; the worker runs as a task).
    public func start() {
        do {
            try DurableFile.makeDirectory(spoolDirectory)
            try DurableFile.makeDirectory(archive.directory)
            try archive.makeFolders()
        } catch {
            logger.error("The sent-mail directories cannot be made", metadata: ["error": "\(error.description)"])
        }
        let jobs = SentCopyService.loadJobs(spoolDirectory: spoolDirectory, database: database, logger: logger)
        let service = self.service
        Task { await service.start(with: jobs) }
    }

    /// Stops the worker after the copy in flight, waiting at most `timeout` seconds. Blocks the calling thread:
    /// call it from a plain thread or queue (the signal handler's), never from async code — use `shutdown()`
    /// there. Unfinished copies stay in the spool for the next start.
    public func stop(timeout: Double = 30) {
        let service = self.service
        let stopped = DispatchSemaphore(value: 0)
        Task {
            await service.stop()
            stopped.signal()
        }
        if stopped.wait(timeout: .now() + timeout) == .timedOut {
            logger.warning("The sent-copy worker did not stop in time; its job stays in the spool")
        }
        journalWriter.flush()
    }

    /// Writes the counters the journal writer holds back (they are flushed every 2 s and at stop anyway).
    /// Blocks briefly; for tests and the drain.
    public func flushJournal() {
        journalWriter.flush()
    }

    /// `stop()` for async callers: returns once the copy in flight has ended.
    public func shutdown() async {
        await service.stop()
        let writer = journalWriter
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                writer.flush()
                done.resume()
            }
        }
    }

    /// Begins recording one message whose envelope the upstream accepted. `mailFrom` is the reverse path without
    /// brackets (empty for `<>`), `recipients` the accepted forward paths.
    public func begin(
        account: String, listener: String, mailFrom: String, recipients: [String], policy: SentMailPolicy
    ) -> MessageRecording {
        MessageRecording(
            recorder: self, account: account, listener: listener, mailFrom: mailFrom, recipients: recipients,
            policy: policy)
    }
}

/// One message on its way through an SMTP session: the bytes to forward, their hash and spool, and the journal
/// row that follows the upstream's verdict.
///
/// Call order: `append`* → `finishInput` → `prepareCommit` (before the final dot goes upstream) → `commit` (2xx)
/// or `abandon` (refused, or the connection died). `abandon` may come at any point. The receiving methods run on
/// the caller's serial queue; disk and database work runs on a private serial queue and reports back on the
/// queue the caller names.
public final class MessageRecording: @unchecked Sendable {
    // @unchecked Sendable: the receiving state is touched only on the session's queue until `finishInput`; what
    // `finishInput` fixes is never written again, and the commit state lives only on `work` (serial).

    private enum Phase { case receiving, finished, abandoned }
    private enum Verdict { case open, prepared, committed, abandoned }

    private let recorder: SentMailRecorder
    let account: String
    let listener: String
    let mailFrom: String
    let recipients: [String]
    let policy: SentMailPolicy
    private let receivedAt = Date()
    private let id: String
    private var injector: MessageIDInjector
    private let hasher = SHA256HasherBox()
    private let spool: MessageSpool
    private var phase = Phase.receiving
    private var sealed: SpooledMessage?
    private let work = DispatchQueue(label: "mailgate.sent-mail.recording")
    /// How a failed journal completion is retried (tests shorten it).
    var completionRetry = JournalCompletionRetry()
    /// On `work` only.
    private var verdict = Verdict.open
    /// On `work` only.
    private var journalSequence: Int64?
    /// The copy job stored with the pending row (lock-after-send with a copy to make); on `work` only.
    private var copyJob: SentCopyJob?
    /// Stage times for `MAILGATE_PROFILE_SMTP` (on `work`, or while `work` is suspended for the writer).
    private var stages = StageTimes()

    /// The Message-ID the relayed message carries (its own or the generated one); set by `finishInput`.
    public private(set) var messageID = ""
    /// Bytes forwarded upstream (after a Message-ID was added, if it was).
    public private(set) var size = 0
    /// Both, for the SMTP session's log line.
    public var logSummary: (messageID: String, size: Int) { (messageID, size) }
    /// SHA-256 of exactly the forwarded bytes, lowercase hex; set by `finishInput`.
    public private(set) var sha256Hex = ""

    init(
        recorder: SentMailRecorder, account: String, listener: String, mailFrom: String, recipients: [String],
        policy: SentMailPolicy
    ) {
        self.recorder = recorder
        self.account = account
        self.listener = listener
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.policy = policy
        self.id = MessageRecording.newID()
        self.injector = MessageIDInjector(generatedID: MessageID.generate(domain: policy.messageIDDomain))
        self.spool = MessageSpool(directory: recorder.spoolDirectory, id: id, memoryLimit: recorder.limits.spoolMemory)
    }

    deinit {
        spool.discard()  // removes a spill file nobody took over; closes an open one
    }

    // MARK: - Receiving (the session's queue)

    /// Takes un-stuffed message bytes as they arrive; returns the bytes to forward upstream now. The header block
    /// is held back (at most 256 KiB) until its end to decide whether a Message-ID must be added; when it is
    /// missing, `Message-ID: <generated>` CRLF goes at the top. Exactly the returned bytes are hashed and spooled.
    public func append(_ bytes: [UInt8]) throws(SentMailError) -> [UInt8] {
        guard phase == .receiving else { throw .invalidUse("append after the end of the message") }
        let out = injector.append(bytes)
        try take(out)
        return out
    }

    /// End of client data: returns what is still held back (forward it before the final dot).
    public func finishInput() throws(SentMailError) -> [UInt8] {
        guard phase == .receiving else { throw .invalidUse("finishInput twice or after abandon") }
        let out = injector.finish()
        try take(out)
        sealed = spool.seal()
        sha256Hex = hasher.finalizeHex()
        messageID = injector.messageID ?? injector.generatedID
        phase = .finished
        stages.inputEnd = StageTimes.now()
        return out
    }

    private func take(_ bytes: [UInt8]) throws(SentMailError) {
        guard !bytes.isEmpty else { return }
        guard size + bytes.count <= recorder.limits.messageSize else {
            throw .messageTooLarge(actualCount: size + bytes.count, maximumCount: recorder.limits.messageSize)
        }
        hasher.update(bytes)
        try spool.write(bytes)
        size += bytes.count
    }

    // MARK: - Verdict (off the session's queue)

    /// Before the final dot goes upstream: with `lockAfterSend`, stores the archive file
    /// `<state>/archive/<aa>/<sha256>` (write, fsync, rename, fsync of the directory) and inserts the pending
    /// journal row, so a crash from here on leaves a row whose fate `journal verify` reports. Runs off the
    /// caller's queue; `completion` is called on `queue`.
    public func prepareCommit(on queue: DispatchQueue, completion: @escaping (Result<Void, SentMailError>) -> Void) {
        guard phase == .finished, let sealed else {
            let done = UncheckedSendable(completion)
            queue.async { done.value(.failure(.invalidUse("prepareCommit before finishInput or after abandon"))) }
            return
        }
        let done = UncheckedSendable(completion)
        work.async { [self] in
            prepare(sealed) { result in queue.async { done.value(result) } }
        }
    }

    /// The upstream said 2xx: completes the journal row (status sent, the reply) in the same transaction as the
    /// counters `messages_relayed` and `bytes_relayed`, then queues the sent copy (the spooled message and its job
    /// file are saved in `<state>/spool/` first, so it survives a restart). `completion` on `queue`; only then may
    /// the client get its 250. A failure means the journal could not record the send (the message *was* sent).
    public func commit(
        upstreamReply: String, on queue: DispatchQueue, completion: @escaping (Result<Void, SentMailError>) -> Void
    ) {
        guard phase == .finished, let sealed else {
            let done = UncheckedSendable(completion)
            queue.async { done.value(.failure(.invalidUse("commit before finishInput or after abandon"))) }
            return
        }
        let done = UncheckedSendable(completion)
        work.async { [self] in
            stages.commitCalled = StageTimes.now()
            finalize(sealed, upstreamReply: upstreamReply) { result in queue.async { done.value(result) } }
        }
    }

    /// The upstream refused (4xx/5xx: status `failed`, counted by the reply code at the start of `reason`), or the
    /// connection died before a reply (`fateUnknown: true` → status `unknown`, which `journal verify` reports).
    /// Nothing is journaled as sent; the spool is removed.
    public func abandon(reason: String, fateUnknown: Bool) {
        if phase == .receiving { sealed = spool.seal() }
        phase = .abandoned
        let spooled = sealed
        work.async { [self] in
            guard verdict != .committed && verdict != .abandoned else { return }
            verdict = .abandoned
            var counters: [CounterIncrement] = []
            if fateUnknown {
                counters.append(counter("messages_fate_unknown"))
            } else if let name = Self.rejectionCounter(reason) {
                counters.append(counter(name))
            }
            let database = recorder.database
            let change = copyJob.map { SentCopyJobChange.remove(id: $0.id) }
            copyJob = nil
            let removeSpool = { if case .file(let path)? = spooled { DurableFile.remove(path) } }
            guard let sequence = journalSequence else {
                if !counters.isEmpty {
                    // Waited for (on the writer, with this queue suspended, no thread held): a refusal is rare.
                    awaitWriter(.counters(counters)) { outcome in
                        if case .failure(let error) = outcome.result {
                            self.recorder.logger.error(
                                "The refusal counters could not be written", metadata: ["error": "\(error)"])
                        }
                    }
                }
                removeSpool()
                return
            }
            let status: JournalStatus = fateUnknown ? .unknown : .failed
            let reply = sanitizeForLog(reason, maximumLength: 1_000)
            let completion = JournalCompletion(
                sequence: sequence, status: status, upstreamReply: reply, sentCopyState: .disabled,
                counters: counters, sentCopyJobChange: change)
            awaitWriter(.complete(completion)) { [self] outcome in
                if case .failure(let error) = outcome.result {
                    recorder.logger.error(
                        "The journal could not record an abandoned message; retrying",
                        metadata: ["account": "\(account)", "error": "\(error)"])
                    retryCompletion(sequence: sequence) { () throws(StoreError) in
                        try database.completeJournalEntry(
                            sequence: sequence, status: status, upstreamReply: reply, sentCopyState: .disabled,
                            counters: counters, sentCopyJobChange: change)
                    }
                }
                removeSpool()
            }
        }
    }

    /// Hands `work` to the journal writer and suspends this recording's queue until it is durable: `then` runs
    /// (on the writer's queue, while `work` is suspended, so it may touch the queue's state) before anything
    /// queued behind. No thread waits meanwhile.
    private func awaitWriter(_ work: JournalWriter.Work, then: @escaping (JournalWriter.Outcome) -> Void) {
        self.work.suspend()
        recorder.journalWriter.submit(work) { [self] outcome in
            then(outcome)
            self.work.resume()
        }
    }

    // MARK: - Work queue

    /// On `work`: with `lockAfterSend`, archives the message and inserts the pending row through the journal
    /// writer (group commit); `then` gets the result.
    private func prepare(_ sealed: SpooledMessage, then: @escaping (Result<Void, SentMailError>) -> Void) {
        dispatchPrecondition(condition: .onQueue(work))
        guard verdict == .open else {
            then(verdict == .prepared ? .success(()) : .failure(.invalidUse("prepareCommit after the verdict")))
            return
        }
        guard policy.lockAfterSend else {
            verdict = .prepared
            then(.success(()))
            return
        }
        stages.prepareStart = StageTimes.now()
        // The copy job goes into the pending row's own transaction and reads the archived bytes: a crash from
        // here on leaves a job whose fate the next start settles, and the message is written once.
        var record: SentCopyJobRecord?
        if SentCopyDecision.needsJob(mode: policy.sentCopy, hasIMAPEndpoint: policy.imap != nil), let imap = policy.imap {
            var job = makeJob(endpoint: imap)
            job.inArchive = true
            do throws(SentMailError) {
                record = try job.record(state: .awaitingVerdict)
            } catch {
                then(.failure(error))
                return
            }
            copyJob = job
        }
        let insert = JournalPendingInsert(
            accountEmail: account, listener: listener, mailFrom: mailFrom, rcptTo: recipients, messageID: messageID,
            size: Int64(size), sha256: sha256Hex, sentCopyState: record != nil ? .pending : .disabled,
            createdAt: receivedAt, sentCopyJob: record)
        let item = MessageArchive.BatchItem(message: sealed, sha256: sha256Hex, size: size)
        awaitWriter(.prepare(item, insert)) { [self] outcome in
            stages.prepareDone = StageTimes.now()
            stages.archiveSeconds = outcome.archiveSeconds
            stages.insertSeconds = outcome.databaseSeconds
            stages.prepareBatch = outcome.batchSize
            switch outcome.result {
            case .success(let sequence):
                journalSequence = sequence
                copyJob?.journalSequence = sequence
                verdict = .prepared
                then(.success(()))
            case .failure(let error):
                copyJob = nil
                then(.failure(error))
            }
        }
    }

    /// On `work`: the upstream's 2xx. Completes the row through the journal writer (or, without a row, hands the
    /// counters to it without waiting), then calls `reply`.
    private func finalize(
        _ sealed: SpooledMessage, upstreamReply: String, reply: @escaping (Result<Void, SentMailError>) -> Void
    ) {
        dispatchPrecondition(condition: .onQueue(work))
        if verdict == .open {
            // The caller skipped prepareCommit: journal now rather than not at all.
            prepare(sealed) { [self] result in
                if case .failure(let error) = result {
                    reply(.failure(error))
                    return
                }
                let boxed = UncheckedSendable(reply)
                work.async { self.finalizePrepared(sealed, upstreamReply: upstreamReply, reply: boxed.value) }
            }
            return
        }
        finalizePrepared(sealed, upstreamReply: upstreamReply, reply: reply)
    }

    private func finalizePrepared(
        _ sealed: SpooledMessage, upstreamReply: String, reply: @escaping (Result<Void, SentMailError>) -> Void
    ) {
        guard verdict == .prepared else {
            reply(.failure(.invalidUse("commit after the verdict")))
            return
        }
        verdict = .committed
        recorder.testHooks.holdAfterUpstreamReply()
        let logger = recorder.logger
        let counters = [counter("messages_relayed"), counter("bytes_relayed", amount: Int64(size))]
        let text = sanitizeForLog(upstreamReply, maximumLength: 1_000)
        if let sequence = journalSequence {
            // Journaled: the bytes are archived and the job (if any) is stored with the row; the completion
            // makes it due in the same transaction. The copy state was set at the insert; leaving it alone here
            // means a retried completion cannot overwrite what the copy worker recorded meanwhile.
            if case .file(let path) = sealed { DurableFile.remove(path) }
            let change = copyJob.map { SentCopyJobChange.queue(id: $0.id) }
            let database = recorder.database
            let completion = JournalCompletion(
                sequence: sequence, status: .sent, upstreamReply: text, counters: counters, sentCopyJobChange: change)
            awaitWriter(.complete(completion)) { [self] outcome in
                var result: Result<Void, SentMailError> = .success(())
                if case .failure(let error) = outcome.result {
                    logger.error(
                        "The journal could not record a sent message; retrying",
                        metadata: ["account": "\(account)", "error": "\(error)"])
                    result = .failure(error)
                    retryCompletion(sequence: sequence) { () throws(StoreError) in
                        try database.completeJournalEntry(
                            sequence: sequence, status: .sent, upstreamReply: text, counters: counters,
                            sentCopyJobChange: change)
                    }
                }
                if let job = copyJob { recorder.service.enqueueSaved(job) }
                stages.completeDone = StageTimes.now()
                stages.completeSeconds = outcome.databaseSeconds
                stages.completeBatch = outcome.batchSize
                if recorder.profilesStages { logger.notice("SMTP stage profile", metadata: stages.metadata()) }
                reply(result)
            }
            return
        }
        // Without a row nothing is promised about the counters: they wait in memory for the writer's next batch.
        recorder.journalWriter.count(counters)
        if SentCopyDecision.needsJob(mode: policy.sentCopy, hasIMAPEndpoint: policy.imap != nil), let imap = policy.imap
        {
            persistJob(sealed, job: makeJob(endpoint: imap), attempt: 1)
        } else if case .file(let path) = sealed {
            DurableFile.remove(path)
        }
        reply(.success(()))
    }

    /// Retries a failed completion of the pending row `sequence` in the background (the client already has its
    /// answer), so one failed update does not leave the chain stalled until the next restart.
    private func retryCompletion(sequence: Int64, _ complete: @escaping () throws(StoreError) -> Void) {
        let logger = recorder.logger
        let account = account
        completionRetry.run(on: work, complete) { attempts, lastError in
            if let lastError {
                logger.error(
                    "The journal row stays pending: its completion failed \(attempts) times; the next start marks it unknown",
                    metadata: ["account": "\(account)", "sequence": "\(sequence)", "error": "\(lastError)"])
            } else {
                logger.notice(
                    "The journal row was completed on retry", metadata: ["sequence": "\(sequence)", "attempts": "\(attempts)"])
            }
        }
    }

    /// Without a journal row: moves the spooled bytes to `<spool>/<id>.eml` (fsynced), stores the job as queued
    /// and hands it to the worker. A failure (disk full, database locked) is retried with the completion's
    /// back-off — the spooled bytes are kept meanwhile — rather than leaving the message without a copy for ever.
    private func persistJob(_ sealed: SpooledMessage, job: SentCopyJob, attempt: Int) {
        dispatchPrecondition(condition: .onQueue(work))
        let spoolDirectory = recorder.spoolDirectory
        let path = SentCopyJob.messagePath(id: job.id, spool: spoolDirectory)
        do throws(SentMailError) {
            try recorder.testHooks.failPersist()
            try DurableFile.makeDirectory(spoolDirectory)
            switch sealed {
            case .memory(let bytes):
                if !DurableFile.exists(path) { try DurableFile.writeAtomically(bytes, to: path) }
            case .file(let partPath):
                if DurableFile.exists(partPath) {
                    try DurableFile.syncFile(partPath)
                    try DurableFile.rename(partPath, to: path)
                    try DurableFile.syncDirectory(spoolDirectory)
                }
            }
            try job.save(in: recorder.database, state: .queued)
            if attempt > 1 {
                recorder.logger.notice(
                    "The sent copy was queued on retry", metadata: ["account": "\(account)", "attempts": "\(attempt)"])
            }
            recorder.service.enqueueSaved(job)
        } catch {
            let retry = completionRetry
            guard attempt < retry.maximumAttempts else {
                recorder.logger.error(
                    "The sent copy could not be queued after \(attempt) attempts; the message was sent but gets no copy",
                    metadata: [
                        "account": "\(account)", "messageID": "\(sanitizeForLog(messageID))",
                        "error": "\(error.description)",
                    ])
                if case .file(let partPath) = sealed { DurableFile.remove(partPath) }
                return
            }
            recorder.logger.warning(
                "The sent copy could not be queued; retrying",
                metadata: ["account": "\(account)", "attempt": "\(attempt)", "error": "\(error.description)"])
            work.asyncAfter(deadline: .now() + retry.delay(beforeAttempt: attempt)) { [self] in
                persistJob(sealed, job: job, attempt: attempt + 1)
            }
        }
    }

    /// The job for this message (not yet stored).
    private func makeJob(endpoint: UpstreamEndpoint) -> SentCopyJob {
        let now = Date().timeIntervalSince1970
        return SentCopyJob(
            id: id, account: account, listener: listener, messageID: messageID, journalSequence: journalSequence,
            sha256: sha256Hex, size: size, mode: policy.sentCopy.rawValue, sentFolder: policy.sentFolder,
            imapHost: endpoint.address.host, imapPort: endpoint.address.port, imapSecurity: endpoint.security.rawValue,
            caFile: endpoint.caFile, sentAt: now, attempts: 0,
            nextAttemptAt: now + (policy.sentCopy == .auto ? recorder.autoFileDelay : 0), lastError: nil, gaveUp: false)
    }

    private func counter(_ name: String, amount: Int64 = 1) -> CounterIncrement {
        CounterIncrement(name, account: account, listener: listener, amount: amount)
    }

    /// `upstream_rejected_4xx` / `_5xx` from the reply code that starts `reason`, if any.
    static func rejectionCounter(_ reason: String) -> String? {
        let digits = Array(reason.utf8.prefix(4))
        guard digits.count >= 3, (0x34...0x35).contains(digits[0]), (0x30...0x39).contains(digits[1]),
            (0x30...0x39).contains(digits[2]), digits.count == 3 || digits[3] == 0x20 || digits[3] == 0x2D
        else { return nil }
        return digits[0] == 0x34 ? "upstream_rejected_4xx" : "upstream_rejected_5xx"
    }

    private static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt32, radix: 16) }.map {
            String(repeating: "0", count: 8 - $0.count) + $0
        }.joined()
    }

    // MARK: - Test hooks

    /// The most bytes the spool ever held in memory.
    var spoolMemoryHighWater: Int { spool.memoryHighWater }
    /// Where the bytes are once `finishInput` ran.
    var spooledMessage: SpooledMessage? { sealed }
    /// The journal row, once `prepareCommit` inserted it.
    var pendingJournalSequence: Int64? { work.sync { journalSequence } }
    /// The spool file id.
    var spoolID: String { id }
}

/// `SHA256Hasher` behind a tiny wrapper so the recording can keep it as a `let`.
final class SHA256HasherBox {
    private let hasher = SHA256Hasher()
    func update(_ bytes: [UInt8]) { hasher.update(bytes) }
    func finalizeHex() -> String { SHA256.hexString(hasher.finalize()) }
}

/// Carries a non-Sendable value (a completion closure) to the queue that will call it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    // @unchecked Sendable: the value is handed from one queue to the next, never used on two at once.
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// When each stage after the client's final dot ended (`MAILGATE_PROFILE_SMTP=1`), in nanoseconds of uptime.
struct StageTimes {
    var inputEnd: UInt64 = 0
    var prepareStart: UInt64 = 0
    var prepareDone: UInt64 = 0
    var commitCalled: UInt64 = 0
    var completeDone: UInt64 = 0
    var archiveSeconds = 0.0
    var insertSeconds = 0.0
    var completeSeconds = 0.0
    var prepareBatch = 0
    var completeBatch = 0

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private static func milliseconds(_ from: UInt64, _ to: UInt64) -> String {
        guard from > 0, to >= from else { return "-" }
        return String(format: "%.3f", Double(to - from) / 1e6)
    }

    /// dot→prepare (queue hop), prepare (archive + insert, of which archive and insert batch times), prepared→
    /// commit called (the final dot upstream and its reply, plus two queue hops), commit (completion), total.
    func metadata() -> Logger.Metadata {
        [
            "toPrepareMs": "\(Self.milliseconds(inputEnd, prepareStart))",
            "prepareMs": "\(Self.milliseconds(prepareStart, prepareDone))",
            "archiveMs": "\(String(format: "%.3f", archiveSeconds * 1e3))",
            "insertMs": "\(String(format: "%.3f", insertSeconds * 1e3))",
            "prepareBatch": "\(prepareBatch)",
            "upstreamMs": "\(Self.milliseconds(prepareDone, commitCalled))",
            "completeMs": "\(Self.milliseconds(commitCalled, completeDone))",
            "completeDbMs": "\(String(format: "%.3f", completeSeconds * 1e3))",
            "completeBatch": "\(completeBatch)",
            "totalMs": "\(Self.milliseconds(inputEnd, completeDone))",
        ]
    }
}
