// Store: the queued sent copies, kept in the database beside the journal row they belong to (issue 9 point 3).
internal import GRDB

/// Where a queued sent copy stands.
public enum SentCopyJobState: String, Sendable, CaseIterable {
    /// Written with the pending journal row, before the final dot went upstream: the copy is made only once the
    /// upstream accepted the message. Found at start-up, the upstream's verdict was lost with the process.
    case awaitingVerdict
    /// The upstream accepted the message (or there is no journal row): the copy is due.
    case queued
    /// Attempts used up: kept for an administrator, never retried automatically.
    case gaveUp
}

/// One queued sent copy. The gateway owns `payload` (its job description as JSON); the store keeps it in the same
/// transactions as the journal row, so a crash can never leave a sent message without its copy job.
public struct SentCopyJobRecord: Sendable, Equatable {
    public var id: String
    public var accountEmail: String
    public var messageID: String
    /// The journal row, when lock-after-send journaled the message.
    public var journalSequence: Int64?
    public var state: SentCopyJobState
    public var payload: String

    public init(
        id: String, accountEmail: String, messageID: String, journalSequence: Int64? = nil,
        state: SentCopyJobState, payload: String
    ) {
        self.id = id
        self.accountEmail = accountEmail
        self.messageID = messageID
        self.journalSequence = journalSequence
        self.state = state
        self.payload = payload
    }
}

/// What a journal completion does with the message's copy job, in the completion's own transaction.
public enum SentCopyJobChange: Sendable, Equatable {
    /// The upstream accepted: the job becomes due.
    case queue(id: String)
    /// Refused or unknown: no copy.
    case remove(id: String)
}

extension MailGateDatabase {
    /// Registers the `sentCopyJob` table (called from `migrator`, after the migrations before it).
    static func registerSentCopyJobMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-smtpfast-sentcopyjob") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sentCopyJob (
                        id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
                        accountEmail TEXT NOT NULL,
                        messageID TEXT NOT NULL,
                        journalSequence INTEGER REFERENCES journalEntry(sequence),
                        state TEXT NOT NULL CHECK (state IN ('awaitingVerdict', 'queued', 'gaveUp')),
                        payload TEXT NOT NULL
                    );
                    CREATE INDEX sentCopyJob_journalSequence ON sentCopyJob(journalSequence);
                    CREATE INDEX sentCopyJob_message ON sentCopyJob(accountEmail, messageID);
                    """)
        }
    }

    /// Every job, in no particular order.
    public func sentCopyJobs() throws(StoreError) -> [SentCopyJobRecord] {
        try read("read the sent-copy jobs") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sentCopyJob").map { row in
                guard let state = SentCopyJobState(rawValue: row["state"]) else {
                    throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "unknown sent-copy job state")
                }
                return SentCopyJobRecord(
                    id: row["id"], accountEmail: row["accountEmail"], messageID: row["messageID"],
                    journalSequence: row["journalSequence"], state: state, payload: row["payload"])
            }
        }
    }

    /// Inserts or replaces a job (a retry's new attempt count, a job given up, a job queued without a journal row).
    public func saveSentCopyJob(_ job: SentCopyJobRecord) throws(StoreError) {
        try write("save a sent-copy job") { db in try Self.save(job, in: db) }
    }

    /// The copy was made, found, cancelled or given up: removes the job (or, with `keep`, stores it as given up),
    /// sets the journal row's copy state and adds `counters`, in one transaction.
    public func finishSentCopyJob(
        id: String, journalSequence: Int64?, sentCopyState: SentCopyState, counters: [CounterIncrement] = [],
        keep: SentCopyJobRecord? = nil
    ) throws(StoreError) {
        try write("finish a sent-copy job") { db in
            if let keep {
                try Self.save(keep, in: db)
            } else {
                try db.execute(sql: "DELETE FROM sentCopyJob WHERE id = ?", arguments: [id])
            }
            if let journalSequence {
                try db.execute(
                    sql: "UPDATE journalEntry SET sentCopyState = ? WHERE sequence = ?",
                    arguments: [sentCopyState.rawValue, journalSequence])
            }
            try Self.apply(counters, in: db)
        }
    }

    static func save(_ job: SentCopyJobRecord, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO sentCopyJob (id, accountEmail, messageID, journalSequence, state, payload)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                job.id, job.accountEmail.lowercased(), job.messageID, job.journalSequence, job.state.rawValue,
                job.payload,
            ])
    }

    static func apply(_ change: SentCopyJobChange, in db: Database) throws {
        switch change {
        case .queue(let id):
            try db.execute(sql: "UPDATE sentCopyJob SET state = 'queued' WHERE id = ?", arguments: [id])
        case .remove(let id):
            try db.execute(sql: "DELETE FROM sentCopyJob WHERE id = ?", arguments: [id])
        }
    }

    /// Pending journal rows whose copy job awaits a verdict: `markInterruptedJournalEntries` leaves them pending
    /// for the sent-copy worker, which resolves their fate by searching the Sent folder.
    static let awaitingVerdictSequences =
        "SELECT journalSequence FROM sentCopyJob WHERE state = 'awaitingVerdict' AND journalSequence IS NOT NULL"
}
