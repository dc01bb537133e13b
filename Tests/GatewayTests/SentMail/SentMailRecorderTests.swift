// GatewayTests/SentMail: the recorder without a network: Message-ID, hash, spool, archive, journal, counters, jobs.

import Crypto
import Foundation
import MailCore
import Policy
import Store
import Testing
import Transport

@testable import Gateway

@Suite("SentMailRecorder")
struct SentMailRecorderTests {
    static let account = "alice@contoso.test"

    static func message(id: String?, body: Int, seed: UInt8 = 7) -> [UInt8] {
        var text = "From: Alice <alice@contoso.test>\r\nTo: bob@contoso.test\r\nSubject: test\r\n"
        if let id { text += "Message-ID: \(id)\r\n" }
        text += "\r\n"
        var bytes = Array(text.utf8)
        var value = seed
        for index in 0..<body {
            if index % 78 == 76 {
                bytes.append(0x0D)
            } else if index % 78 == 77 {
                bytes.append(0x0A)
            } else {
                value = value &* 31 &+ 17
                bytes.append(0x41 + value % 26)
            }
        }
        return bytes
    }

    static func policy(lock: Bool, mode: SentCopyMode = .never, imapPort: Int? = nil) -> SentMailPolicy {
        let imap = imapPort.map {
            UpstreamEndpoint(address: HostPort(host: "127.0.0.1", port: $0)!, security: .tls, caFile: nil)
        }
        return SentMailPolicy(lockAfterSend: lock, sentCopy: mode, messageIDDomain: "contoso.test", imap: imap)
    }

    struct Fixture {
        let state: TemporaryStateDirectory
        let database: MailGateDatabase
        let recorder: SentMailRecorder

        init(limits: Limits = .standard, delays: [Double] = [5, 30], credentials: FixedCredentials? = nil) throws {
            state = try TemporaryStateDirectory()
            database = try MailGateDatabase.inMemory()
            recorder = SentMailRecorder(
                database: database, stateDirectory: state.path, limits: limits,
                credentials: credentials ?? FixedCredentials([:]), logger: quietLogger, copyRetryDelays: delays,
                autoFileDelay: 0)
        }

        func begin(_ policy: SentMailPolicy) -> MessageRecording {
            recorder.begin(
                account: SentMailRecorderTests.account, listener: "smtp", mailFrom: SentMailRecorderTests.account,
                recipients: ["bob@contoso.test", "carol@example.com"], policy: policy)
        }
    }

    // MARK: - Bytes, hash, spool

    @Test func forwardsTheMessageUnchangedAndHashesExactlyWhatWasForwarded() throws {
        let fixture = try Fixture()
        let message = Self.message(id: "<kept@contoso.test>", body: 5_000)
        let recording = fixture.begin(Self.policy(lock: false))
        let out = try recording.feed(message, chunk: 333)
        #expect(out == message)
        #expect(recording.messageID == "<kept@contoso.test>")
        #expect(recording.size == message.count)
        #expect(recording.sha256Hex == SHA256.hex(out))
        #expect(recording.spooledMessage == .memory(out))
    }

    @Test func addsAMessageIDAndTheSpoolAndHashCarryIt() throws {
        let fixture = try Fixture()
        let message = Self.message(id: nil, body: 300)
        let recording = fixture.begin(Self.policy(lock: false))
        let out = try recording.feed(message, chunk: 1)
        let line = Array("Message-ID: \(recording.messageID)\r\n".utf8)
        #expect(recording.messageID.hasSuffix("@contoso.test>"))
        #expect(out == line + message)
        #expect(recording.sha256Hex == SHA256.hex(out))
        #expect(recording.size == out.count)
        #expect(recording.spooledMessage == .memory(out))
        #expect(MessageID.extract(fromHeaderOf: out) == recording.messageID)
    }

