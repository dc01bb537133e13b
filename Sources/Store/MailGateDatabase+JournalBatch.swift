// Store: group commit for the sent journal: the rows of several concurrent messages in one transaction.
public import Foundation
internal import GRDB

/// A pending journal row to insert (before the message's final dot goes upstream).
public struct JournalPendingInsert: Sendable {
    public var accountEmail: String
    public var listener: String
    public var mailFrom: String
    public var rcptTo: [String]
    public var messageID: String
    public var size: Int64
    public var sha256: String
    public var sentCopyState: SentCopyState
    public var createdAt: Date
    /// Stored in the same transaction, pointing at the new row.
    public var sentCopyJob: SentCopyJobRecord?

    public init(
        accountEmail: String, listener: String, mailFrom: String, rcptTo: [String], messageID: String, size: Int64,
        sha256: String, sentCopyState: SentCopyState = .pending, createdAt: Date = Date(),
        sentCopyJob: SentCopyJobRecord? = nil
    ) {
        self.accountEmail = accountEmail
        self.listener = listener
        self.mailFrom = mailFrom
        self.rcptTo = rcptTo
        self.messageID = messageID
        self.size = size
        self.sha256 = sha256
        self.sentCopyState = sentCopyState
        self.createdAt = createdAt
        self.sentCopyJob = sentCopyJob
    }
}

/// The upstream's verdict on a pending row, with the counters and copy-job change that go with it.
public struct JournalCompletion: Sendable {
    public var sequence: Int64
    public var status: JournalStatus
    public var upstreamReply: String?
    public var sentCopyState: SentCopyState?
    public var counters: [CounterIncrement]
    public var completedAt: Date
    public var sentCopyJobChange: SentCopyJobChange?

    public init(
        sequence: Int64, status: JournalStatus, upstreamReply: String?, sentCopyState: SentCopyState? = nil,
        counters: [CounterIncrement] = [], completedAt: Date = Date(), sentCopyJobChange: SentCopyJobChange? = nil
    ) {
        self.sequence = sequence
        self.status = status
        self.upstreamReply = upstreamReply
        self.sentCopyState = sentCopyState
        self.counters = counters
        self.completedAt = completedAt
        self.sentCopyJobChange = sentCopyJobChange
    }
}

/// One step of a group commit.
public enum JournalBatchOperation: Sendable {
    case insertPending(JournalPendingInsert)
    case complete(JournalCompletion)
    /// Counters nobody waits for, riding along with the batch.
    case count([CounterIncrement])
}

extension MailGateDatabase {
    /// Applies `operations` in order in ONE write transaction (one commit, so one WAL fsync for all of them), each
    /// inside its own savepoint: an operation that fails is rolled back alone and reported in its slot, the others
    /// commit. Returns one result per operation: the new sequence for an insert, nil for a completion. Throws
    /// only when the transaction itself cannot commit (then nothing of the batch is stored).
    public func applyJournalBatch(_ operations: [JournalBatchOperation]) throws(StoreError) -> [Result<
        Int64?, StoreError
    >] {
        try write("journal a batch of messages") { db in
            var results: [Result<Int64?, StoreError>] = []
            results.reserveCapacity(operations.count)
            var completed = false
            for operation in operations {
                var slot: Result<Int64?, StoreError> = .success(nil)
                do {
                    try db.inSavepoint {
                        switch operation {
                        case .insertPending(let insert):
                            slot = .success(try Self.insertPending(insert, in: db))
                        case .complete(let completion):
                            try Self.complete(completion, in: db)
                            completed = true
                        case .count(let counters):
                            try Self.apply(counters, in: db)
                        }
                        return .commit
                    }
                } catch let error as StoreError {
                    slot = .failure(error)
                } catch {
                    slot = .failure(.database(operation: "journal a message", reason: Self.reason(error)))
                }
                results.append(slot)
            }
            if completed { try Self.chainCompletedEntries(db) }
            return results
        }
    }

    /// The insert of `insertPendingJournalEntry`, inside a transaction.
    static func insertPending(_ insert: JournalPendingInsert, in db: Database) throws -> Int64 {
        guard insert.size >= 0, insert.sha256.utf8.count == 64, insert.sha256.utf8.allSatisfy({ isLowerHex($0) }) else {
            throw StoreError.invalidValue(
                "journal entry with size \(insert.size) and sha256 \"\(insert.sha256.prefix(80))\"")
        }
        let last = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(sequence) FROM journalEntry")) ?? 0
        let sequence = last + 1
        // The columns `JournalEntry.encode(to:)` writes, through one cached statement (per message, on the path
        // to the final dot).
        let recipients = String(decoding: try JSONEncoder().encode(insert.rcptTo), as: UTF8.self)
        try db.cachedStatement(
            sql: """
                INSERT INTO journalEntry (sequence, status, createdAt, completedAt, accountEmail, listener, mailFrom,
                    rcptTo, messageID, size, sha256, upstreamReply, sentCopyState, previousHash, entryHash)
                VALUES (?, 'pending', ?, NULL, ?, ?, ?, ?, ?, ?, ?, NULL, ?, '', '')
                """
        ).execute(arguments: [
            sequence, UTCTimestamp.format(UTCTimestamp.rounded(insert.createdAt)), insert.accountEmail.lowercased(),
            insert.listener, insert.mailFrom, recipients, insert.messageID, insert.size, insert.sha256,
            insert.sentCopyState.rawValue,
        ])
        if var job = insert.sentCopyJob {
            job.journalSequence = sequence
            try save(job, in: db)
        }
        return sequence
    }

    /// The update of `completeJournalEntry` without the chaining (the caller chains once per transaction).
    static func complete(_ completion: JournalCompletion, in db: Database) throws {
        guard completion.status != .pending else {
            throw StoreError.journalEntryNotPending(sequence: completion.sequence, status: "being set back to pending")
        }
        // Cached statements, no record round trip: the status decides, four columns change (the journal writer
        // runs this per message, and GRDB's query builder and the record's JSON coding were its main CPU cost).
        guard
            let status = try String.fetchOne(
                db.cachedStatement(sql: "SELECT status FROM journalEntry WHERE sequence = ?"),
                arguments: [completion.sequence])
        else {
            throw StoreError.journalEntryNotFound(sequence: completion.sequence)
        }
        guard status == JournalStatus.pending.rawValue else {
            throw StoreError.journalEntryNotPending(sequence: completion.sequence, status: status)
        }
        try db.cachedStatement(
            sql: """
                UPDATE journalEntry SET status = ?, upstreamReply = ?, completedAt = ?,
                    sentCopyState = COALESCE(?, sentCopyState)
                WHERE sequence = ?
                """
        ).execute(arguments: [
            completion.status.rawValue, completion.upstreamReply.map { String($0.prefix(2_000)) },
            UTCTimestamp.format(UTCTimestamp.rounded(completion.completedAt)), completion.sentCopyState?.rawValue,
            completion.sequence,
        ])
        try apply(completion.counters, in: db)
        if let change = completion.sentCopyJobChange { try apply(change, in: db) }
    }
}
