// GatewayTests/Admin: counters summed in memory and written in one transaction per flush.

import Foundation
import Store
import Dispatch
import Synchronization
import Testing

@testable import Gateway

@Suite("CounterBatch")
struct CounterBatchTests {
    /// A clock the test moves by hand.
    final class TestClock: Sendable {
        let now: Mutex<Date>
        init(_ start: Date) { now = Mutex(start) }
        func read() -> Date { now.withLock { $0 } }
        func advance(_ seconds: Double) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
    }

    static func sums(_ database: MailGateDatabase, since: Date = .distantPast) throws -> [String: Int64] {
        var sums: [String: Int64] = [:]
        for total in try database.counters(since: since) {
            sums["\(total.name)|\(total.accountEmail ?? "-")|\(total.listener ?? "-")", default: 0] += total.value
        }
        return sums
    }

    @Test("a thousand increments from many threads: nothing in the database before the flush, one write after it")
    func manyIncrementsOneFlush() throws {
        let database = try MailGateDatabase.inMemory()
        let batch = CounterBatch(database: database, interval: 3_600, logger: quietLogger)
        let counters = StoreCounters(batch: batch)
        DispatchQueue.concurrentPerform(iterations: 1_000) { index in
            counters.increment("smtp.login.ok", account: "Alice@Contoso.com", listener: "smtp")
            if index % 4 == 0 { counters.add("imap.bytes_to_client", amount: 10, account: "bob@contoso.com", listener: "imap") }
        }
        #expect(try Self.sums(database).isEmpty, "increments must not be written one by one")
        #expect(batch.writeCount == 0)
        batch.flush()
        #expect(batch.writeCount == 1)
        #expect(
            try Self.sums(database) == [
                "smtp.login.ok|alice@contoso.com|smtp": 1_000, "imap.bytes_to_client|bob@contoso.com|imap": 2_500,
            ])
        batch.flush()
        #expect(batch.writeCount == 1, "an empty flush writes nothing")
        counters.increment("smtp.login.ok", account: "alice@contoso.com", listener: "smtp")
        batch.flush()
        #expect(try Self.sums(database)["smtp.login.ok|alice@contoso.com|smtp"] == 1_001)
    }

    @Test("stop writes what is pending")
    func stopFlushes() throws {
        let database = try MailGateDatabase.inMemory()
        let batch = CounterBatch(database: database, interval: 3_600, logger: quietLogger)
        batch.start()
        batch.add("smtp.sessions", account: nil, listener: "smtp")
        batch.add("smtp.sessions", account: nil, listener: "smtp")
        #expect(try Self.sums(database).isEmpty)
        batch.stop()
        #expect(try Self.sums(database) == ["smtp.sessions|-|smtp": 2])
    }

    @Test("with the timer running, figures reach the database within the flush interval")
    func timerFlushes() async throws {
        let database = try MailGateDatabase.inMemory()
        let batch = CounterBatch(database: database, interval: 0.3, logger: quietLogger)
        batch.start()
        defer { batch.stop() }
        let started = Date()
        for _ in 0..<50 { batch.add("imap.sessions", account: nil, listener: "imap") }
        let arrived = try await eventually(3) { try Self.sums(database)["imap.sessions|-|imap"] == 50 }
        #expect(arrived)
        #expect(Date().timeIntervalSince(started) < 1.5, "arrived after \(Date().timeIntervalSince(started)) s")
        #expect(batch.writeCount == 1, "50 increments, one write")
    }

    @Test("each increment keeps the hour it happened in, even when one flush holds two hours")
    func hoursKept() throws {
        let database = try MailGateDatabase.inMemory()
        // 10:59:59 UTC, then one second later 11:00:00.
        let clock = TestClock(Date(timeIntervalSince1970: 1_796_036_399))
        let batch = CounterBatch(database: database, interval: 3_600, logger: quietLogger, clock: { clock.read() })
        batch.add("smtp.sessions", account: nil, listener: "smtp")
        clock.advance(1)
        batch.add("smtp.sessions", account: nil, listener: "smtp")
        batch.add("smtp.sessions", account: nil, listener: "smtp")
        batch.flush()
        let before = Date(timeIntervalSince1970: 1_796_036_399)
        #expect(try Self.sums(database, since: before) == ["smtp.sessions|-|smtp": 3])
        #expect(try Self.sums(database, since: clock.read()) == ["smtp.sessions|-|smtp": 2])
    }

    @Test("distinct sums are bounded between flushes; reaching the bound flushes early")
    func bounded() async throws {
        let database = try MailGateDatabase.inMemory()
        let batch = CounterBatch(database: database, interval: 3_600, maximumKeys: 100, logger: quietLogger)
        for index in 0..<99 { batch.add("imap.login.failed", account: "user\(index)@scan.test", listener: "imap") }
        #expect(batch.pendingCount == 99)
        #expect(batch.writeCount == 0)
        batch.add("imap.login.failed", account: "user99@scan.test", listener: "imap")
        #expect(await eventually(3) { batch.writeCount == 1 }, "the bound must trigger a flush")
        #expect(try Self.sums(database).count == 100)
        #expect(batch.pendingCount <= 100)
    }
}
