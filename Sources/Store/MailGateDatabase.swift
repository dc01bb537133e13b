// Store: the GRDB façade: opening the state database, frozen migrations, and the write helper.
internal import Foundation
public import GRDB
internal import Glibc

/// MailGate's state: accounts, sealed tokens, the sent journal, statistics, download state.
///
/// Every public method is one transaction. The type is `Sendable`: GRDB's writer serializes writes and lets
/// reads run concurrently (WAL), so any connection's queue may call it.
public final class MailGateDatabase: Sendable {
    /// The GRDB writer (a `DatabasePool` on disk, a `DatabaseQueue` in memory for tests).
    public let writer: any DatabaseWriter

    /// File name of the database inside the state directory.
    public static let fileName = "mailgate.sqlite"

    /// Wraps an existing writer and runs the migrations.
    public init(writer: any DatabaseWriter) throws(StoreError) {
        self.writer = writer
        do {
            try Self.migrator.migrate(writer)
        } catch {
            throw StoreError.database(operation: "migrate the schema", reason: Self.reason(error))
        }
    }

    /// Opens (creating on first use) `<stateDirectory>/mailgate.sqlite`; the directory is created with mode 0700
    /// and the database file is made 0600.
    public convenience init(stateDirectory: String) throws(StoreError) {
        try Self.createStateDirectory(stateDirectory)
        let path = stateDirectory + "/" + Self.fileName
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: Self.configuration())
        } catch {
            throw StoreError.database(operation: "open \(path)", reason: Self.reason(error))
        }
        _ = chmod(path, 0o600)
        try self.init(writer: pool)
    }

    /// A fresh database in memory, for tests.
    public static func inMemory() throws(StoreError) -> MailGateDatabase {
        do {
            return try MailGateDatabase(writer: DatabaseQueue(configuration: configuration()))
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.database(operation: "open an in-memory database", reason: reason(error))
        }
    }

    /// Creates `path` (and missing parents) with mode 0700 if it does not exist.
    public static func createStateDirectory(_ path: String) throws(StoreError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StoreError.stateDirectory(path: path, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError.stateDirectory(path: path, reason: reason(error))
        }
        _ = chmod(path, 0o700)
    }

    static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "MailGate"
        // Reads are short indexed lookups (password hash, tokens, journal tail); two readers beside the writer
        // suffice, and each SQLite connection costs its own page cache (GRDB's default is five).
        configuration.maximumReaderCount = 2
        return configuration
    }

    /// The schema. Migrations are frozen once released: never edit one, add the next.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE account (
                        email TEXT NOT NULL PRIMARY KEY CHECK (email <> '' AND email = lower(email)),
                        serverName TEXT NOT NULL CHECK (serverName <> ''),
                        isShared BOOLEAN NOT NULL DEFAULT 0,
                        delegateEmail TEXT CHECK (delegateEmail IS NULL OR delegateEmail = lower(delegateEmail)),
                        passwordHash TEXT NOT NULL CHECK (passwordHash LIKE '$%'),
                        createdAt TEXT NOT NULL,
                        CHECK (isShared = 0 OR delegateEmail IS NOT NULL)
                    );
                    CREATE TABLE token (
                        accountEmail TEXT NOT NULL PRIMARY KEY
                            REFERENCES account(email) ON DELETE CASCADE ON UPDATE CASCADE,
                        sealed BLOB NOT NULL,
                        accessExpiresAt TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('connected', 'needsReconnect')),
                        lastRefreshAt TEXT,
                        lastError TEXT
                    );
                    CREATE TABLE journalEntry (
                        sequence INTEGER NOT NULL PRIMARY KEY CHECK (sequence >= 1),
                        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'unknown')),
                        createdAt TEXT NOT NULL,
                        completedAt TEXT,
                        accountEmail TEXT NOT NULL,
                        listener TEXT NOT NULL,
                        mailFrom TEXT NOT NULL,
                        rcptTo TEXT NOT NULL CHECK (json_valid(rcptTo) AND json_type(rcptTo) = 'array'),
                        messageID TEXT NOT NULL,
                        size INTEGER NOT NULL CHECK (size >= 0),
                        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
                        upstreamReply TEXT,
                        sentCopyState TEXT NOT NULL
                            CHECK (sentCopyState IN ('pending', 'made', 'skipped', 'failed', 'disabled')),
                        previousHash TEXT NOT NULL CHECK (length(previousHash) IN (0, 64)),
                        entryHash TEXT NOT NULL CHECK (length(entryHash) IN (0, 64)),
                        CHECK ((status = 'pending') = (completedAt IS NULL))
                    );
                    CREATE INDEX journalEntry_accountEmail ON journalEntry(accountEmail);
                    CREATE INDEX journalEntry_messageID ON journalEntry(messageID);
                    CREATE TABLE counter (
                        bucket TEXT NOT NULL,
                        accountEmail TEXT NOT NULL DEFAULT '',
                        listener TEXT NOT NULL DEFAULT '',
                        name TEXT NOT NULL CHECK (name <> ''),
                        value INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (bucket, accountEmail, listener, name)
                    ) WITHOUT ROWID;
                    CREATE TABLE downloadState (
                        accountEmail TEXT NOT NULL REFERENCES account(email) ON DELETE CASCADE ON UPDATE CASCADE,
                        mailbox TEXT NOT NULL,
                        uidValidity INTEGER NOT NULL,
                        lastUID INTEGER NOT NULL,
                        updatedAt TEXT NOT NULL,
                        PRIMARY KEY (accountEmail, mailbox)
                    );
                    """)
        }
        return migrator
    }

    /// Runs `body` in one write transaction, mapping every failure to a `StoreError`.
    func write<T>(_ operation: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try writer.write { db in try body(db) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.database(operation: operation, reason: Self.reason(error))
        }
    }

    /// Runs `body` as a read, mapping every failure to a `StoreError`.
    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try writer.read { db in try body(db) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.database(operation: operation, reason: Self.reason(error))
        }
    }

    /// A short reason without SQL arguments (which could hold addresses or hashes).
    static func reason(_ error: any Error) -> String {
        if let databaseError = error as? DatabaseError {
            return "SQLite error \(databaseError.resultCode.rawValue): \(databaseError.message ?? "no message")"
        }
        return String(describing: error)
    }
}
