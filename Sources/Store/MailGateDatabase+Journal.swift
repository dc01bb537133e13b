// Store: the sent journal: gap-free sequence, completion, and chaining in sequence order.
public import Foundation
internal import GRDB

extension MailGateDatabase {
    /// Journals a message about to be sent and returns its sequence number (max + 1, assigned inside the insert
    /// transaction, so sequences have no gaps even under concurrent inserts). `sentCopyJob` is stored in the same
    /// transaction, pointing at the new row.
    public func insertPendingJournalEntry(
        accountEmail: String, listener: String, mailFrom: String, rcptTo: [String], messageID: String, size: Int64,
        sha256: String, sentCopyState: SentCopyState = .pending, createdAt: Date = Date(),
        sentCopyJob: SentCopyJobRecord? = nil
    ) throws(StoreError) -> Int64 {
        try write("journal a message") { db in
            try Self.insertPending(
                JournalPendingInsert(
                    accountEmail: accountEmail, listener: listener, mailFrom: mailFrom, rcptTo: rcptTo,
                    messageID: messageID, size: size, sha256: sha256, sentCopyState: sentCopyState,
                    createdAt: createdAt, sentCopyJob: sentCopyJob),
                in: db)
        }
    }

    /// Records the upstream's verdict on a pending entry, adds `counters`, and chains every entry that can now be
    /// chained, all in one transaction (with `sentCopyJobChange` applied to the message's copy job).
    public func completeJournalEntry(
        sequence: Int64, status: JournalStatus, upstreamReply: String?, sentCopyState: SentCopyState? = nil,
        counters: [CounterIncrement] = [], completedAt: Date = Date(), sentCopyJobChange: SentCopyJobChange? = nil
    ) throws(StoreError) {
        guard status != .pending else {
            throw StoreError.journalEntryNotPending(sequence: sequence, status: "being set back to pending")
        }
        try write("complete a journal entry") { db in
            try Self.complete(
                JournalCompletion(
                    sequence: sequence, status: status, upstreamReply: upstreamReply, sentCopyState: sentCopyState,
                    counters: counters, completedAt: completedAt, sentCopyJobChange: sentCopyJobChange),
                in: db)
            try Self.chainCompletedEntries(db)
        }
    }

    /// Marks every entry still pending as `unknown` (call at startup: their sessions ended with the process) and
    /// chains them; returns their sequences. Entries whose sent-copy job awaits a verdict stay pending: the
    /// sent-copy worker settles them by searching the Sent folder for their Message-ID.
    @discardableResult
    public func markInterruptedJournalEntries(completedAt: Date = Date()) throws(StoreError) -> [Int64] {
        try write("close interrupted journal entries") { db in
            let sequences = try Int64.fetchAll(
                db,
                sql: "SELECT sequence FROM journalEntry WHERE status = 'pending' AND sequence NOT IN ("
                    + Self.awaitingVerdictSequences + ") ORDER BY sequence")
            try db.execute(
                sql: "UPDATE journalEntry SET status = 'unknown', completedAt = ? WHERE status = 'pending' "
                    + "AND sequence NOT IN (" + Self.awaitingVerdictSequences + ")",
                arguments: [UTCTimestamp.format(completedAt)])
            try Self.chainCompletedEntries(db)
            return sequences
        }
    }

    /// Records whether the Sent-folder copy was made (not part of the hash).
    public func updateSentCopyState(sequence: Int64, state: SentCopyState) throws(StoreError) {
        try write("update a journal entry") { db in
            try db.execute(
                sql: "UPDATE journalEntry SET sentCopyState = ? WHERE sequence = ?",
                arguments: [state.rawValue, sequence])
            if db.changesCount == 0 { throw StoreError.journalEntryNotFound(sequence: sequence) }
        }
    }

    /// The journal in sequence order, optionally one account's entries only.
    public func journalEntries(account: String? = nil) throws(StoreError) -> [JournalEntry] {
        try read("read the journal") { db in
            var request = JournalEntry.order(JournalEntry.Columns.sequence)
            if let account { request = request.filter(JournalEntry.Columns.accountEmail == account.lowercased()) }
            return try request.fetchAll(db)
        }
    }

    /// One entry, or `nil`.
    public func journalEntry(sequence: Int64) throws(StoreError) -> JournalEntry? {
        try read("read the journal") { db in try JournalEntry.fetchOne(db, key: sequence) }
    }

    /// The last chained entry's sequence and hash: what `journal checkpoint` prints for anchoring elsewhere.
    /// `nil` while nothing is chained.
    public func journalHead() throws(StoreError) -> (sequence: Int64, hash: String)? {
        try read("read the journal head") { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: Self.headQuery
                )
            else { return nil }
            return (row["sequence"], row["entryHash"])
        }
    }

    /// Chains, in sequence order, every completed entry directly after the chained prefix; stops at the first
    /// pending entry.
    static func chainCompletedEntries(_ db: Database) throws {
        var previous = JournalEntry.genesisHash
        var next: Int64 = 1
        if let head = try Row.fetchOne(db, sql: headQuery) {
            previous = head["entryHash"]
            next = (head["sequence"] as Int64) + 1
        }
        let select = try db.cachedStatement(sql: "SELECT * FROM journalEntry WHERE sequence = ?")
        let update = try db.cachedStatement(
            sql: "UPDATE journalEntry SET previousHash = ?, entryHash = ? WHERE sequence = ?")
        while let entry = try JournalEntry.fetchOne(select, arguments: [next]), entry.status != .pending {
            let hash = entry.computeHash(previousHash: previous)
            try update.execute(arguments: [previous, hash, next])
            previous = hash
            next += 1
        }
    }

    /// The last chained entry.
    static let headQuery =
        "SELECT sequence, entryHash FROM journalEntry WHERE entryHash <> '' ORDER BY sequence DESC LIMIT 1"

    static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
    }
}