    @Test func twentyMebibytesStreamWithBoundedMemoryAndSpillToAFile() throws {
        var limits = Limits.standard
        limits.spoolMemory = 1_048_576
        let fixture = try Fixture(limits: limits)
        let recording = fixture.begin(Self.policy(lock: false))
        let hasher = SHA256Hasher()
        var forwarded = 0
        var header = Array("From: a@contoso.test\r\nMessage-ID: <big@contoso.test>\r\n\r\n".utf8)
        var chunk = [UInt8](repeating: 0x61, count: 65_536)
        for index in 0..<320 {  // 20 MiB of body
            chunk[0] = UInt8(truncatingIfNeeded: index)
            let input = index == 0 ? header + chunk : chunk
            header = []
            let out = try recording.append(input)
            hasher.update(out)
            forwarded += out.count
        }
        let rest = try recording.finishInput()
        hasher.update(rest)
        forwarded += rest.count
        #expect(forwarded == 20 * 1_048_576 + 56)
        #expect(recording.spoolMemoryHighWater <= limits.spoolMemory)
        let digest = SHA256.hexString(hasher.finalize())
        #expect(recording.sha256Hex == digest)
        guard case .file(let path)? = recording.spooledMessage else {
            Issue.record("a 20 MiB message must spill to a file")
            return
        }
        #expect(path.hasPrefix(fixture.state.path + "/spool/"))
        #expect(permissions(path) == 0o600)
        let fileHasher = SHA256Hasher()
        var fileCount = 0
        try DurableFile.readChunks(path) { chunk in
            fileHasher.update(chunk)
            fileCount += chunk.count
        }
        #expect(fileCount == forwarded)
        #expect(SHA256.hexString(fileHasher.finalize()) == digest)
    }

