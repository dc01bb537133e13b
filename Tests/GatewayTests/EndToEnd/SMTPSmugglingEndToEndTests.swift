// GatewayTests/EndToEnd: the SMTP smuggling payload of issue 9 through the real `mailgate serve` to the stand-in's
// Postfix 3.7, which reads a bare LF as a line end (smtpd_forbid_bare_newline = no): no second message, ever.

import Foundation
import Store
import Testing
import Transport

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running. Listener ports 26090-26099.
    @Suite("SMTP smuggling end to end through mailgate serve", .serialized)
    struct SMTPSmugglingEndToEndTests {
        static let alice = "alice@contoso.test"
        static let bob = "bob@contoso.test"

        /// One DATA holding, for a bare-LF reader, a second whole transaction as alice.
        static func payload(first: String, smuggled: String) -> String {
            "Message-ID: \(first)\r\nSubject: carrier\r\n\r\nhello\r\n\n.\nMAIL FROM:<\(alice)>\nRCPT TO:<\(bob)>\nDATA\n"
                + "Message-ID: \(smuggled)\nSubject: smuggled\n\nsecond\n.\n\r\n.\r\n"
        }

        static func session(port: Int) async throws -> RawClient {
            let client = try await RawClient(try #require(HostPort(host: "127.0.0.1", port: port)))
            #expect(try await client.reply()?.hasPrefix("220") == true)
            try await client.send("EHLO smuggler.test\r\n")
            _ = try await client.reply()
            let plain = Data("\u{0}\(alice)\u{0}\(EndToEnd.password)".utf8).base64EncodedString()
            try await client.send("AUTH PLAIN \(plain)\r\n")
            #expect(try await client.reply()?.hasPrefix("235 ") == true)
            return client
        }

        static func envelope(_ client: RawClient) async throws {
            try await client.send("MAIL FROM:<\(alice)>\r\nRCPT TO:<\(bob)>\r\nDATA\r\n")
            var replies: [String] = []
            for _ in 0..<3 { replies.append(try #require(try await client.reply(within: 30))) }
            #expect(replies.map { String($0.prefix(3)) } == ["250", "250", "354"], "\(replies)")
        }

        @Test("default (reject): 550 5.5.2; neither the carrier nor the smuggled message reaches bob; the next one does")
        func refusedByDefault() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26090, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let (first, smuggled, clean) = (
                EndToEnd.uniqueID("carrier"), EndToEnd.uniqueID("smuggled"), EndToEnd.uniqueID("after")
            )
            let client = try await Self.session(port: installation.smtpPort)
            defer { client.close() }
            try await Self.envelope(client)
            try await client.send(Self.payload(first: first, smuggled: smuggled))
            #expect(
                try await client.reply(within: 30)
                    == "550 5.5.2 Message refused: bare CR or LF in the text; lines must end with CRLF")
            try await Self.envelope(client)
            // The client dot-stuffs; the message ends with CRLF.
            var wire: [UInt8] = []
            var atLineStart = true
            for byte in EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "after", id: clean) {
                if atLineStart && byte == UInt8(ascii: ".") { wire.append(byte) }
                wire.append(byte)
                atLineStart = byte == 0x0A
            }
            try await client.send(bytes: wire + Array(".\r\n".utf8))
            let verdict = try #require(try await client.reply(within: 30))
            #expect(verdict.hasPrefix("250 "), "\(verdict)")

            let credentials = StandInCredentials(standIn)
            let after = try await EndToEnd.awaitCopies(
                standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: clean)
            #expect(after.count == 1)
            for id in [first, smuggled] {
                let found = try await EndToEnd.copies(
                    standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: id)
                #expect(found.isEmpty, "bob's INBOX has \(found.count) messages with \(id)")
            }
            let rows = try EndToEnd.journal(installation)
            #expect(rows.filter { $0.messageID == clean }.count == 1)
            #expect(!rows.contains { $0.messageID == first && $0.status == .sent })
            installation.stopServe()
        }

        @Test("normalize: bob gets exactly one message, with the smuggled commands as its text")
        func normalizedIsOneMessage() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26091, accounts: [Self.alice],
                extraServer: "sent_copy = \"never\"\n\n[limits]\nsmtp_bare_newline = \"normalize\"")
            let (first, smuggled) = (EndToEnd.uniqueID("carrier"), EndToEnd.uniqueID("smuggled"))
            let client = try await Self.session(port: installation.smtpPort)
            defer { client.close() }
            try await Self.envelope(client)
            try await client.send(Self.payload(first: first, smuggled: smuggled))
            let verdict = try #require(try await client.reply(within: 30))
            #expect(verdict.hasPrefix("250 "), "\(verdict)")

            let credentials = StandInCredentials(standIn)
            let carriers = try await EndToEnd.awaitCopies(
                standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: first)
            try #require(carriers.count == 1, "bob's INBOX has \(carriers.count) messages with \(first)")
            let text = String(decoding: carriers[0].bytes, as: UTF8.self)
            #expect(text.contains("\r\nMAIL FROM:<\(Self.alice)>\r\nRCPT TO:<\(Self.bob)>\r\nDATA\r\n"), "\(text)")
            try await Task.sleep(nanoseconds: 2_000_000_000)
            let found = try await EndToEnd.copies(
                standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: smuggled)
            #expect(found.isEmpty, "bob's INBOX has \(found.count) smuggled messages")
            let rows = try EndToEnd.journal(installation)
            #expect(rows.filter { $0.status == .sent }.count == 1)
            installation.stopServe()
        }
    }
}
