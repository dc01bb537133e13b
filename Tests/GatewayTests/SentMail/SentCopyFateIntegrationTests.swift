// GatewayTests/SentMail: a restart settles the fate of a message interrupted between the final dot and its
// journal completion by searching the stand-in's Sent folder (issue 9 point 3).

import Foundation
import MailCore
import Policy
import Store
import Testing

@testable import Gateway

extension StandInTests.SentCopyIntegrationTests {
    /// Records up to the pending row (the final dot "went upstream", then the process died), then starts a second
    /// recorder on the same database and state directory, as the next `serve` would.
    private func interruptAndRestart(
        _ harness: Harness, _ message: [UInt8], account: String, mode: SentCopyMode
    ) async throws -> (recording: MessageRecording, restarted: SentMailRecorder) {
        let policy = SentMailPolicy(
            lockAfterSend: true, sentCopy: mode, messageIDDomain: "contoso.test", imap: harness.standIn.endpoint())
        let recording = harness.recorder.begin(
            account: account, listener: "smtp", mailFrom: account, recipients: ["bob@contoso.test"], policy: policy)
        _ = try recording.feed(message, chunk: 4_096)
        try await recording.prepare().get()
        await harness.recorder.shutdown()

        #expect(try harness.database.markInterruptedJournalEntries().isEmpty, "the row waits for the fate search")
        let restarted = SentMailRecorder(
            database: harness.database, stateDirectory: harness.state.path, limits: .standard,
            credentials: harness.credentials, logger: quietLogger, copyRetryDelays: [0.3, 0.3], autoFileDelay: 0)
        restarted.start()
        return (recording, restarted)
    }

    private func settledStatus(_ database: MailGateDatabase, within seconds: Double) async -> JournalStatus? {
        _ = await eventually(seconds) {
            let row = try? database.journalEntries().first
            return row != nil && row?.status != .pending && row?.sentCopyState != .pending
        }
        return try? database.journalEntries().first?.status
    }

    @Test func aRestartFindsTheServersCopyAndJournalsTheMessageAsSent() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        try standIn.control("autofile", json: "{\"enabled\": true}")
        defer { _ = try? standIn.control("autofile", json: "{\"enabled\": false}") }
        let harness = try Harness(standIn)
        let id = Self.uniqueID("fate-found")
        let message = Self.message(from: alice, subject: "interrupted, filed by the server", id: id)
        // The upstream accepted it and filed it in Sent; MailGate "died" before recording the 250.
        let token = try await harness.credentials.xoauth2(for: alice).token.revealed
        try await submitDirectly(standIn, user: alice, token: token, to: "bob@contoso.test", message: message)
        // The stand-in files SMTP mail after delivery, as Exchange does; the premise is that it has done so.
        let filed = await eventually(20) { ((try? await harness.copies(of: id, user: alice, folder: "Sent Items"))?.count ?? 0) == 1 }
        try #require(filed, "the stand-in filed its own copy in Sent Items")

        let (_, restarted) = try await interruptAndRestart(harness, message, account: alice, mode: .auto)
        #expect(await settledStatus(harness.database, within: 20) == .sent)
        let row = try #require(try harness.database.journalEntries().first)
        #expect(row.sentCopyState == .skipped)
        #expect(row.isChained)
        #expect(row.upstreamReply?.contains("found in Sent Items") == true, "\(row.upstreamReply ?? "nil")")
        #expect(try harness.database.sentCopyJobs().isEmpty)
        #expect(try await harness.copies(of: id, user: alice, folder: "Sent Items").count == 1)
        await restarted.shutdown()
    }

    @Test func autoLeavesAnUnfoundMessageUnknownAndMakesNoCopy() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        try standIn.control("autofile", json: "{\"enabled\": false}")
        let harness = try Harness(standIn)
        let id = Self.uniqueID("fate-unknown-auto")
        let message = Self.message(from: alice, subject: "interrupted, not in Sent", id: id)
        let (_, restarted) = try await interruptAndRestart(harness, message, account: alice, mode: .auto)
        #expect(await settledStatus(harness.database, within: 20) == .unknown)
        let row = try #require(try harness.database.journalEntries().first)
        #expect(row.sentCopyState == .failed)
        #expect(row.upstreamReply?.contains("holds no message with its Message-ID") == true)
        #expect(try harness.database.sentCopyJobs().isEmpty)
        #expect(try await harness.copies(of: id, user: alice, folder: "Sent Items").isEmpty)
        await restarted.shutdown()
    }

    @Test func alwaysLeavesAnUnfoundMessageUnknownAndFilesOneCopy() async throws {
        guard let standIn = StandIn.load() else { return }
        let alice = standIn["USER_ALICE"]
        try standIn.control("autofile", json: "{\"enabled\": false}")
        let harness = try Harness(standIn)
        let id = Self.uniqueID("fate-unknown-always")
        let message = Self.message(from: alice, subject: "interrupted, always", id: id)
        let (_, restarted) = try await interruptAndRestart(harness, message, account: alice, mode: .always)
        #expect(await settledStatus(harness.database, within: 20) == .unknown)
        #expect(try harness.database.journalEntries().first?.sentCopyState == .made)
        #expect(try harness.database.sentCopyJobs().isEmpty)
        let copies = try await harness.copies(of: id, user: alice, folder: "Sent Items")
        #expect(copies.count == 1)
        #expect(copies.first?.bytes == message)
        await restarted.shutdown()
    }
}
