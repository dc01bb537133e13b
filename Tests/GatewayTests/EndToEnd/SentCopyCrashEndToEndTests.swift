// GatewayTests/EndToEnd: kill -9 of `mailgate serve` between the upstream's 250 and the sent copy, then a
// restart: the copy is made exactly once (issue 9 point 3). The debug build's test hooks hold the windows open.

import Foundation
import Store
import Testing

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running. Listener ports 26140-26149. Serialized: the
    /// autofile switch is global to the stand-in.
    @Suite("Sent copy after kill -9 of serve", .serialized)
    struct SentCopyCrashEndToEndTests {
        static let alice = "alice@contoso.test"
        static let bob = "bob@contoso.test"

        /// smtplib in the background (it gets its 250 or, killed with serve, an error).
        private static func sendInBackground(
            _ installation: MailGateInstallation, file: String
        ) -> Task<(status: Int32, output: String, error: String), any Error> {
            let port = installation.smtpPort
            return Task.detached {
                try EndToEnd.sendWithPython(port: port, user: alice, from: alice, to: [bob], file: file)
            }
        }

        private static func waitForLog(_ installation: MailGateInstallation, _ text: String, within seconds: Double)
            async -> Bool
        {
            await eventually(seconds) {
                if installation.serveOutput.contains(text) { return true }
                try? await Task.sleep(nanoseconds: 50_000_000)
                return false
            }
        }

        /// Sent must hold `expected` copies and keep holding exactly that many for a while (no second copy).
        private static func steadyCopies(
            _ standIn: StandIn, messageID: String, expected: Int
        ) async throws -> Int {
            let credentials = StandInCredentials(standIn)
            var count = -1
            _ = try await eventually(30) {
                count = try await EndToEnd.copies(
                    standIn, credentials: credentials, user: alice, folder: "Sent Items", messageID: messageID
                ).count
                if count < expected { try await Task.sleep(nanoseconds: 300_000_000) }
                return count >= expected
            }
            try await Task.sleep(nanoseconds: 4_000_000_000)
            return try await EndToEnd.copies(
                standIn, credentials: credentials, user: alice, folder: "Sent Items", messageID: messageID
            ).count
        }

        @Test("killed after the client's 250, copy worker held: the restart files the copy once (auto, no autofile)")
        func killAfterTheClientsReply() async throws {
            guard let standIn = StandIn.load() else { return }
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            let installation = try MailGateInstallation(standIn, smtpPort: 26140)
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe(environment: ["MAILGATE_TEST_HOLD_SENT_COPY": "60"])
            let id = EndToEnd.uniqueID("crash-after-250")
            let file = try EndToEnd.write(
                EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "kill after 250", id: id),
                named: "crash1.eml", in: installation.directory)
            let sent = try await Self.sendInBackground(installation, file: file).value
            #expect(sent.status == 0, "smtplib: \(sent.error.suffix(600))")
            #expect(installation.serveOutput.contains("holding the sent-copy worker"))
            installation.killServe()
            #expect(try EndToEnd.journal(installation).first { $0.messageID == id }?.sentCopyState == .pending)

            try installation.startServe()
            #expect(try await Self.steadyCopies(standIn, messageID: id, expected: 1) == 1)
            #expect(try await EndToEnd.settledCopyState(installation, messageID: id) == .made)
            installation.stopServe()
        }

        @Test("killed between the upstream's 250 and the journal: the restart finds it in Sent (auto, autofile on)")
        func killBeforeTheCompletionWithAutofile() async throws {
            guard let standIn = StandIn.load() else { return }
            try standIn.control("autofile", json: #"{"enabled": true}"#)
            defer { _ = try? standIn.control("autofile", json: #"{"enabled": false}"#) }
            let installation = try MailGateInstallation(standIn, smtpPort: 26141)
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe(environment: ["MAILGATE_TEST_HOLD_AFTER_UPSTREAM_REPLY": "60"])
            let id = EndToEnd.uniqueID("crash-before-journal")
            let file = try EndToEnd.write(
                EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "kill before journal", id: id),
                named: "crash2.eml", in: installation.directory)
            let client = Self.sendInBackground(installation, file: file)
            #expect(await Self.waitForLog(installation, "holding after the upstream's reply", within: 30))
            installation.killServe()
            _ = try? await client.value
            #expect(try EndToEnd.journal(installation).first { $0.messageID == id }?.status == .pending)

            try installation.startServe()
            #expect(try await Self.steadyCopies(standIn, messageID: id, expected: 1) == 1)
            #expect(try await EndToEnd.settledCopyState(installation, messageID: id) == .skipped)
            let row = try #require(try EndToEnd.journal(installation).first { $0.messageID == id })
            #expect(row.status == .sent, "\(row.upstreamReply ?? "nil")")
            #expect(installation.serveOutput.contains("Interrupted message found in the Sent folder"))
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            installation.stopServe()
        }

        @Test("killed between the upstream's 250 and the journal, sent_copy always, no autofile: one copy after restart")
        func killBeforeTheCompletionAlways() async throws {
            guard let standIn = StandIn.load() else { return }
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            let installation = try MailGateInstallation(
                standIn, smtpPort: 26142, extraServer: "sent_copy = \"always\"")
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe(environment: ["MAILGATE_TEST_HOLD_AFTER_UPSTREAM_REPLY": "60"])
            let id = EndToEnd.uniqueID("crash-always")
            let file = try EndToEnd.write(
                EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "kill, always", id: id),
                named: "crash3.eml", in: installation.directory)
            let client = Self.sendInBackground(installation, file: file)
            #expect(await Self.waitForLog(installation, "holding after the upstream's reply", within: 30))
            installation.killServe()
            _ = try? await client.value

            try installation.startServe()
            #expect(try await Self.steadyCopies(standIn, messageID: id, expected: 1) == 1)
            #expect(try await EndToEnd.settledCopyState(installation, messageID: id) == .made)
            let row = try #require(try EndToEnd.journal(installation).first { $0.messageID == id })
            #expect(row.status == .unknown)
            installation.stopServe()
        }
    }
}
