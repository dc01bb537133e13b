// StoreTests: the journal's gap-free sequence, chaining at completion, and the verifier against tampering.
import Crypto
import Foundation
import GRDB
import Store
import Synchronization
import Testing

@Suite("Sent journal")
struct JournalTests {
    @Test("sequences are gap-free under 100 concurrent inserts")
    func concurrentInserts() throws {
        let temp = try TemporaryDirectory()
        let db = try MailGateDatabase(stateDirectory: temp.path)
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 100) { index in
            do { try journal(db, message: "message \(index)") } catch { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        let sequences = try db.journalEntries().map(\.sequence)
        #expect(sequences == Array(1...100))
    }

    @Test("completion chains entries in sequence order, even when they complete out of order")
    func chaining() throws {
        let db = try MailGateDatabase.inMemory()
        let first = try journal(db, message: "one")
        let second = try journal(db, message: "two")
        #expect(try db.journalHead() == nil)
        try db.completeJournalEntry(
            sequence: second, status: .sent, upstreamReply: "250 2.0.0 OK",
            counters: [CounterIncrement("smtp.sent", account: "alice@contoso.com")])
        // Entry 2 waits for entry 1.
        #expect(try db.journalHead() == nil)
        #expect(try db.journalEntry(sequence: second)?.isChained == false)
        try db.completeJournalEntry(sequence: first, status: .failed, upstreamReply: "550 5.7.1 no")
        let head = try #require(try db.journalHead())
        #expect(head.sequence == 2)
        let entries = try db.journalEntries()
        #expect(entries[0].previousHash == JournalEntry.genesisHash)
        #expect(entries[1].previousHash == entries[0].entryHash)
        #expect(head.hash == entries[1].entryHash)
        #expect(entries[1].entryHash == entries[1].computeHash(previousHash: entries[0].entryHash))
        #expect(try db.counters(since: Date().addingTimeInterval(-60)).first?.value == 1)
        #expect(throws: StoreError.journalEntryNotPending(sequence: 1, status: "failed")) {
            try db.completeJournalEntry(sequence: first, status: .sent, upstreamReply: nil)
        }
        #expect(throws: StoreError.journalEntryNotFound(sequence: 99)) {
            try db.completeJournalEntry(sequence: 99, status: .sent, upstreamReply: nil)
        }
        // The sent-copy state changes later without touching the chain.
        try db.updateSentCopyState(sequence: second, state: .made)
        #expect(try db.journalEntry(sequence: second)?.sentCopyState == .made)
        #expect(
            JournalVerifier.verify(entries: try db.journalEntries(), archiveDirectory: nil).outcome == .ok(count: 2))
        #expect(try db.journalEntries(account: "ALICE@contoso.com").count == 2)
        #expect(try db.journalEntries(account: "bob@contoso.com").isEmpty)
    }

    @Test("interrupted entries become unknown and are reported")
    func interrupted() throws {
        let db = try MailGateDatabase.inMemory()
        try journal(db, message: "a")
        try journal(db, message: "b")
        try db.completeJournalEntry(sequence: 2, status: .sent, upstreamReply: "250 OK")
        let pendingResult = JournalVerifier.verify(entries: try db.journalEntries(), archiveDirectory: nil)
        #expect(pendingResult.outcome == .ok(count: 2) && pendingResult.pending == [1])
        #expect(try db.markInterruptedJournalEntries() == [1])
        let result = JournalVerifier.verify(entries: try db.journalEntries(), archiveDirectory: nil)
        #expect(result.outcome == .ok(count: 2))
        #expect(result.unknownFate == [1] && result.pending.isEmpty)
        #expect(try db.journalHead()?.sequence == 2)
    }

    @Test("the canonical encoding is unambiguous; sentCopyState is not hashed")
    func canonicalEncoding() {
        let genesis = JournalEntry.genesisHash
        let a = JournalEntry(
            sequence: 1, status: .sent, createdAt: Date(timeIntervalSince1970: 0), accountEmail: "ab", listener: "c",
            mailFrom: "x", rcptTo: ["y", "z"], messageID: "m", size: 1, sha256: String(repeating: "a", count: 64))
        var b = a
        b.accountEmail = "a"
        b.listener = "bc"
        #expect(a.computeHash(previousHash: genesis) != b.computeHash(previousHash: genesis))
        var c = a
        c.rcptTo = ["yz"]
        #expect(a.computeHash(previousHash: genesis) != c.computeHash(previousHash: genesis))
        var d = a
        d.upstreamReply = ""
        #expect(a.computeHash(previousHash: genesis) != d.computeHash(previousHash: genesis))
        var e = a
        e.sentCopyState = .made
        #expect(a.computeHash(previousHash: genesis) == e.computeHash(previousHash: genesis))
        #expect(a.computeHash(previousHash: genesis) != a.computeHash(previousHash: String(repeating: "1", count: 64)))
        #expect(a.computeHash(previousHash: genesis).count == 64)
    }
}

