// Store: the scheduled download's records: which messages are stored locally, the per-mailbox high-water mark.
public import Foundation
internal import GRDB

extension MailGateDatabase {
    /// Migration "v2-download-messages": one row per locally stored message (new table only; v1 stays frozen).
    static func registerDownloadMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-download-messages") { db in
            try db.execute(
                sql: """
                    CREATE TABLE downloadedMessage (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        accountEmail TEXT NOT NULL REFERENCES account(email) ON DELETE CASCADE ON UPDATE CASCADE,
                        mailbox TEXT NOT NULL,
                        uidValidity INTEGER NOT NULL,
                        uid INTEGER NOT NULL,
                        messageID TEXT NOT NULL,
                        size INTEGER NOT NULL CHECK (size >= 0),
                        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
                        fileName TEXT NOT NULL CHECK (fileName <> ''),
                        downloadedAt TEXT NOT NULL,
                        deletedUpstreamAt TEXT,
                        deletedLocallyAt TEXT,
                        UNIQUE (accountEmail, mailbox, uidValidity, uid)
                    );
                    CREATE INDEX downloadedMessage_identity ON downloadedMessage(accountEmail, mailbox, messageID, size);
                    """)
        }
    }

    /// Records a message whose file is already durable, and moves the mailbox's high-water mark, in one
    /// transaction. A row for the same (account, mailbox, uidValidity, uid) is replaced (a reload): it is local
    /// again and keeps its id.
    @discardableResult
    public func recordDownload(_ message: DownloadedMessage, state: DownloadState) throws(StoreError) -> DownloadedMessage {
        try write("record a downloaded message") { db in
            var row = message
            if let existing = try DownloadedMessage.filter(
                DownloadedMessage.Columns.accountEmail == message.accountEmail
                    && DownloadedMessage.Columns.mailbox == message.mailbox
                    && DownloadedMessage.Columns.uidValidity == message.uidValidity
                    && DownloadedMessage.Columns.uid == message.uid
            ).fetchOne(db) {
                row.id = existing.id
                try row.update(db)
            } else {
                try row.insert(db)
                row.id = db.lastInsertedRowID
            }
            var current = try DownloadState.fetchOne(
                db, key: ["accountEmail": state.accountEmail, "mailbox": state.mailbox])
            if var known = current, known.uidValidity == state.uidValidity {
                known.lastUID = max(known.lastUID, state.lastUID)
                known.updatedAt = state.updatedAt
                current = known
            } else {
                current = state
            }
            try current!.save(db)
            return row
        }
    }

    /// Every row of a mailbox (locally deleted ones included), oldest first.
    public func downloadedMessages(account: String, mailbox: String) throws(StoreError) -> [DownloadedMessage] {
        try read("read downloaded messages") { db in
            try DownloadedMessage.filter(
                DownloadedMessage.Columns.accountEmail == account.lowercased()
                    && DownloadedMessage.Columns.mailbox == mailbox
            ).order(DownloadedMessage.Columns.id).fetchAll(db)
        }
    }

    /// The messages a POP3 client sees: stored and not deleted locally, oldest first.
    public func locallyPresentMessages(account: String) throws(StoreError) -> [DownloadedMessage] {
        try read("read the local maildrop") { db in
            try DownloadedMessage.filter(
                DownloadedMessage.Columns.accountEmail == account.lowercased()
                    && DownloadedMessage.Columns.deletedLocallyAt == nil
            ).order(DownloadedMessage.Columns.id).fetchAll(db)
        }
    }

    /// Moves rows recorded under an old UIDVALIDITY to their re-identified (new UIDVALIDITY, UID) pairs, and
    /// resets the high-water mark to the new UIDVALIDITY, in one transaction.
    public func reidentifyDownloads(
        _ moves: [(id: Int64, uid: Int64)], uidValidity: Int64, state: DownloadState
    ) throws(StoreError) {
        try write("re-identify downloaded messages") { db in
            for move in moves {
                try db.execute(
                    sql: "UPDATE downloadedMessage SET uidValidity = ?, uid = ? WHERE id = ?",
                    arguments: [uidValidity, move.uid, move.id])
            }
            try state.save(db)
        }
    }

    /// Saves the high-water mark alone (a mailbox whose new messages were all known already).
    public func saveDownloadStateOnly(_ state: DownloadState) throws(StoreError) {
        try write("save download state") { db in try state.save(db) }
    }

    /// Marks messages as removed from the server.
    public func markDeletedUpstream(_ ids: [Int64], at date: Date) throws(StoreError) {
        guard !ids.isEmpty else { return }
        try write("record upstream deletions") { db in
            for id in ids {
                try db.execute(
                    sql: "UPDATE downloadedMessage SET deletedUpstreamAt = ? WHERE id = ?",
                    arguments: [UTCTimestamp.format(date), id])
            }
        }
    }

    /// Marks messages as deleted from the local store (a POP3 client's DELE + QUIT).
    public func markDeletedLocally(_ ids: [Int64], at date: Date) throws(StoreError) {
        guard !ids.isEmpty else { return }
        try write("record local deletions") { db in
            for id in ids {
                try db.execute(
                    sql: "UPDATE downloadedMessage SET deletedLocallyAt = ? WHERE id = ?",
                    arguments: [UTCTimestamp.format(date), id])
            }
        }
    }

    /// Bytes of every message still held locally, all accounts: what `max_store_bytes` bounds.
    public func locallyStoredBytes() throws(StoreError) -> Int64 {
        try read("sum the local store") { db in
            try Int64.fetchOne(
                db, sql: "SELECT COALESCE(SUM(size), 0) FROM downloadedMessage WHERE deletedLocallyAt IS NULL") ?? 0
        }
    }
}
