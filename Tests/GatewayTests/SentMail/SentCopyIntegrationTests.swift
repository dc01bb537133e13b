// GatewayTests/SentMail: the sent copy end to end against the M365 stand-in (Dovecot, Postfix, IdP).

import Foundation
import MailCore
import Policy
import Store
import Testing
import Transport

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running (integration/up); failed instead when
    /// MAILGATE_REQUIRE_INTEGRATION=1. Serialized: the autofile switch is global to the stand-in.
    @Suite("Sent copy against the stand-in", .serialized)
    struct SentCopyIntegrationTests {
        struct Harness {
            let standIn: StandIn
            let state: TemporaryStateDirectory
            let database: MailGateDatabase
            let credentials: StandInCredentials
            let recorder: SentMailRecorder

            init(_ standIn: StandIn, delays: [Double] = [0.3, 0.3, 0.3], autoFileDelay: Double = 0) throws {
                self.standIn = standIn
                state = try TemporaryStateDirectory()
                database = try MailGateDatabase.inMemory()
                credentials = StandInCredentials(standIn)
                recorder = SentMailRecorder(
                    database: database, stateDirectory: state.path, limits: .standard, credentials: credentials,
                    logger: quietLogger, copyRetryDelays: delays, autoFileDelay: autoFileDelay)
                recorder.start()
            }

            /// Records one message as the SMTP session would (the upstream's 250 is taken as given) and returns the
            /// forwarded bytes and the recording.
            func send(
                _ message: [UInt8], account: String, mode: SentCopyMode, endpoint: UpstreamEndpoint
            ) async throws -> ([UInt8], MessageRecording) {
                let policy = SentMailPolicy(
                    lockAfterSend: true, sentCopy: mode, messageIDDomain: "contoso.test", imap: endpoint)
                let recording = recorder.begin(
                    account: account, listener: "smtp", mailFrom: account, recipients: ["bob@contoso.test"], policy: policy)
                let out = try recording.feed(message, chunk: 4_096)
                try await recording.prepare().get()
                try await recording.commit(reply: "250 2.0.0 Ok: queued").get()
                return (out, recording)
            }

            /// Waits for the journal row's copy state to leave `pending`.
            func copyState(settlingWithin seconds: Double) async -> SentCopyState? {
                _ = await eventually(seconds) {
                    let state = try? database.journalEntries().first?.sentCopyState
                    return state != nil && state != .pending
                }
                return try? database.journalEntries().first?.sentCopyState
            }

            func copies(of messageID: String, user: String, folder: String) async throws -> [FetchedMessage] {
                let token = try await credentials.xoauth2(for: user).token.revealed
                let client = try await CheckingIMAPClient.open(standIn, user: user, token: token)
                let found = try await client.messages(in: folder, messageID: messageID)
                await client.close()
                return found
            }
        }

        static func message(from: String, subject: String, id: String?, bodyLines: Int = 40) -> [UInt8] {
            var text = "From: <\(from)>\r\nTo: <bob@contoso.test>\r\nSubject: \(subject)\r\n"
            if let id { text += "Message-ID: \(id)\r\n" }
            text += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            for index in 0..<bodyLines {
                text += "Line \(index) of the sent-copy test, with a leading dot next:\r\n.dot\r\n"
            }
            return Array(text.utf8)
        }

        static func uniqueID(_ label: String) -> String {
            "<sentmail-\(label)-\(UInt64.random(in: 0...UInt64.max))@contoso.test>"
        }

        @Test func alwaysFilesExactlyOneSeenCopyWithTheSameBytes() async throws {
            guard let standIn = StandIn.load() else { return }
            let harness = try Harness(standIn)
            let alice = standIn["USER_ALICE"]
            // No Message-ID: the recorder adds one, and the copy must carry it.
            let (out, recording) = try await harness.send(
                Self.message(from: alice, subject: "always", id: nil), account: alice, mode: .always,
                endpoint: standIn.endpoint())
            #expect(await harness.copyState(settlingWithin: 20) == .made)
            let copies = try await harness.copies(of: recording.messageID, user: alice, folder: "Sent Items")
            #expect(copies.count == 1)
            #expect(copies.first?.bytes == out)
            #expect(copies.first?.flags.contains("\\Seen") == true)
            #expect(harness.state.files(in: "spool").isEmpty)
            #expect(try counter(harness.database, "sent_copy_made", account: alice) == 1)
            await harness.recorder.shutdown()
        }

        @Test func aGermanMailboxGetsItsCopyInGesendeteElementeOverSTARTTLS() async throws {
            guard let standIn = StandIn.load() else { return }
            let harness = try Harness(standIn)
            let hans = standIn["USER_HANS"]
            let id = Self.uniqueID("hans")
            let (out, _) = try await harness.send(
                Self.message(from: hans, subject: "Gesendet", id: id), account: hans, mode: .always,
                endpoint: standIn.endpoint(starttls: true))
            #expect(await harness.copyState(settlingWithin: 20) == .made)
            let copies = try await harness.copies(of: id, user: hans, folder: "Gesendete Elemente")
            #expect(copies.count == 1)
            #expect(copies.first?.bytes == out)
            await harness.recorder.shutdown()
        }

        @Test func autoSkipsWhatTheServerFiledItself() async throws {
            guard let standIn = StandIn.load() else { return }
            let alice = standIn["USER_ALICE"]
            try standIn.control("autofile", json: "{\"enabled\": true}")
            defer { _ = try? standIn.control("autofile", json: "{\"enabled\": false}") }
            let harness = try Harness(standIn, autoFileDelay: 3)
            let id = Self.uniqueID("autofiled")
            let message = Self.message(from: alice, subject: "auto, filed by the server", id: id)
            let token = try await harness.credentials.xoauth2(for: alice).token.revealed
            try await submitDirectly(standIn, user: alice, token: token, to: "bob@contoso.test", message: message)
            _ = try await harness.send(message, account: alice, mode: .auto, endpoint: standIn.endpoint())
            #expect(await harness.copyState(settlingWithin: 30) == .skipped)
            let copies = try await harness.copies(of: id, user: alice, folder: "Sent Items")
            #expect(copies.count == 1)
            #expect(try counter(harness.database, "sent_copy_skipped", account: alice) == 1)
            await harness.recorder.shutdown()
        }

        @Test func autoAppendsWhenTheServerDidNotFile() async throws {
            guard let standIn = StandIn.load() else { return }
            let alice = standIn["USER_ALICE"]
            try standIn.control("autofile", json: "{\"enabled\": false}")
            let harness = try Harness(standIn, autoFileDelay: 0.5)
            let id = Self.uniqueID("notfiled")
            let (out, _) = try await harness.send(
                Self.message(from: alice, subject: "auto, not filed", id: id), account: alice, mode: .auto,
                endpoint: standIn.endpoint())
            #expect(await harness.copyState(settlingWithin: 20) == .made)
            let copies = try await harness.copies(of: id, user: alice, folder: "Sent Items")
            #expect(copies.count == 1)
            #expect(copies.first?.bytes == out)
            await harness.recorder.shutdown()
        }

        @Test func anUnreachableServerIsRetriedAndTheCopyArrivesOnceItIsReachable() async throws {
            guard let standIn = StandIn.load() else { return }
            let alice = standIn["USER_ALICE"]
            let harness = try Harness(standIn, delays: [0.5, 0.5, 0.5, 0.5])
            let id = Self.uniqueID("retried")
            let wrong = standIn.endpoint(port: closedLoopbackPort())
            let (out, recording) = try await harness.send(
                Self.message(from: alice, subject: "retried", id: id, bodyLines: 2_000), account: alice, mode: .always,
                endpoint: wrong)
            let service = harness.recorder.service
            #expect(await eventually(10) { await service.attemptCount >= 1 })
            // The job is still stored, with its attempt counted, while the server is unreachable.
            let database = harness.database
            let jobID = recording.spoolID
            #expect(
                await eventually(5) {
                    let record = (try? database.sentCopyJobs())?.first { $0.id == jobID }
                    return ((record.flatMap { try? SentCopyJob.decode($0) })?.attempts ?? 0) >= 1
                })
            #expect(try harness.database.journalEntries().first?.sentCopyState == .pending)

            let right = standIn.endpoint()
            await service.setEndpointRewrite { _ in right }
            #expect(await harness.copyState(settlingWithin: 20) == .made)
            let copies = try await harness.copies(of: id, user: alice, folder: "Sent Items")
            #expect(copies.count == 1)
            #expect(copies.first?.bytes == out)
            #expect(harness.state.files(in: "spool").isEmpty)
            await harness.recorder.shutdown()
        }
    }
}
