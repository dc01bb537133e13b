// StoreTests: group commit: several journal operations in one transaction, each isolated in its savepoint.
import Crypto
import Foundation
import Store
import Testing

@Suite("Journal batch")
struct JournalBatchTests {
    static func insert(_ message: String) -> JournalBatchOperation {
        let bytes = Array(message.utf8)
        return .insertPending(
            JournalPendingInsert(
                accountEmail: "Alice@contoso.com", listener: "smtp", mailFrom: "alice@contoso.com",
                rcptTo: ["bob@example.com"], messageID: "<\(message)@contoso.com>", size: Int64(bytes.count),
                sha256: SHA256.hex(bytes), sentCopyState: .disabled))
    }

    @Test("one failing operation is rolled back alone; the rest commit, get gap-free sequences and chain")
    func savepointsIsolateFailures() throws {
        let db = try MailGateDatabase.inMemory()
        let results = try db.applyJournalBatch([
            Self.insert("one"),
            .insertPending(
                JournalPendingInsert(
                    accountEmail: "alice@contoso.com", listener: "smtp", mailFrom: "", rcptTo: [], messageID: "<x>",
                    size: 1, sha256: "short")),
            Self.insert("two"),
            .complete(JournalCompletion(sequence: 1, status: .sent, upstreamReply: "250 OK")),
            .complete(JournalCompletion(sequence: 7, status: .sent, upstreamReply: "250 OK")),
            .count([CounterIncrement("messages_relayed", account: "alice@contoso.com", amount: 2)]),
        ])
        #expect(results.count == 6)
        #expect(try results[0].get() == 1)
        func failed(_ result: Result<Int64?, StoreError>) -> Bool { if case .failure = result { true } else { false } }
        #expect(failed(results[1]))
        #expect(try results[2].get() == 2)
        #expect(!failed(results[3]))
        #expect(failed(results[4]))
        #expect(!failed(results[5]))
        let entries = try db.journalEntries()
        #expect(entries.map(\.sequence) == [1, 2])
        #expect(entries.map(\.status) == [.sent, .pending])
        #expect(entries[0].accountEmail == "alice@contoso.com")
        #expect(entries[0].isChained && !entries[1].isChained)
        let total = try db.counters(since: Date(timeIntervalSinceNow: -3_600)).first { $0.name == "messages_relayed" }
        #expect(total?.value == 2)
    }
}
