// GatewayTests/SentMail: one kept IMAP connection per account for the sent copies, and the batch search of
// several Message-IDs (issue 9, speed).

import Crypto
import Foundation
import MailCore
import Policy
import Store
import Testing
import Transport

@testable import Gateway

extension StandInTests.SentCopyIntegrationTests {
    @Test func severalCopiesShareOneLoggedInConnection() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        let harness = try Harness(standIn)
        var ids: [String] = []
        for index in 0..<4 {
            let id = Self.uniqueID("pooled-\(index)")
            ids.append(id)
            _ = try await harness.send(
                Self.message(from: alice, subject: "pooled \(index)", id: id), account: alice, mode: .always,
                endpoint: standIn.endpoint())
        }
        let database = harness.database
        #expect(
            await eventually(30) {
                (try? database.journalEntries().allSatisfy { $0.sentCopyState == .made }) == true
            })
        for id in ids { #expect(try await harness.copies(of: id, user: alice, folder: "Sent Items").count == 1) }
        #expect(await harness.recorder.service.connectionsOpened == 1)
        await harness.recorder.shutdown()
    }

    @Test func autoChecksSeveralDueMessagesWithOneSearchAndFilesEachOnce() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        try standIn.control("autofile", json: "{\"enabled\": false}")
        let harness = try Harness(standIn, autoFileDelay: 1.5)
        var ids: [String] = []
        for index in 0..<5 {
            let id = Self.uniqueID("batch-\(index)")
            ids.append(id)
            _ = try await harness.send(
                Self.message(from: alice, subject: "batch \(index)", id: id), account: alice, mode: .auto,
                endpoint: standIn.endpoint())
        }
        let database = harness.database
        #expect(
            await eventually(30) {
                (try? database.journalEntries().allSatisfy { $0.sentCopyState == .made }) == true
            })
        for id in ids { #expect(try await harness.copies(of: id, user: alice, folder: "Sent Items").count == 1) }
        let service = harness.recorder.service
        #expect(await service.batchSearches >= 1)
        #expect(await service.connectionsOpened == 1)
        await harness.recorder.shutdown()
    }

    @Test func anIdleConnectionIsClosedAndTheNextCopyOpensAnother() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase.inMemory()
        let service = SentCopyService(
            spoolDirectory: state.path + "/spool", archive: MessageArchive(directory: state.path + "/archive"),
            database: database, credentials: StandInCredentials(standIn), logger: quietLogger, retryDelays: [0.3],
            limits: .standard, idleClose: 0.5)
        await service.start(with: [])
        for index in 0..<2 {
            let id = Self.uniqueID("idle-\(index)")
            let bytes = Self.message(from: alice, subject: "idle \(index)", id: id)
            let archive = MessageArchive(directory: state.path + "/archive")
            let sha = SHA256.hex(bytes)
            try archive.store(.memory(bytes), sha256: sha, size: bytes.count)
            let endpoint = standIn.endpoint()
            let job = SentCopyJob(
                id: "idle\(index)", account: alice, listener: "smtp", messageID: id, journalSequence: nil, sha256: sha,
                size: bytes.count, mode: "always", sentFolder: nil, imapHost: endpoint.address.host,
                imapPort: endpoint.address.port, imapSecurity: endpoint.security.rawValue, caFile: endpoint.caFile,
                sentAt: 0, attempts: 0, nextAttemptAt: 0, lastError: nil, gaveUp: false, inArchive: true)
            await service.enqueue(job)
            #expect(await eventually(20) { await service.queuedJobs.isEmpty })
            if index == 0 { try await Task.sleep(nanoseconds: 1_500_000_000) }
        }
        #expect(await service.connectionsOpened == 2, "the first connection was closed after 0.5 s idle")
        await service.stop()
    }
}