    @Test func refusesAMessageLargerThanTheLimit() throws {
        var limits = Limits.standard
        limits.messageSize = 1_000
        let fixture = try Fixture(limits: limits)
        let recording = fixture.begin(Self.policy(lock: false))
        #expect(throws: SentMailError.messageTooLarge(actualCount: 1_024, maximumCount: 1_000)) {
            _ = try recording.append(Array("Message-ID: <a@b>\r\n\r\n".utf8) + [UInt8](repeating: 0x41, count: 1_003))
        }
    }

    @Test func rejectsCallsOutOfOrder() async throws {
        let fixture = try Fixture()
        let recording = fixture.begin(Self.policy(lock: true))
        #expect(throws: SentMailError.self) {
            _ = try recording.finishInput()
            _ = try recording.append([0x41])
        }
        let early = fixture.begin(Self.policy(lock: true))
        let result = await early.prepare()
        #expect(throws: SentMailError.self) { try result.get() }
        #expect(try fixture.database.journalEntries().isEmpty)
    }

    // MARK: - Archive and journal

    @Test func prepareCommitArchivesByHashAndInsertsAPendingRow() async throws {
        let fixture = try Fixture()
        let recording = fixture.begin(Self.policy(lock: true))
        let out = try recording.feed(Self.message(id: nil, body: 2_000), chunk: 100)
        try await recording.prepare().get()

        let sha = recording.sha256Hex
        let archived = fixture.state.path + "/archive/" + String(sha.prefix(2)) + "/" + sha
        #expect(FileManager.default.contents(atPath: archived).map(Array.init) == out)
        #expect(permissions(archived) == 0o600)
        #expect(JournalVerifier.archivePath(sha256: sha, directory: fixture.state.path + "/archive") == archived)

        let entries = try fixture.database.journalEntries()
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry.status == .pending)
        #expect(entry.sha256 == sha)
        #expect(entry.size == Int64(out.count))
        #expect(entry.messageID == recording.messageID)
        #expect(entry.mailFrom == Self.account)
        #expect(entry.rcptTo == ["bob@contoso.test", "carol@example.com"])
        #expect(entry.sentCopyState == .disabled)
        #expect(recording.pendingJournalSequence == entry.sequence)
    }

    @Test func commitCompletesTheRowWithTheCountersAndTheChainVerifies() async throws {
        let fixture = try Fixture()
        var sizes: [Int] = []
        for index in 0..<3 {
            let recording = fixture.begin(Self.policy(lock: true))
            _ = try recording.feed(Self.message(id: "<m\(index)@contoso.test>", body: 500 * (index + 1)), chunk: 64)
            try await recording.prepare().get()
            try await recording.commit(reply: "250 2.0.0 OK queued as \(index)").get()
            sizes.append(recording.size)
        }
        let entries = try fixture.database.journalEntries()
        #expect(entries.map(\.sequence) == [1, 2, 3])
        #expect(entries.allSatisfy { $0.status == .sent })
        #expect(
            entries.map(\.upstreamReply) == [
                "250 2.0.0 OK queued as 0", "250 2.0.0 OK queued as 1", "250 2.0.0 OK queued as 2",
            ])
        #expect(try counter(fixture.database, "messages_relayed", account: Self.account) == 3)
        #expect(try counter(fixture.database, "bytes_relayed", account: Self.account) == Int64(sizes.reduce(0, +)))
        let verification = JournalVerifier.verify(entries: entries, archiveDirectory: fixture.state.path + "/archive")
        #expect(verification.isOK)
        #expect(verification.unknownFate.isEmpty && verification.pending.isEmpty)
        // Nothing is left in the spool when no copy is wanted.
        #expect(fixture.state.files(in: "spool").isEmpty)
    }

    @Test func abandonWithUnknownFateIsReportedByTheVerifier() async throws {
        let fixture = try Fixture()
        let recording = fixture.begin(Self.policy(lock: true))
        _ = try recording.feed(Self.message(id: nil, body: 100), chunk: 1_000)
        try await recording.prepare().get()
        recording.abandon(reason: "upstream connection lost", fateUnknown: true)
        _ = recording.pendingJournalSequence  // waits for the recording's work queue
        let entries = try fixture.database.journalEntries()
        #expect(entries.map(\.status) == [.unknown])
        let verification = JournalVerifier.verify(entries: entries, archiveDirectory: fixture.state.path + "/archive")
        #expect(verification.unknownFate == [1])
        #expect(try counter(fixture.database, "messages_relayed", account: Self.account) == 0)
        #expect(try counter(fixture.database, "messages_fate_unknown", account: Self.account) == 1)
    }

    @Test func refusedMessagesAreJournaledAsFailedAndCountedByClass() async throws {
        let fixture = try Fixture()
        for reply in ["554 5.2.252 SendAsDenied", "451 4.3.0 try later"] {
            let recording = fixture.begin(Self.policy(lock: true))
            _ = try recording.feed(Self.message(id: nil, body: 100), chunk: 1_000)
            try await recording.prepare().get()
            recording.abandon(reason: reply, fateUnknown: false)
            _ = recording.pendingJournalSequence
        }
        // Refused at RCPT/DATA time, before prepareCommit: no row, still counted.
        let early = fixture.begin(Self.policy(lock: true))
        _ = try early.append(Array("Subject: x\r\n".utf8))
        early.abandon(reason: "550 5.7.1 nope", fateUnknown: false)
        _ = early.pendingJournalSequence
        let entries = try fixture.database.journalEntries()
        #expect(entries.map(\.status) == [.failed, .failed])
        #expect(entries.map(\.upstreamReply) == ["554 5.2.252 SendAsDenied", "451 4.3.0 try later"])
        #expect(try counter(fixture.database, "upstream_rejected_5xx", account: Self.account) == 2)
        #expect(try counter(fixture.database, "upstream_rejected_4xx", account: Self.account) == 1)
        #expect(JournalVerifier.verify(entries: entries, archiveDirectory: fixture.state.path + "/archive").isOK)
        #expect(fixture.state.files(in: "spool").isEmpty)
    }

    @Test func aCrashBetweenTheFinalDotAndTheVerdictLeavesAReportedRow() async throws {
        let fixture = try Fixture()
        do {
            let recording = fixture.begin(Self.policy(lock: true))
            _ = try recording.feed(Self.message(id: "<crash@contoso.test>", body: 100), chunk: 1_000)
            try await recording.prepare().get()
            // The process "dies" here: no commit, no abandon.
        }
        let pending = JournalVerifier.verify(
            entries: try fixture.database.journalEntries(), archiveDirectory: fixture.state.path + "/archive")
        #expect(pending.pending == [1])
        // What `serve` does at the next start: the row's fate becomes unknown, and verify reports it.
        #expect(try fixture.database.markInterruptedJournalEntries() == [1])
        let after = JournalVerifier.verify(
            entries: try fixture.database.journalEntries(), archiveDirectory: fixture.state.path + "/archive")
        #expect(after.unknownFate == [1])
    }

    @Test func withoutLockAfterSendOnlyTheCountersMove() async throws {
        let fixture = try Fixture()
        let recording = fixture.begin(Self.policy(lock: false))
        _ = try recording.feed(Self.message(id: nil, body: 10), chunk: 1_000)
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        #expect(try fixture.database.journalEntries().isEmpty)
        #expect(fixture.state.files(in: "archive").isEmpty)
        // Without a row the counters wait in memory (no commit before the 250) until the writer's next flush.
        #expect(try counter(fixture.database, "messages_relayed", account: Self.account) == 0)
        fixture.recorder.flushJournal()
        #expect(try counter(fixture.database, "messages_relayed", account: Self.account) == 1)
    }

    @Test func rejectionCounterNames() {
        #expect(MessageRecording.rejectionCounter("550 5.1.1 unknown") == "upstream_rejected_5xx")
        #expect(MessageRecording.rejectionCounter("421-4.3.2 busy") == "upstream_rejected_4xx")
        #expect(MessageRecording.rejectionCounter("452") == "upstream_rejected_4xx")
        #expect(MessageRecording.rejectionCounter("250 OK") == nil)
        #expect(MessageRecording.rejectionCounter("upstream connection lost") == nil)
        #expect(MessageRecording.rejectionCounter("5500 odd") == nil)
        #expect(MessageRecording.rejectionCounter("") == nil)
    }

    // MARK: - Sent-copy jobs (no server reachable)

    @Test func neverMakesNoJobAndRecordsDisabled() async throws {
        let fixture = try Fixture()
        let recording = fixture.begin(Self.policy(lock: true, mode: .never, imapPort: 993))
        _ = try recording.feed(Self.message(id: nil, body: 10), chunk: 1_000)
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        #expect(try fixture.database.journalEntries().map(\.sentCopyState) == [.disabled])
        #expect(fixture.state.files(in: "spool").isEmpty)
    }

    @Test func anUnreachableServerIsRetriedThenGivenUpButTheJobAndMessageStay() async throws {
        let fixture = try Fixture(delays: [0.05, 0.05], credentials: FixedCredentials([:]))
        fixture.recorder.start()
        let recording = fixture.begin(Self.policy(lock: true, mode: .always, imapPort: closedLoopbackPort()))
        let out = try recording.feed(Self.message(id: nil, body: 2_000), chunk: 1_000)
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        #expect(try fixture.database.journalEntries().map(\.sentCopyState) == [.pending])

        let givenUp = await eventually(10) {
            (try? fixture.database.journalEntries().first?.sentCopyState) == .failed
        }
        #expect(givenUp)
        #expect(await fixture.recorder.service.attemptCount == 3)
        // Lock-after-send: the job reads the archived original (written once) and stays in the database.
        let archived = fixture.state.path + "/archive/" + String(recording.sha256Hex.prefix(2)) + "/" + recording.sha256Hex
        #expect(FileManager.default.contents(atPath: archived).map(Array.init) == out)
        #expect(fixture.state.files(in: "spool").isEmpty)
        let records = try fixture.database.sentCopyJobs()
        #expect(records.map(\.state) == [.gaveUp])
        let job = try SentCopyJob.decode(try #require(records.first))
        #expect(job.id == recording.spoolID)
        #expect(job.gaveUp)
        #expect(job.attempts == 3)
        #expect(job.messageID == recording.messageID)
        #expect(job.journalSequence == 1)
        #expect(job.lastError?.contains("connect") == true)
        #expect(try counter(fixture.database, "sent_copy_failed", account: Self.account) == 1)
        await fixture.recorder.shutdown()
    }

    @Test func spooledJobsSurviveARestart() async throws {
        let fixture = try Fixture(delays: [3_600])
        let recording = fixture.begin(Self.policy(lock: false, mode: .auto, imapPort: closedLoopbackPort()))
        _ = try recording.feed(Self.message(id: nil, body: 70_000), chunk: 4_096)
        try await recording.prepare().get()
        try await recording.commit(reply: "250 OK").get()
        let files = fixture.state.files(in: "spool")
        #expect(files == [recording.spoolID + ".eml"])
        #expect(try fixture.database.sentCopyJobs().map(\.state) == [.queued])

        // A new process: a second recorder on the same state directory re-queues the job.
        let restarted = SentMailRecorder(
            database: fixture.database, stateDirectory: fixture.state.path, limits: .standard,
            credentials: FixedCredentials([:]), logger: quietLogger, copyRetryDelays: [3_600], autoFileDelay: 0)
        restarted.start()
        let service = restarted.service
        #expect(await eventually(5) { await !service.queuedJobs.isEmpty })
        let queued = await service.queuedJobs
        #expect(queued.map(\.id) == [recording.spoolID])
        #expect(queued.first?.messageID == recording.messageID)
        #expect(queued.first?.mode == "auto")
        await restarted.shutdown()
        // Stopped with the copy still owed: the message and its job are still there for the next start.
        #expect(fixture.state.files(in: "spool") == files)
        #expect(try fixture.database.sentCopyJobs().map(\.id) == [recording.spoolID])
    }
}