@Suite("Journal verifier")
struct VerifierTests {
    /// Five sent messages, journaled, completed and archived.
    func cleanJournal() throws -> (MailGateDatabase, TemporaryDirectory) {
        let db = try MailGateDatabase.inMemory()
        let temp = try TemporaryDirectory()
        for index in 1...5 {
            let message = "Subject: test \(index)\r\n\r\nbody \(index)\r\n"
            let sequence = try journal(db, message: message)
            try db.completeJournalEntry(sequence: sequence, status: .sent, upstreamReply: "250 2.0.0 OK queued")
            try archive(message, in: temp.path)
        }
        return (db, temp)
    }

    func archive(_ message: String, in directory: String) throws {
        let hex = SHA256.hex(Array(message.utf8))
        let folder = directory + "/" + hex.prefix(2)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(message.utf8).write(to: URL(fileURLWithPath: folder + "/" + hex))
    }

    func verify(_ db: MailGateDatabase, _ temp: TemporaryDirectory) throws -> JournalVerification {
        JournalVerifier.verify(entries: try db.journalEntries(), archiveDirectory: temp.path)
    }

    func brokenSequence(_ result: JournalVerification) -> Int64? {
        if case .broken(let sequence, _) = result.outcome { return sequence }
        return nil
    }

    @Test("a clean chain verifies")
    func clean() throws {
        let (db, temp) = try cleanJournal()
        let result = try verify(db, temp)
        #expect(result.outcome == .ok(count: 5))
        #expect(result.unknownFate.isEmpty)
        #expect(JournalVerifier.verify(entries: [], archiveDirectory: temp.path).outcome == .ok(count: 0))
    }

    @Test(
        "editing a field of a row breaks the chain at that row",
        arguments: ["mailFrom", "rcptTo", "size", "status", "upstreamReply", "createdAt", "messageID"])
    func editedField(column: String) throws {
        let (db, temp) = try cleanJournal()
        let value: String
        switch column {
        case "rcptTo": value = "[\"mallory@example.com\"]"
        case "size": value = "12"
        case "status": value = "failed"
        case "createdAt": value = "2020-01-01T00:00:00.000Z"
        default: value = "<forged@example.com>"
        }
        try db.writer.write { db in
            try db.execute(sql: "UPDATE journalEntry SET \(column) = ? WHERE sequence = 3", arguments: [value])
        }
        #expect(brokenSequence(try verify(db, temp)) == 3)
    }

    @Test("editing a row and recomputing its hash still breaks the next row")
    func editedAndRehashed() throws {
        let (db, temp) = try cleanJournal()
        var entry = try #require(try db.journalEntry(sequence: 3))
        entry.mailFrom = "mallory@example.com"
        entry.entryHash = entry.computeHash(previousHash: entry.previousHash)
        try db.writer.write { db in try entry.update(db) }
        #expect(brokenSequence(try verify(db, temp)) == 4)
    }

