// GatewayTests/SentMail: the journal writer's group commit and the archive's batch store.

import Crypto
import Foundation
import Logging
import Store
import Synchronization
import Testing

@testable import Gateway

@Suite("JournalWriter group commit")
struct JournalWriterTests {
    static func insert(_ index: Int, sha256: String, size: Int) -> JournalPendingInsert {
        JournalPendingInsert(
            accountEmail: "alice@contoso.test", listener: "smtp", mailFrom: "alice@contoso.test",
            rcptTo: ["bob@contoso.test"], messageID: "<m\(index)@contoso.test>", size: Int64(size), sha256: sha256,
            sentCopyState: .disabled)
    }

    static func item(_ index: Int) -> MessageArchive.BatchItem {
        let bytes = Array("Subject: \(index)\r\n\r\nbody \(index)\r\n".utf8)
        return MessageArchive.BatchItem(message: .memory(bytes), sha256: SHA256.hexString(SHA256.hash(bytes)), size: bytes.count)
    }

    @Test func concurrentMessagesShareBatchesAndEveryRowIsDurableBeforeItsAnswer() throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase(stateDirectory: state.path)
        let archive = MessageArchive(directory: state.path + "/archive")
        let writer = JournalWriter(database: database, archive: archive, logger: quietLogger)
        let count = 40
        let answered = DispatchGroup()
        let sequences = Mutex([Int: Int64]())
        let failures = Mutex(0)
        let seenWhenAnswered = Mutex(0)
        for index in 0..<count {
            answered.enter()
            let item = Self.item(index)
            writer.submit(.prepare(item, Self.insert(index, sha256: item.sha256, size: item.size))) { outcome in
                switch outcome.result {
                case .success(let sequence?):
                    sequences.withLock { $0[index] = sequence }
                    // Answered only once the row and its archive file exist.
                    if (try? database.journalEntry(sequence: sequence)) != nil,
                        FileManager.default.fileExists(atPath: archive.path(sha256: item.sha256))
                    {
                        seenWhenAnswered.withLock { $0 += 1 }
                    }
                default: failures.withLock { $0 += 1 }
                }
                answered.leave()
            }
        }
        #expect(answered.wait(timeout: .now() + 60) == .success)
        #expect(failures.withLock { $0 } == 0)
        #expect(seenWhenAnswered.withLock { $0 } == count)
        #expect(Set(sequences.withLock { $0.values }) == Set(1...Int64(count)))
        // Submitted faster than one fsync round: later requests waited together.
        #expect(writer.largestBatch > 1)

        // Completions (and counters nobody waits for) go the same way; the chain then verifies.
        writer.count([CounterIncrement("messages_relayed", account: "alice@contoso.test", amount: 5)])
        for sequence in 1...Int64(count) {
            answered.enter()
            writer.submit(.complete(JournalCompletion(sequence: sequence, status: .sent, upstreamReply: "250 OK"))) {
                outcome in
                if case .failure = outcome.result { failures.withLock { $0 += 1 } }
                answered.leave()
            }
        }
        #expect(answered.wait(timeout: .now() + 60) == .success)
        #expect(failures.withLock { $0 } == 0)
        writer.flush()
        let entries = try database.journalEntries()
        #expect(entries.allSatisfy { $0.status == .sent && $0.isChained })
        #expect(JournalVerifier.verify(entries: entries, archiveDirectory: archive.directory).isOK)
        #expect(try counter(database, "messages_relayed", account: "alice@contoso.test") == 5)
    }

    @Test func countersGivenWhileABatchRunsAreWrittenByTheTimerWithoutAFlush() async throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase.inMemory()
        let archive = MessageArchive(directory: state.path + "/archive")
        let writer = JournalWriter(database: database, archive: archive, logger: quietLogger, counterDelay: 0.1)
        let item = Self.item(1)
        let done = DispatchSemaphore(value: 0)
        writer.submit(.prepare(item, Self.insert(1, sha256: item.sha256, size: item.size))) { _ in
            // The writer is still running this batch: the counters must not wait for a later one.
            writer.count([CounterIncrement("messages_relayed", account: "alice@contoso.test", amount: 3)])
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(
            await eventually(5) { (try? counter(database, "messages_relayed", account: "alice@contoso.test")) == 3 })
    }

    @Test func aFailingRequestFailsAloneInItsBatch() throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase.inMemory()
        let archive = MessageArchive(directory: state.path + "/archive")
        let writer = JournalWriter(database: database, archive: archive, logger: quietLogger)
        let first = Self.item(1)
        let done = DispatchGroup()
        let results = Mutex([String: Bool]())
        func submit(_ name: String, _ work: JournalWriter.Work) {
            done.enter()
            writer.submit(work) { outcome in
                results.withLock { $0[name] = (try? outcome.result.get()) != nil }
                done.leave()
            }
        }
        submit("good", .prepare(first, Self.insert(1, sha256: first.sha256, size: first.size)))
        submit("no such row", .complete(JournalCompletion(sequence: 99, status: .sent, upstreamReply: "250 OK")))
        let bad = MessageArchive.BatchItem(message: .memory([1]), sha256: "not-a-hash", size: 1)
        submit("bad archive name", .prepare(bad, Self.insert(2, sha256: String(repeating: "a", count: 64), size: 1)))
        let second = Self.item(2)
        submit("good too", .prepare(second, Self.insert(3, sha256: second.sha256, size: second.size)))
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(
            results.withLock { $0 } == ["good": true, "no such row": false, "bad archive name": false, "good too": true])
        #expect(try database.journalEntries().map(\.messageID) == ["<m1@contoso.test>", "<m3@contoso.test>"])
    }

    @Test func theArchiveReplacesATornFileAndWritesTheSameBytesOnce() throws {
        let state = try TemporaryStateDirectory()
        let archive = MessageArchive(directory: state.path + "/archive")
        let item = Self.item(7)
        // A crash left a file of the right name and size but the wrong bytes (its row never committed).
        let path = archive.path(sha256: item.sha256)
        try DurableFile.makeDirectory(DurableFile.directoryName(of: path))
        try DurableFile.writeAtomically([UInt8](repeating: 0, count: item.size), to: path)
        let results = archive.storeBatch([item, item])
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        guard case .memory(let bytes) = item.message else { Issue.record("not in memory"); return }
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == bytes)
        #expect(permissions(path) == 0o600)
        #expect(state.files(in: "archive/" + String(item.sha256.prefix(2))) == [item.sha256])
        // Stored again: found by its hash, left alone.
        #expect(archive.storeBatch([item]).allSatisfy { (try? $0.get()) != nil })
        // The folders made at start: all 256, the existing one kept with its file.
        try archive.makeFolders()
        #expect(state.files(in: "archive").count == 256)
        #expect(state.files(in: "archive/" + String(item.sha256.prefix(2))) == [item.sha256])
    }
}
