// StoreTests: the download records: one row per (account, mailbox, UIDVALIDITY, UID), the high-water mark,
// re-identification, deletions, and the bytes the local store holds.
import Foundation
import GRDB
import Store
import Testing

@Suite("Download records")
struct DownloadRecordTests {
    let db: MailGateDatabase
    let account = "alice@contoso.com"

    init() throws {
        db = try MailGateDatabase.inMemory()
        try db.addAccount(sampleAccount())
    }

    func message(_ uid: Int64, validity: Int64 = 7, size: Int64 = 100, id: String? = nil) -> DownloadedMessage {
        DownloadedMessage(
            accountEmail: account, mailbox: "INBOX", uidValidity: validity, uid: uid, messageID: id ?? "<\(uid)@x>",
            size: size, sha256: String(repeating: "a", count: 64), fileName: "\(validity).\(uid).mailgate",
            downloadedAt: Date())
    }

    func state(_ uid: Int64, validity: Int64 = 7) -> DownloadState {
        DownloadState(accountEmail: account, mailbox: "INBOX", uidValidity: validity, lastUID: uid)
    }

    @Test("the migration v2-download-messages runs after v1")
    func migration() throws {
        let applied = try db.writer.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(applied.first == "v1")
        #expect(applied.contains("v2-download-messages"))
    }

    @Test("recording moves the high-water mark forward only, and a second record of a UID replaces the row")
    func record() throws {
        let first = try db.recordDownload(message(5), state: state(5))
        try db.recordDownload(message(3), state: state(3))
        #expect(try db.downloadState(email: account, mailbox: "INBOX")?.lastUID == 5)
        var again = message(5, size: 120)
        again.fileName = first.fileName
        let replaced = try db.recordDownload(again, state: state(5))
        #expect(replaced.id == first.id)
        let rows = try db.downloadedMessages(account: account, mailbox: "INBOX")
        #expect(rows.count == 2)
        #expect(rows.first { $0.uid == 5 }?.size == 120)
        #expect(try db.locallyStoredBytes() == 220)
    }

    @Test("local and upstream deletions are recorded; locally deleted bytes no longer count")
    func deletions() throws {
        let one = try db.recordDownload(message(1), state: state(1))
        let two = try db.recordDownload(message(2, size: 50), state: state(2))
        try db.markDeletedLocally([one.id!], at: Date())
        try db.markDeletedUpstream([two.id!], at: Date())
        #expect(try db.locallyPresentMessages(account: account).map(\.uid) == [2])
        #expect(try db.locallyStoredBytes() == 50)
        let rows = try db.downloadedMessages(account: account, mailbox: "INBOX")
        #expect(rows.first { $0.uid == 2 }?.deletedUpstreamAt != nil)
        #expect(rows.first { $0.uid == 1 }?.deletedLocallyAt != nil)
    }

    @Test("re-identification moves rows to the new UIDVALIDITY and resets the mark")
    func reidentify() throws {
        let one = try db.recordDownload(message(10), state: state(10))
        try db.reidentifyDownloads([(one.id!, 3)], uidValidity: 99, state: state(0, validity: 99))
        let rows = try db.downloadedMessages(account: account, mailbox: "INBOX")
        #expect(rows.map { [$0.uidValidity, $0.uid] } == [[99, 3]])
        let mark = try db.downloadState(email: account, mailbox: "INBOX")
        #expect(mark?.uidValidity == 99 && mark?.lastUID == 0)
        // A message recorded later under the new UIDVALIDITY may not reuse the moved UID.
        #expect(throws: (any Error).self) {
            try db.writer.write { db in try message(3, validity: 99).insert(db) }
        }
    }

    @Test("removing the account removes its download records")
    func cascade() throws {
        try db.recordDownload(message(1), state: state(1))
        try db.removeAccount(email: account)
        #expect(try db.downloadedMessages(account: account, mailbox: "INBOX").isEmpty)
    }
}
