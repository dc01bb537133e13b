// GatewayTests: a failed journal completion is retried so the chain does not stall until the next restart.
import Dispatch
import Foundation
import MailCore
import Store
import Synchronization
import Testing

@testable import Gateway

@Suite("Journal completion retry")
struct JournalCompletionRetryTests {
    typealias R = SentMailRecorderTests
    static let queue = DispatchQueue(label: "test.journal-retry")

    private func run(
        _ retry: JournalCompletionRetry, _ complete: @escaping () throws(StoreError) -> Void
    ) async -> (Int, StoreError?) {
        let box = UncheckedSendable(complete)
        return await withCheckedContinuation { continuation in
            Self.queue.async {
                retry.run(on: Self.queue, box.value) { attempts, error in continuation.resume(returning: (attempts, error)) }
            }
        }
    }

    @Test("a completion that fails twice is retried; the row is completed and the rows after it get chained")
    func retriedCompletionUnstallsTheChain() async throws {
        let fixture = try R.Fixture()
        let first = fixture.begin(R.policy(lock: true))
        _ = try first.feed(R.message(id: "<stalled@contoso.test>", body: 100), chunk: 1_000)
        try await first.prepare().get()
        let second = fixture.begin(R.policy(lock: true))
        _ = try second.feed(R.message(id: "<after@contoso.test>", body: 100, seed: 9), chunk: 1_000)
        try await second.prepare().get()
        try await second.commit(reply: "250 2.0.0 OK second").get()
        // Row 1 pending: row 2 is sent but cannot be chained.
        var entries = try fixture.database.journalEntries()
        #expect(entries.map(\.isChained) == [false, false])
        #expect(JournalVerifier.verify(entries: entries, archiveDirectory: fixture.state.path + "/archive").pending == [1])

        let failures = Mutex(0)
        let database = fixture.database
        let retry = JournalCompletionRetry(initialDelay: 0.01, maximumDelay: 0.05, maximumAttempts: 5)
        let (attempts, error) = await run(retry) { () throws(StoreError) in
            if failures.withLock({ $0 += 1; return $0 <= 2 }) {
                throw StoreError.database(operation: "complete a journal entry", reason: "disk I/O error")
            }
            try database.completeJournalEntry(sequence: 1, status: .sent, upstreamReply: "250 2.0.0 OK first")
        }
        #expect(error == nil)
        #expect(attempts == 3)
        entries = try fixture.database.journalEntries()
        #expect(entries.map(\.status) == [.sent, .sent])
        #expect(entries.map(\.isChained) == [true, true])
        let verification = JournalVerifier.verify(entries: entries, archiveDirectory: fixture.state.path + "/archive")
        #expect(verification.isOK)
        #expect(verification.pending.isEmpty)
    }

    @Test("retries stop at maximumAttempts, and at once for an answer waiting cannot change")
    func boundedAndStopsOnPermanentErrors() async {
        let calls = Mutex(0)
        let retry = JournalCompletionRetry(initialDelay: 0.005, maximumDelay: 0.01, maximumAttempts: 4)
        let (attempts, error) = await run(retry) { () throws(StoreError) in
            calls.withLock { $0 += 1 }
            throw StoreError.database(operation: "x", reason: "locked")
        }
        #expect(attempts == 4)
        #expect(calls.withLock { $0 } == 4)
        #expect(error == .database(operation: "x", reason: "locked"))

        let permanent = Mutex(0)
        let (once, last) = await run(retry) { () throws(StoreError) in
            permanent.withLock { $0 += 1 }
            throw StoreError.journalEntryNotPending(sequence: 1, status: "sent")
        }
        #expect(once == 1)
        #expect(permanent.withLock { $0 } == 1)
        #expect(last == .journalEntryNotPending(sequence: 1, status: "sent"))
    }

    @Test("the back-off doubles and is bounded")
    func backOff() {
        let retry = JournalCompletionRetry(initialDelay: 0.5, maximumDelay: 4, maximumAttempts: 10)
        #expect((1...6).map { retry.delay(beforeAttempt: $0) } == [0.5, 1, 2, 4, 4, 4])
    }
}