    @Test("deleting a row is detected")
    func deletedRow() throws {
        let (db, temp) = try cleanJournal()
        try db.writer.write { db in try db.execute(sql: "DELETE FROM journalEntry WHERE sequence = 2") }
        let result = try verify(db, temp)
        #expect(brokenSequence(result) == 2)
        if case .broken(_, let reason) = result.outcome { #expect(reason.contains("missing")) }
    }

    @Test("inserting a row is detected")
    func insertedRow() throws {
        let (db, temp) = try cleanJournal()
        // Make room at 3 (highest first, so the primary key never collides), then forge an entry chained onto 2.
        try db.writer.write { db in
            for sequence in stride(from: 5, through: 3, by: -1) {
                try db.execute(
                    sql: "UPDATE journalEntry SET sequence = ? WHERE sequence = ?", arguments: [sequence + 1, sequence])
            }
        }
        let two = try #require(try db.journalEntry(sequence: 2))
        var forged = JournalEntry(
            sequence: 3, status: .sent, createdAt: Date(), completedAt: Date(), accountEmail: "alice@contoso.com",
            listener: "smtp", mailFrom: "alice@contoso.com", rcptTo: ["x@example.com"], messageID: "<forged>",
            size: 0, sha256: SHA256.hex([]), upstreamReply: "250 OK")
        forged.previousHash = two.entryHash
        forged.entryHash = forged.computeHash(previousHash: two.entryHash)
        try db.writer.write { db in try forged.insert(db) }
        try archive("", in: temp.path)
        // The forged entry chains onto 2; the renumbered old entry 3 (now 4) no longer fits.
        #expect(brokenSequence(try verify(db, temp)) == 4)
    }

    @Test("an altered archived message is detected")
    func alteredArchive() throws {
        let (db, temp) = try cleanJournal()
        let entry = try #require(try db.journalEntry(sequence: 4))
        let path = JournalVerifier.archivePath(sha256: entry.sha256, directory: temp.path)
        try Data("Subject: test 4\r\n\r\nbody 5\r\n".utf8).write(to: URL(fileURLWithPath: path))
        let result = try verify(db, temp)
        #expect(brokenSequence(result) == 4)
        if case .broken(_, let reason) = result.outcome { #expect(reason.contains("altered")) }
    }

    @Test("a missing archived message is detected")
    func missingArchive() throws {
        let (db, temp) = try cleanJournal()
        let entry = try #require(try db.journalEntry(sequence: 5))
        try FileManager.default.removeItem(
            atPath: JournalVerifier.archivePath(sha256: entry.sha256, directory: temp.path))
        #expect(brokenSequence(try verify(db, temp)) == 5)
    }

    @Test("a hash on an entry after a pending one is detected")
    func hashBeyondFrontier() throws {
        let db = try MailGateDatabase.inMemory()
        try journal(db, message: "a")
        try journal(db, message: "b")
        try db.writer.write { db in
            try db.execute(
                sql: "UPDATE journalEntry SET entryHash = ?, previousHash = ? WHERE sequence = 2",
                arguments: [String(repeating: "1", count: 64), JournalEntry.genesisHash])
        }
        #expect(brokenSequence(JournalVerifier.verify(entries: try db.journalEntries(), archiveDirectory: nil)) == 2)
    }

    @Test("journal verify says why each row is pending: in progress, or stuck, and how many rows it holds back")
    func pendingReasons() throws {
        let db = try MailGateDatabase.inMemory()
        let stuck = try journal(db, message: "stuck")
        let later = try journal(db, message: "later")
        try db.completeJournalEntry(sequence: later, status: .sent, upstreamReply: "250 OK")
        let fresh = try journal(db, message: "fresh")
        let entries = try db.journalEntries()
        let created = try #require(entries.first { $0.sequence == stuck }?.createdAt)
        // An hour later the first row is stuck; the third was journaled "now".
        var reasons = JournalVerifier.pendingReasons(entries: entries, now: created.timeIntervalSince1970 + 3_600)
        #expect(Set(reasons.keys) == [stuck, fresh])
        let stuckReason = try #require(reasons[stuck])
        #expect(stuckReason.contains("its completion failed"))
        #expect(stuckReason.contains("holds back the chaining of 1 later entries"))
        #expect(reasons[fresh]?.contains("its completion failed") == true)
        reasons = JournalVerifier.pendingReasons(entries: entries, now: created.timeIntervalSince1970 + 5)
        #expect(reasons[stuck]?.contains("a send in progress") == true)
        #expect(reasons[fresh]?.contains("a send in progress") == true)
        #expect(reasons[fresh]?.contains("holds back") == false)
    }
}
