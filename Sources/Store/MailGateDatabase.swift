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

    /// Modes that were too wide at open and were tightened (state directory to 0700, database, `-wal` and
    /// `-shm` to 0600), one sentence each: the caller logs them as warnings.
    public let permissionRepairs: [String]

    /// Wraps an existing writer and runs the migrations.
    public init(writer: any DatabaseWriter, permissionRepairs: [String] = []) throws(StoreError) {
        self.writer = writer
        self.permissionRepairs = permissionRepairs
        do {
            try Self.migrator.migrate(writer)
        } catch {
            throw StoreError.database(operation: "migrate the schema", reason: Self.reason(error))
        }
    }

    /// Opens (creating on first use) `<stateDirectory>/mailgate.sqlite`.
    ///
    /// The database holds password hashes and sealed tokens, so nobody but this user may read it, whatever the
    /// umask: the directory is created 0700 and the database file 0600 *before* SQLite opens it (SQLite gives the
    /// `-wal` and `-shm` files the database file's mode). An existing directory or file with group or other bits
    /// is tightened, not refused, so an upgrade keeps running; each repair is reported in `permissionRepairs`. A
    /// mode that cannot be changed (another owner) is an error.
    public convenience init(stateDirectory: String) throws(StoreError) {
        var repairs = try Self.createStateDirectory(stateDirectory)
        let path = stateDirectory + "/" + Self.fileName
        try Self.createPrivateFile(path)
        for file in [path, path + "-wal", path + "-shm"] {
            if let repair = try Self.restrict(file, to: 0o600) { repairs.append(repair) }
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: Self.configuration())
        } catch {
            throw StoreError.database(operation: "open \(path)", reason: Self.reason(error))
        }
        for file in [path + "-wal", path + "-shm"] {
            if let repair = try Self.restrict(file, to: 0o600) { repairs.append(repair) }
        }
        try self.init(writer: pool, permissionRepairs: repairs)
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

    /// Creates `path` (and missing parents) with mode 0700 if it does not exist; an existing directory that
    /// group or others can use is set to 0700. Returns the repairs made, as sentences.
    @discardableResult
    public static func createStateDirectory(_ path: String) throws(StoreError) -> [String] {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StoreError.stateDirectory(path: path, reason: "not a directory") }
            return try restrict(path, to: 0o700).map { [$0] } ?? []
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError.stateDirectory(path: path, reason: reason(error))
        }
        _ = chmod(path, 0o700)
        return []
    }

    /// Creates an empty file with mode 0600 if there is none (O_EXCL and fchmod, so the umask cannot widen it).
    static func createPrivateFile(_ path: String) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            let code = errno
            if code == EEXIST { return }
            throw StoreError.database(operation: "create \(path)", reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else {
            throw StoreError.database(operation: "protect \(path)", reason: String(cString: strerror(errno)))
        }
    }

    /// Clears the group and other bits of `path` if any are set; nil if the file is missing or already private.
    static func restrict(_ path: String, to mode: mode_t) throws(StoreError) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let current = info.st_mode & 0o777
        guard current & 0o077 != 0 else { return nil }
        let octal = String(current, radix: 8)
        guard chmod(path, mode) == 0 else {
            let reason = String(cString: strerror(errno))
            throw StoreError.stateDirectory(
                path: path,
                reason: "mode \(octal) lets other users read it, and it cannot be changed (\(reason)); run "
                    + "chmod \(String(mode, radix: 8)) \(path) as its owner")
        }
        return "\(path) had mode \(octal), so other users could read it; it is now \(String(mode, radix: 8)) "
            + "(check who could have copied it)."
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
        migrator.registerMigration("v2-admin-latency", migrate: migrateAdminLatency)
        registerDownloadMigrations(&migrator)
        registerSentCopyJobMigration(&migrator)
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
