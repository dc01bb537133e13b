// GatewayTests/SentMail: the copy job stored with the pending journal row (issue 9 point 3), its persist retry,
// the interrupted rows left for the fate search, and cancelQueuedCopy.

import Foundation
import MailCore
import Policy
import Store
import Testing

@testable import Gateway

@Suite("SentCopyJobStore")
struct SentCopyJobStoreTests {
    static let account = SentMailRecorderTests.account

    private static func send(
        _ fixture: SentMailRecorderTests.Fixture, lock: Bool, mode: SentCopyMode, port: Int = 993,
        messageID: String? = nil
    ) throws -> MessageRecording {
        let recording = fixture.begin(SentMailRecorderTests.policy(lock: lock, mode: mode, imapPort: port))
        _ = try recording.feed(SentMailRecorderTests.message(id: messageID, body: 3_000), chunk: 1_000)
        return recording
    }

    @Test func theJobIsStoredWithThePendingRowAndPointsAtTheArchive() async throws {
        let fixture = try SentMailRecorderTests.Fixture()
        let recording = try Self.send(fixture, lock: true, mode: .auto)
        try await recording.prepare().get()

        // Before the final dot: one pending row and its job, awaiting the verdict, in the same database.
        let rows = try fixture.database.journalEntries()
        #expect(rows.map(\.status) == [.pending])
        let records = try fixture.database.sentCopyJobs()
        try #require(records.count == 1)
        #expect(records[0].state == .awaitingVerdict)
        #expect(records[0].journalSequence == 1)
        #expect(records[0].messageID == recording.messageID)
        let job = try SentCopyJob.decode(records[0])
        #expect(job.inArchive == true)
        #expect(job.resolveFate == true)
        #expect(job.sha256 == recording.sha256Hex)

        try await recording.commit(reply: "250 OK").get()
        // The completion made it due in its own transaction; the message was written once (the archive).
        #expect(try fixture.database.sentCopyJobs().map(\.state) == [.queued])
        #expect(try fixture.database.journalEntries().map(\.sentCopyState) == [.pending])
        #expect(fixture.state.files(in: "spool").isEmpty)
        #expect(fixture.state.files(in: "archive").count == 1)
    }

    @Test func aRefusedMessageLeavesNoJob() async throws {
        let fixture = try SentMailRecorderTests.Fixture()
        let recording = try Self.send(fixture, lock: true, mode: .always)
        try await recording.prepare().get()
        #expect(try fixture.database.sentCopyJobs().count == 1)
        recording.abandon(reason: "550 5.7.1 refused", fateUnknown: false)
        #expect(await eventually(5) { (try? fixture.database.sentCopyJobs().isEmpty) == true })
        #expect(try fixture.database.journalEntries().map(\.status) == [.failed])
    }

    @Test func anInterruptedRowWithAJobStaysPendingForTheFateSearch() async throws {
        let fixture = try SentMailRecorderTests.Fixture()
        let recording = try Self.send(fixture, lock: true, mode: .auto)
        try await recording.prepare().get()
        // A second message without a copy job, also interrupted.
        let plain = try Self.send(fixture, lock: true, mode: .never)
        try await plain.prepare().get()

        // "The next start": only the row without a job becomes unknown.
        #expect(try fixture.database.markInterruptedJournalEntries() == [2])
        #expect(try fixture.database.journalEntries().map(\.status) == [.pending, .unknown])
        let loaded = SentCopyService.loadJobs(
            spoolDirectory: fixture.state.path + "/spool", database: fixture.database, logger: quietLogger)
        #expect(loaded.map(\.id) == [recording.spoolID])
        #expect(loaded.first?.resolveFate == true)
        #expect(loaded.first?.journalSequence == 1)
    }

