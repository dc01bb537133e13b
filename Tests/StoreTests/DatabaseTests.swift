// StoreTests: schema, accounts and tokens, counters, download state and timestamps.
import Foundation
import GRDB
import Store
import Testing

@Suite("State database")
struct DatabaseTests {
    @Test("migrations create every table")
    func migrations() throws {
        let db = try MailGateDatabase.inMemory()
        let tables = try db.writer.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        }
        for table in ["account", "counter", "downloadState", "journalEntry", "token", "latency"] {
            #expect(tables.contains(table))
        }
        let applied = try db.writer.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        #expect(applied.first == "v1")
        #expect(applied.contains("v2-admin-latency"))
        #expect(applied.contains("v2-smtpfast-sentcopyjob"))
        #expect(tables.contains("sentCopyJob"))
    }

    @Test("on disk: state directory 0700, database 0600, reopening keeps data")
    func onDisk() throws {
        let temp = try TemporaryDirectory()
        let state = temp.path + "/state/nested"
        do {
            let db = try MailGateDatabase(stateDirectory: state)
            try db.addAccount(sampleAccount())
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: state)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        let file = try FileManager.default.attributesOfItem(atPath: state + "/mailgate.sqlite")
        #expect((file[.posixPermissions] as? Int) == 0o600)
        let again = try MailGateDatabase(stateDirectory: state)
        #expect(try again.accounts().map(\.email) == ["alice@contoso.com"])
    }

    @Test("the -wal and -shm files are 0600 like the database, whatever the umask")
    func walAndShmArePrivate() throws {
        let previous = umask(0o022)
        defer { umask(previous) }
        let temp = try TemporaryDirectory()
        let state = temp.path + "/state"
        let db = try MailGateDatabase(stateDirectory: state)
        try db.addAccount(sampleAccount())
        for suffix in ["", "-wal", "-shm"] {
            let path = state + "/" + MailGateDatabase.fileName + suffix
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(path)")
        }
        #expect(db.permissionRepairs.isEmpty)
    }

    @Test("an existing state directory and database that others can read are tightened, with a warning each")
    func widerModesAreTightened() throws {
        let temp = try TemporaryDirectory()
        let state = temp.path + "/state"
        do { try MailGateDatabase(stateDirectory: state).addAccount(sampleAccount()) }
        let file = state + "/" + MailGateDatabase.fileName
        chmod(state, 0o755)
        chmod(file, 0o644)
        let db = try MailGateDatabase(stateDirectory: state)
        #expect(try db.accounts().count == 1)
        #expect((try FileManager.default.attributesOfItem(atPath: state)[.posixPermissions] as? Int) == 0o700)
        #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
        #expect(db.permissionRepairs.count == 2)
        #expect(db.permissionRepairs.first?.contains("\(state) had mode 755") == true)
        #expect(db.permissionRepairs.last?.contains("now 600") == true)
    }

    @Test("a state directory that is a file is refused")
    func stateDirectoryIsFile() throws {
        let temp = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: temp.path + "/file", contents: Data())
        #expect(throws: StoreError.self) { try MailGateDatabase(stateDirectory: temp.path + "/file") }
    }

    @Test("account add, read, password, list, remove; addresses are case-insensitive")
    func accounts() throws {
        let db = try MailGateDatabase.inMemory()
        try db.addAccount(sampleAccount())
        try db.addAccount(
            Account(
                email: "info@contoso.com", serverName: "m365", isShared: true, delegateEmail: "Alice@contoso.com",
                passwordHash: "$scrypt$x"))
        #expect(throws: StoreError.accountExists(email: "alice@contoso.com")) {
            try db.addAccount(sampleAccount("ALICE@contoso.com"))
        }
        let alice = try #require(try db.account(email: "ALICE@CONTOSO.COM"))
        #expect(alice.serverName == "m365" && !alice.isShared)
        try db.setPassword(email: "alice@contoso.com", hash: "$scrypt$new")
        #expect(try db.account(email: "alice@contoso.com")?.passwordHash == "$scrypt$new")
        #expect(throws: StoreError.accountNotFound(email: "nobody@contoso.com")) {
            try db.setPassword(email: "nobody@contoso.com", hash: "$x")
        }
        let all = try db.accounts()
        #expect(all.map(\.email) == ["alice@contoso.com", "info@contoso.com"])
        #expect(all[1].delegateEmail == "alice@contoso.com" && all[1].isShared)
        try db.removeAccount(email: "Alice@Contoso.com")
        #expect(try db.account(email: "alice@contoso.com") == nil)
        #expect(throws: StoreError.accountNotFound(email: "alice@contoso.com")) {
            try db.removeAccount(email: "alice@contoso.com")
        }
    }

    @Test("the schema's constraints refuse bad rows")
    func constraints() throws {
        let db = try MailGateDatabase.inMemory()
        #expect(throws: StoreError.self) {
            try db.addAccount(Account(email: "no-at-sign", serverName: "m", passwordHash: "$x"))
        }
        #expect(throws: StoreError.self) {
            try db.addAccount(Account(email: "a@b.c", serverName: "m", passwordHash: "plain"))
        }
        #expect(throws: StoreError.self) {
            try db.addAccount(Account(email: "s@b.c", serverName: "m", isShared: true, passwordHash: "$x"))
        }
        #expect(throws: StoreError.self) {
            try db.insertPendingJournalEntry(
                accountEmail: "a@b.c", listener: "smtp", mailFrom: "", rcptTo: [], messageID: "", size: 1,
                sha256: "XYZ")
        }
        #expect(try db.accounts().isEmpty)
    }

    @Test("tokens are saved, replaced, marked for reconnecting, and removed with their account")
    func tokens() throws {
        let db = try MailGateDatabase.inMemory()
        #expect(throws: StoreError.accountNotFound(email: "alice@contoso.com")) {
            try db.saveToken(email: "alice@contoso.com", sealed: [1], accessExpiresAt: Date())
        }
        try db.addAccount(sampleAccount())
        let expiry = Date(timeIntervalSince1970: 1_800_000_000.1234)
        try db.saveToken(email: "alice@contoso.com", sealed: [1, 2, 3], accessExpiresAt: expiry, lastRefreshAt: expiry)
        var token = try #require(try db.token(email: "Alice@contoso.com"))
        #expect(token.sealed == [1, 2, 3])
        #expect(UTCTimestamp.milliseconds(token.accessExpiresAt) == 1_800_000_000_123)
        #expect(token.state == .connected && token.lastError == nil)
        try db.markNeedsReconnect(email: "alice@contoso.com", reason: "AADSTS70000: consent revoked")
        token = try #require(try db.token(email: "alice@contoso.com"))
        #expect(token.state == .needsReconnect && token.lastError == "AADSTS70000: consent revoked")
        try db.saveToken(email: "alice@contoso.com", sealed: [9], accessExpiresAt: expiry)
        token = try #require(try db.token(email: "alice@contoso.com"))
        #expect(token.sealed == [9] && token.state == .connected && token.lastError == nil)
        try db.removeAccount(email: "alice@contoso.com")
        #expect(try db.token(email: "alice@contoso.com") == nil)
        let orphans = try db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM token") }
        #expect(orphans == 0)
    }

    @Test("counters upsert per hour and filter by since and account")
    func counters() throws {
        let db = try MailGateDatabase.inMemory()
        let now = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
        let old = now.addingTimeInterval(-3 * 3_600)
        try db.increment([
            CounterIncrement("smtp.sent", account: "Alice@contoso.com", listener: "smtp", at: now),
            CounterIncrement("smtp.sent", account: "alice@contoso.com", listener: "smtp", amount: 2, at: now),
            CounterIncrement("smtp.sent", account: "bob@contoso.com", listener: "smtp", at: now),
            CounterIncrement("smtp.sent", account: "alice@contoso.com", listener: "smtp", amount: 10, at: old),
            CounterIncrement("imap.login.failed", at: now),
        ])
        let rows = try db.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM counter") }
        #expect(rows == 4)
        let recent = try db.counters(since: now.addingTimeInterval(-60))
        #expect(
            recent == [
                CounterTotal(name: "imap.login.failed", accountEmail: nil, listener: nil, value: 1),
                CounterTotal(name: "smtp.sent", accountEmail: "alice@contoso.com", listener: "smtp", value: 3),
                CounterTotal(name: "smtp.sent", accountEmail: "bob@contoso.com", listener: "smtp", value: 1),
            ])
        let day = try db.counters(since: now.addingTimeInterval(-86_400), account: "ALICE@contoso.com")
        #expect(
            day == [CounterTotal(name: "smtp.sent", accountEmail: "alice@contoso.com", listener: "smtp", value: 13)])
        #expect(try db.counters(since: now.addingTimeInterval(3_600)).isEmpty)
    }

    @Test("download state round trip")
    func downloadState() throws {
        let db = try MailGateDatabase.inMemory()
        try db.addAccount(sampleAccount())
        try db.saveDownloadState(
            DownloadState(accountEmail: "alice@contoso.com", mailbox: "INBOX", uidValidity: 7, lastUID: 42))
        #expect(try db.downloadState(email: "alice@contoso.com", mailbox: "INBOX")?.lastUID == 42)
        try db.removeAccount(email: "alice@contoso.com")
        #expect(try db.downloadState(email: "alice@contoso.com", mailbox: "INBOX") == nil)
    }

    @Test("timestamps: stored text round-trips exactly")
    func timestamps() {
        for ms: Int64 in [0, 1, 999, 1_000, 951_782_400_000, 1_800_000_000_123, 4_102_444_799_999, -1] {
            let text = UTCTimestamp.format(milliseconds: ms)
            let date = UTCTimestamp.parse(text)
            #expect(date.map(UTCTimestamp.milliseconds) == ms, "\(text)")
        }
        #expect(UTCTimestamp.format(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(UTCTimestamp.hourBucket(Date(timeIntervalSince1970: 1_800_000_000)) == "2027-01-15T08")
        for bad in [
            "", "2026-11-29 05:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-02-30T00:00:00.000Z",
            "2026-11-29T05:00:00.000", "2026-11-29T05:00:00.00aZ", "２026-11-29T05:00:00.000Z",
        ] {
            #expect(UTCTimestamp.parse(bad) == nil, "\(bad)")
        }
    }
}
