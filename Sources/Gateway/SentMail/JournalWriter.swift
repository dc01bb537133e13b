// Gateway/SentMail: the one journal writer: group commit of archive files and journal rows for concurrent messages.

import Dispatch
import Foundation
import Logging
import Store

/// Writes the lock-after-send journal for every session of the process, on one queue, with group commit.
///
/// Each request (a pending row with its archive file, a completion, counters) waits in a list; the writer takes
/// everything that arrived while its previous batch was on disk and makes it durable together: all archive files
/// written, fsynced, their folders fsynced once, then all rows in one SQLite transaction (one WAL fsync). So ten
/// concurrent messages cost about one round of fsyncs, not ten, and each caller is answered only once its own
/// row is durable. No thread waits per message: callers suspend their own serial queue, never block in fsync.
final class JournalWriter: @unchecked Sendable {
    // @unchecked Sendable: `waiting`, `running`, `heldCounters` and `flushScheduled` are guarded by `lock`; the
    // batch itself runs only on `queue` (serial).

    /// What one request asks for.
    enum Work {
        /// Archive `item` (when lock-after-send keeps the original), then insert the pending row.
        case prepare(MessageArchive.BatchItem, JournalPendingInsert)
        /// Complete a pending row.
        case complete(JournalCompletion)
        /// Counters the caller waits for (a refusal without a row).
        case counters([CounterIncrement])
    }

    /// What the writer did for one request, and how long its batch took (for the stage profile).
    struct Outcome {
        /// The new sequence for `.prepare`, nil for `.complete`.
        let result: Result<Int64?, SentMailError>
        let archiveSeconds: Double
        let databaseSeconds: Double
        let batchSize: Int
    }

    private struct Request {
        let work: Work
        let done: (Outcome) -> Void
    }

    private let database: MailGateDatabase
    private let archive: MessageArchive
    private let logger: Logger
    private let queue = DispatchQueue(label: "mailgate.journal-writer", qos: .userInitiated)
    private let lock = NSLock()
    private var waiting: [Request] = []
    private var running = false
    /// Counters nobody waits for (relays without lock-after-send): they ride along with the next batch, or are
    /// written by themselves after `counterDelay` seconds (and at `flush()`).
    private var heldCounters: [CounterIncrement] = []
    private var flushScheduled = false
    let counterDelay: Double

    /// The most requests one batch ever held (tests and the profile).
    private(set) var largestBatch = 0

    init(database: MailGateDatabase, archive: MessageArchive, logger: Logger, counterDelay: Double = 2) {
        self.database = database
        self.archive = archive
        self.logger = logger
        self.counterDelay = counterDelay
    }

    /// Queues `work`; `done` is called on the writer's queue once it is durable (or failed). Keep `done` short:
    /// the next batch waits for it.
    func submit(_ work: Work, done: @escaping (Outcome) -> Void) {
        let start = lock.withLock { () -> Bool in
            waiting.append(Request(work: work, done: done))
            if running { return false }
            running = true
            return true
        }
        if start { queue.async { self.drain() } }
    }

    /// Adds counters that need not be durable before anybody's reply (at most `counterDelay` seconds of them are
    /// lost in a crash, like the session counters).
    func count(_ counters: [CounterIncrement]) {
        guard !counters.isEmpty else { return }
        let schedule = lock.withLock { () -> Bool in
            heldCounters += counters
            if flushScheduled || running { return false }
            flushScheduled = true
            return true
        }
        if schedule {
            queue.asyncAfter(deadline: .now() + counterDelay) { self.flushHeldCounters() }
        }
    }

    /// Writes the held counters now and waits for every queued request (the drain at stop). Blocks: never call
    /// it from the writer's own queue.
    func flush() {
        queue.sync {}
        flushHeldCounters()
        queue.sync {}
    }

    private func flushHeldCounters() {
        let counters = lock.withLock { () -> [CounterIncrement] in
            flushScheduled = false
            let taken = heldCounters
            heldCounters = []
            return taken
        }
        guard !counters.isEmpty else { return }
        do {
            try database.increment(counters)
        } catch {
            logger.error("The relay counters could not be written", metadata: ["error": "\(error)"])
        }
    }

    /// On `queue`: runs batches until nothing waits.
    private func drain() {
        while true {
            let (batch, counters, needsTimer) = lock.withLock { () -> ([Request], [CounterIncrement], Bool) in
                let taken = waiting
                waiting = []
                if taken.isEmpty {
                    running = false
                    // Counters that arrived during the last batch (`count` schedules no timer while running).
                    let timer = !heldCounters.isEmpty && !flushScheduled
                    if timer { flushScheduled = true }
                    return (taken, [], timer)
                }
                let held = heldCounters
                heldCounters = []
                return (taken, held, false)
            }
            if needsTimer { queue.asyncAfter(deadline: .now() + counterDelay) { self.flushHeldCounters() } }
            if batch.isEmpty { return }
            largestBatch = max(largestBatch, batch.count)
            run(batch, counters: counters)
        }
    }

    private func run(_ batch: [Request], counters: [CounterIncrement]) {
        let started = DispatchTime.now().uptimeNanoseconds
        // 1. Archive files of every prepare, with one round of fsyncs.
        var items: [MessageArchive.BatchItem] = []
        var itemIndex: [Int: Int] = [:]
        for (index, request) in batch.enumerated() {
            if case .prepare(let item, _) = request.work {
                itemIndex[index] = items.count
                items.append(item)
            }
        }
        let archived = items.isEmpty ? [] : archive.storeBatch(items)
        let afterArchive = DispatchTime.now().uptimeNanoseconds
        // 2. Every row whose archive is durable, in one transaction.
        var results = [Result<Int64?, SentMailError>?](repeating: nil, count: batch.count)
        var operations: [JournalBatchOperation] = []
        var operationOwner: [Int] = []
        for (index, request) in batch.enumerated() {
            switch request.work {
            case .prepare(_, let insert):
                if case .failure(let error) = archived[itemIndex[index]!] {
                    results[index] = .failure(error)
                    continue
                }
                operations.append(.insertPending(insert))
            case .complete(let completion):
                operations.append(.complete(completion))
            case .counters(let counters):
                operations.append(.count(counters))
            }
            operationOwner.append(index)
        }
        if !counters.isEmpty { operations.append(.count(counters)) }
        if !operations.isEmpty {
            do {
                let stored = try database.applyJournalBatch(operations)
                for (slot, result) in zip(operationOwner, stored) {
                    results[slot] = result.mapError { .journalFailed(reason: "\($0)") }
                }
                if let last = stored.last, !counters.isEmpty, case .failure(let error) = last {
                    logger.error("The relay counters could not be written", metadata: ["error": "\(error)"])
                }
            } catch {
                for slot in operationOwner { results[slot] = .failure(.journalFailed(reason: "\(error)")) }
                if !counters.isEmpty {
                    logger.error("The relay counters could not be written", metadata: ["error": "\(error)"])
                }
            }
        }
        let finished = DispatchTime.now().uptimeNanoseconds
        let archiveSeconds = Double(afterArchive - started) / 1e9
        let databaseSeconds = Double(finished - afterArchive) / 1e9
        for (index, request) in batch.enumerated() {
            request.done(
                Outcome(
                    result: results[index] ?? .failure(.invalidUse("journal batch left a request unanswered")),
                    archiveSeconds: archiveSeconds, databaseSeconds: databaseSeconds, batchSize: batch.count))
        }
    }
}