    @Test func anUnreachableServerDuringTheFateSearchMarksTheRowUnknownAndKeepsSearching() async throws {
        let fixture = try SentMailRecorderTests.Fixture(delays: [3_600])
        let recording = try Self.send(fixture, lock: true, mode: .auto, port: closedLoopbackPort())
        try await recording.prepare().get()
        _ = try fixture.database.markInterruptedJournalEntries()
        fixture.recorder.start()
        let service = fixture.recorder.service
        #expect(await eventually(10) { await service.attemptCount >= 1 })
        #expect(
            await eventually(5) { (try? fixture.database.journalEntries().first?.status) == .unknown },
            "a failed search must not hold back the chain")
        #expect(try fixture.database.journalEntries().first?.isChained == true)
        // The job is kept (retried later), still to settle its copy by a search.
        let records = try fixture.database.sentCopyJobs()
        #expect(records.map(\.id) == [recording.spoolID])
        #expect(try records.first.map(SentCopyJob.decode)?.attempts == 1)
        await fixture.recorder.shutdown()
    }

    @Test func aFailedPersistIsRetriedNotGivenUp() async throws {
        let fixture = try SentMailRecorderTests.Fixture(delays: [3_600])
        fixture.recorder.start()
        fixture.recorder.testHooks.failNextPersists(2)
        let recording = try Self.send(fixture, lock: false, mode: .always)
        recording.completionRetry = JournalCompletionRetry(initialDelay: 0.02, maximumDelay: 0.05, maximumAttempts: 5)
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        // Two failures, then the third attempt stores the job and hands it to the worker.
        #expect(await eventually(5) { (try? fixture.database.sentCopyJobs().map(\.state)) == [.queued] })
        let service = fixture.recorder.service
        #expect(await eventually(5) { await service.queuedJobs.map(\.id) == [recording.spoolID] })
        #expect(fixture.state.files(in: "spool") == [recording.spoolID + ".eml"])
        await fixture.recorder.shutdown()
    }

    @Test func cancelQueuedCopyDropsAQueuedJobOnce() async throws {
        let fixture = try SentMailRecorderTests.Fixture(delays: [3_600])
        fixture.recorder.start()
        let service = fixture.recorder.service
        await service.setHoldAll(true)
        let recording = try Self.send(fixture, lock: true, mode: .always, messageID: "<own@contoso.test>")
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        #expect(await eventually(5) { await service.queuedJobs.count == 1 })

        #expect(!service.cancelQueuedCopy(accountEmail: Self.account, messageID: "<other@contoso.test>"))
        #expect(service.cancelQueuedCopy(accountEmail: "Alice@Contoso.test", messageID: "<own@contoso.test>"))
        #expect(!service.cancelQueuedCopy(accountEmail: Self.account, messageID: "<own@contoso.test>"))
        #expect(await eventually(5) { await service.queuedJobs.isEmpty })
        #expect(try fixture.database.sentCopyJobs().isEmpty)
        #expect(try fixture.database.journalEntries().map(\.sentCopyState) == [.skipped])
        #expect(try counter(fixture.database, "sent_copy_cancelled", account: Self.account) == 1)
        await service.setHoldAll(false)
        await fixture.recorder.shutdown()
        #expect(await service.attemptCount == 0)
    }

    @Test func aRunningCopyCannotBeCancelled() {
        let registry = SentCopyRegistry()
        let job = SentCopyJob(
            id: "abc", account: Self.account, listener: "smtp", messageID: "<m@x>", journalSequence: nil,
            sha256: String(repeating: "a", count: 64), size: 1, mode: "always", sentFolder: nil, imapHost: "127.0.0.1",
            imapPort: 993, imapSecurity: "tls", caFile: nil, sentAt: 0, attempts: 0, nextAttemptAt: 0, lastError: nil,
            gaveUp: false)
        registry.add(job)
        #expect(registry.claim("abc"))
        #expect(registry.cancel(accountEmail: Self.account, messageID: "<m@x>") == nil)
        registry.release("abc")
        #expect(registry.cancel(accountEmail: Self.account, messageID: "<m@x>")?.id == "abc")
        #expect(!registry.claim("abc"))
    }
}
