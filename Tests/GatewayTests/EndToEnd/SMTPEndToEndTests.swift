// GatewayTests/EndToEnd: the SMTP gateway through the real `mailgate serve`, real clients and the M365 stand-in
// (issue 5): delivery, sent copies, a large message, pipelining, local auth, relay, upstream refusals, statistics.

import Foundation
import MailGateTesting
import Store
import Testing
import Transport

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running; failed when MAILGATE_REQUIRE_INTEGRATION=1.
    /// Listener ports 26001-26019.
    @Suite("SMTP end to end through mailgate serve", .serialized)
    struct SMTPEndToEndTests {
        static let alice = "alice@contoso.test"
        static let bob = "bob@contoso.test"
        static let hans = "hans@contoso.test"

        @Test("smtplib → serve → Postfix → bob's INBOX: byte-exact apart from trace headers, archived as sent")
        func deliveredByteExact() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26001, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let id = EndToEnd.uniqueID("exact")
            let original = EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "byte exact", id: id)
            let file = try EndToEnd.write(original, named: "exact.eml", in: installation.directory)
            let sent = try EndToEnd.sendWithPython(
                port: installation.smtpPort, user: Self.alice, from: Self.alice, to: [Self.bob], file: file)
            #expect(sent.status == 0, "smtplib: \(sent.error.suffix(800))")
            #expect(sent.output.contains("refused 0"))

            let credentials = StandInCredentials(standIn)
            let delivered = try await EndToEnd.awaitCopies(
                standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: id)
            try #require(delivered.count == 1, "bob's INBOX has \(delivered.count) messages with \(id)")
            #expect(EndToEnd.traceOnlyDifference(delivered: delivered[0].bytes, original: original) == nil)
            let added = String(
                decoding: delivered[0].bytes.prefix(delivered[0].bytes.count - original.count), as: UTF8.self)
            #expect(added.contains("Received: "), "the delivered copy carries Postfix's trace: \(added.prefix(300))")

            // The journal row and MailGate's archive hold exactly these bytes.
            let rows = try EndToEnd.journal(installation)
            let row = try #require(rows.first { $0.messageID == id })
            #expect(row.status == .sent)
            #expect(row.size == Int64(original.count))
            #expect(row.mailFrom == Self.alice)
            #expect(row.rcptTo == [Self.bob])
            // Postfix offers CHUNKING, so the message went as BDAT: "250 2.0.0 Ok: <n> bytes queued as <id>".
            #expect(
                row.upstreamReply?.hasPrefix("250 2.0.0 Ok: \(original.count) bytes queued as") == true,
                "\(row.upstreamReply ?? "nil")")
            let archived = try Data(
                contentsOf: URL(
                    fileURLWithPath: JournalVerifier.archivePath(
                        sha256: row.sha256, directory: installation.stateDirectory + "/archive")))
            #expect(Array(archived) == original)
            installation.stopServe()
        }

        @Test(
            "alice, sent_copy auto: one copy in Sent Items, autofile off (MailGate's, \\Seen) or on; stats count both"
        )
        func sentCopyAutoEnglish() async throws {
            guard let standIn = StandIn.load() else { return }
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            defer { _ = try? standIn.control("autofile", json: #"{"enabled": false}"#) }
            let installation = try EndToEnd.serving(standIn, port: 26002, accounts: [Self.alice])
            let credentials = StandInCredentials(standIn)
            let sizes = try await checkSentCopies(
                standIn, installation, credentials: credentials, user: Self.alice, folder: "Sent Items", label: "en")

            // Statistics: both messages and their bytes relayed, one copy made, one skipped.
            var counters: [String: Int64] = [:]
            _ = try await eventually(10) {
                counters = try EndToEnd.stats(installation, account: Self.alice)
                return counters["sent_copy_made"] == 1 && counters["sent_copy_skipped"] == 1
                    && counters["messages_relayed"] == 2
            }
            #expect(counters["messages_relayed"] == 2, "\(counters)")
            #expect(counters["bytes_relayed"] == Int64(sizes.reduce(0, +)), "\(counters)")
            #expect(counters["sent_copy_made"] == 1, "\(counters)")
            #expect(counters["sent_copy_skipped"] == 1, "\(counters)")
            #expect(counters["sent_copy_failed"] == nil, "\(counters)")
            #expect(counters["smtp.login.ok"] == 2, "\(counters)")
            installation.stopServe()
        }

        @Test("hans (German mailbox), sent_copy auto: exactly one copy in Gesendete Elemente, autofile off and on")
        func sentCopyAutoGerman() async throws {
            guard let standIn = StandIn.load() else { return }
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            defer { _ = try? standIn.control("autofile", json: #"{"enabled": false}"#) }
            let installation = try EndToEnd.serving(standIn, port: 26003, accounts: [Self.hans])
            let credentials = StandInCredentials(standIn)
            _ = try await checkSentCopies(
                standIn, installation, credentials: credentials, user: Self.hans, folder: "Gesendete Elemente",
                label: "de")
            installation.stopServe()
        }

        /// Sends one message with autofile off (MailGate must append: one copy, \Seen, the exact bytes) and one with
        /// autofile on (Exchange files it, MailGate must skip: still one copy, the stand-in's unseen one). Returns
        /// the two message sizes.
        func checkSentCopies(
            _ standIn: StandIn, _ installation: MailGateInstallation, credentials: StandInCredentials, user: String,
            folder: String, label: String
        ) async throws -> [Int] {
            let offID = EndToEnd.uniqueID("copy-off-\(label)")
            let off = EndToEnd.message(from: user, to: [Self.bob], subject: "sent copy, autofile off", id: offID)
            let offFile = try EndToEnd.write(off, named: "off.eml", in: installation.directory)
            let first = try EndToEnd.sendWithPython(
                port: installation.smtpPort, user: user, from: user, to: [Self.bob], file: offFile)
            #expect(first.status == 0, "smtplib: \(first.error.suffix(800))")
            #expect(try await EndToEnd.settledCopyState(installation, messageID: offID) == .made)
            let made = try await EndToEnd.copies(
                standIn, credentials: credentials, user: user, folder: folder, messageID: offID)
            #expect(made.count == 1, "\(folder) of \(user) holds \(made.count) copies of \(offID)")
            #expect(made.first?.flags.contains("\\Seen") == true, "flags: \(made.first?.flags ?? "none")")
            #expect(made.first?.bytes == off, "MailGate's copy is the exact bytes sent")

            // With its only job done the sent-copy worker sleeps: serve is idle and its memory flat.
            let pid = try #require(installation.serveProcessIdentifier)
            let cpuBefore = try EndToEnd.cpuSeconds(pid)
            let residentBefore = try EndToEnd.residentBytes(pid)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            let cpu = try EndToEnd.cpuSeconds(pid) - cpuBefore
            let grown = try EndToEnd.residentBytes(pid) - residentBefore
            #expect(cpu < 0.3, "serve used \(cpu) s of CPU in 1.5 s while idle")
            #expect(grown < 4 * 1_024 * 1_024, "serve's RSS grew by \(grown) bytes in 1.5 s while idle")

            // Exchange files its own copy from now on; the flag is read when Postfix delivers the BCC.
            try standIn.control("autofile", json: #"{"enabled": true}"#)
            let onID = EndToEnd.uniqueID("copy-on-\(label)")
            let on = EndToEnd.message(from: user, to: [Self.bob], subject: "sent copy, autofile on", id: onID)
            let onFile = try EndToEnd.write(on, named: "on.eml", in: installation.directory)
            let second = try EndToEnd.sendWithPython(
                port: installation.smtpPort, user: user, from: user, to: [Self.bob], file: onFile)
            #expect(second.status == 0, "smtplib: \(second.error.suffix(800))")
            #expect(try await EndToEnd.settledCopyState(installation, messageID: onID) == .skipped)
            let filed = try await EndToEnd.copies(
                standIn, credentials: credentials, user: user, folder: folder, messageID: onID)
            #expect(filed.count == 1, "\(folder) of \(user) holds \(filed.count) copies of \(onID)")
            // The stand-in's copy is delivered unseen (README); MailGate's would be \Seen.
            #expect(filed.first.map { !$0.flags.contains("\\Seen") } == true, "flags: \(filed.first?.flags ?? "none")")
            try standIn.control("autofile", json: #"{"enabled": false}"#)

            // No late duplicate of the first message either.
            let stillOne = try await EndToEnd.copies(
                standIn, credentials: credentials, user: user, folder: folder, messageID: offID)
            #expect(stillOne.count == 1)
            return [off.count, on.count]
        }

        @Test(
            "a 20 MiB attachment streams through serve (peak RSS +< 8 MiB) and the sent copy (+< 12 MiB), complete"
        )
        func largeMessageFlatMemory() async throws {
            guard let standIn = StandIn.load() else { return }
            // sent_copy always: MailGate appends whatever the server does; autofile off keeps that the only copy.
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            defer { _ = try? standIn.control("autofile", json: #"{"enabled": false}"#) }
            let installation = try EndToEnd.serving(
                standIn, port: 26004, accounts: [Self.alice], extraServer: "sent_copy = \"always\"")
            let pid = try #require(installation.serveProcessIdentifier)

            // Warm up every code path (local login, upstream TLS and XOAUTH2, journal, archive) with a small message.
            let warmID = EndToEnd.uniqueID("warm")
            let warm = EndToEnd.message(from: Self.alice, to: [Self.bob], subject: "warm-up", id: warmID)
            let warmFile = try EndToEnd.write(warm, named: "warm.eml", in: installation.directory)
            let warmed = try EndToEnd.sendWithPython(
                port: installation.smtpPort, user: Self.alice, from: Self.alice, to: [Self.bob], file: warmFile)
            try #require(warmed.status == 0, "smtplib: \(warmed.error.suffix(800))")
            // Its sent copy first, so that its IMAP session does not count against the large message.
            #expect(try await EndToEnd.settledCopyState(installation, messageID: warmID) == .made)

            let id = EndToEnd.uniqueID("large")
            let big = Self.largeMessage(id: id, attachmentBytes: 15 * 1_024 * 1_024)
            #expect(big.count > 20 * 1_024 * 1_024)
            let file = try EndToEnd.write(big, named: "large.eml", in: installation.directory)
            // The peak from now on: start-up and the warm-up's scrypt (32 MiB; the big send's login is a cache hit)
            // must not hide the message's own footprint.
            try EndToEnd.resetPeakResident(pid)
            let before = try EndToEnd.peakResidentBytes(pid)
            let resident = try EndToEnd.residentBytes(pid)
            #expect(
                before <= resident + 1_024 * 1_024, "the peak was reset to the current size: \(before) vs \(resident)")
            let sent = try EndToEnd.sendWithPython(
                port: installation.smtpPort, user: Self.alice, from: Self.alice, to: [Self.bob], file: file)
            #expect(sent.status == 0, "smtplib: \(sent.error.suffix(800))")
            let after = try EndToEnd.peakResidentBytes(pid)
            let growth = after - before
            print(
                "serve VmHWM before \(before / 1_024) KiB, after \(after / 1_024) KiB, growth \(growth / 1_024) KiB "
                    + "for a \(big.count)-byte message"
            )
            #expect(
                growth < 8 * 1_024 * 1_024, "serve's peak RSS grew by \(growth) bytes for a \(big.count)-byte message")

            let token = try standIn.accessToken(for: Self.bob)
            var fetched = EndToEnd.PythonFetched(messages: [], originalSize: 0)
            _ = try await eventually(40) {
                fetched = try EndToEnd.fetchWithPython(
                    standIn, user: Self.bob, token: token, folder: "INBOX", messageID: id, file: file)
                if fetched.messages.isEmpty { try await Task.sleep(nanoseconds: 500_000_000) }
                return !fetched.messages.isEmpty
            }
            try #require(fetched.messages.count == 1, "bob's INBOX has \(fetched.messages.count) copies of \(id)")
            #expect(fetched.originalSize == big.count)
            #expect(
                fetched.messages[0].endsWithOriginal,
                "bob's copy (\(fetched.messages[0].size) bytes) ends with every byte sent")
            #expect(EndToEnd.traceOnlyPrefix(fetched.messages[0].prefix) == nil)
            let row = try #require(try EndToEnd.journal(installation).first { $0.messageID == id })
            #expect(row.size == Int64(big.count))
            #expect(row.status == .sent)

            // The sent copy streams the literal from disk: the peak stays flat through the APPEND too. Its IMAP
            // session (TLS, buffers, a worker thread's malloc arena) costs a fixed 4-7 MiB that does not grow with
            // the message (measured: 10 MB → 4-5 MiB, 20 MB → 7 MiB, 30 MB → 7 MiB); a copy held in memory would
            // add the whole 20 MiB.
            #expect(try await EndToEnd.settledCopyState(installation, messageID: id, within: 40) == .made)
            let afterCopy = try EndToEnd.peakResidentBytes(pid)
            print(
                "serve VmHWM after the sent copy \(afterCopy / 1_024) KiB, growth \((afterCopy - before) / 1_024) KiB")
            #expect(afterCopy - before < 12 * 1_024 * 1_024, "serve's peak RSS grew by \(afterCopy - before) bytes")
            let aliceToken = try standIn.accessToken(for: Self.alice)
            let copies = try EndToEnd.fetchWithPython(
                standIn, user: Self.alice, token: aliceToken, folder: "Sent Items", messageID: id, file: file)
            #expect(copies.messages.count == 1, "alice's Sent Items has \(copies.messages.count) copies")
            #expect(copies.messages.first?.size == big.count, "the sent copy is the exact bytes")
            #expect(copies.messages.first?.endsWithOriginal == true)
            installation.stopServe()
        }

        /// A multipart message with a base64 attachment of `attachmentBytes` random bytes (76-character lines).
        static func largeMessage(id: String, attachmentBytes: Int) -> [UInt8] {
            var random = [UInt8](repeating: 0, count: attachmentBytes)
            var generator = SystemRandomNumberGenerator()
            for index in stride(from: 0, to: random.count, by: 8) {
                let value = generator.next()
                for offset in 0..<min(8, random.count - index) {
                    random[index + offset] = UInt8(truncatingIfNeeded: value >> (8 * offset))
                }
            }
            let encoded = Data(random).base64EncodedData(options: [
                .lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
            ])
            var text = "Date: Tue, 04 Mar 2025 10:15:00 +0100\r\nFrom: <\(alice)>\r\nTo: <\(bob)>\r\n"
            text += "Subject: a large attachment\r\nMessage-ID: \(id)\r\nMIME-Version: 1.0\r\n"
            text += "Content-Type: multipart/mixed; boundary=\"e2e-boundary\"\r\n\r\n"
            text += "--e2e-boundary\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee the attachment.\r\n"
            text += "--e2e-boundary\r\nContent-Type: application/octet-stream\r\n"
            text +=
                "Content-Disposition: attachment; filename=\"random.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            var bytes = Array(text.utf8)
            bytes += [UInt8](encoded)
            bytes += Array("\r\n--e2e-boundary--\r\n".utf8)
            return bytes
        }

        @Test("pipelined MAIL, RCPT, RCPT, DATA in one write get 250/250/250/354 in order; bob and hans receive it")
        func pipelinedTwoRecipients() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26005, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let client = try await RawClient(try #require(HostPort(host: "127.0.0.1", port: installation.smtpPort)))
            defer { client.close() }
            #expect(try await client.reply()?.hasPrefix("220") == true)
            try await client.send("EHLO pipeliner.test\r\n")
            let ehlo = try #require(try await client.reply())
            #expect(ehlo.contains("PIPELINING"), "EHLO reply: \(ehlo)")
            let plain = Data("\u{0}\(Self.alice)\u{0}\(EndToEnd.password)".utf8).base64EncodedString()
            try await client.send("AUTH PLAIN \(plain)\r\n")
            #expect(try await client.reply()?.hasPrefix("235 ") == true)

            try await client.send(
                "MAIL FROM:<\(Self.alice)>\r\nRCPT TO:<\(Self.bob)>\r\nRCPT TO:<\(Self.hans)>\r\nDATA\r\n")
            var replies: [String] = []
            for _ in 0..<4 { replies.append(try #require(try await client.reply())) }
            #expect(replies.map { String($0.prefix(3)) } == ["250", "250", "250", "354"], "\(replies)")
            let id = EndToEnd.uniqueID("pipelined")
            let original = EndToEnd.message(from: Self.alice, to: [Self.bob, Self.hans], subject: "pipelined", id: id)
            // The client dot-stuffs; the message ends with CRLF.
            var wire: [UInt8] = []
            var atLineStart = true
            for byte in original {
                if atLineStart && byte == UInt8(ascii: ".") { wire.append(byte) }
                wire.append(byte)
                atLineStart = byte == 0x0A
            }
            try await client.send(bytes: wire + Array(".\r\nQUIT\r\n".utf8))
            let verdict = try #require(try await client.reply(within: 30))
            #expect(verdict.hasPrefix("250 "), "\(verdict)")
            #expect(try await client.reply()?.hasPrefix("221") == true)

            let credentials = StandInCredentials(standIn)
            for user in [Self.bob, Self.hans] {
                let copies = try await EndToEnd.awaitCopies(
                    standIn, credentials: credentials, user: user, folder: "INBOX", messageID: id)
                #expect(copies.count == 1, "\(user)'s INBOX has \(copies.count) copies")
                if let copy = copies.first {
                    #expect(EndToEnd.traceOnlyDifference(delivered: copy.bytes, original: original) == nil, "\(user)")
                }
            }
            installation.stopServe()
        }

        @Test("a wrong local password gets 535 and serve never opens a connection to the upstream")
        func wrongPasswordNeverReachesUpstream() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26006, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let pid = try #require(installation.serveProcessIdentifier)
            let upstreamPort = try #require(Int(standIn["SUBMISSION_PORT"]))
            let address = try #require(HostPort(host: "127.0.0.1", port: installation.smtpPort))

            let wrong = try await RawClient(address)
            defer { wrong.close() }
            _ = try await wrong.reply()
            try await wrong.send("EHLO wrong.test\r\n")
            _ = try await wrong.reply()
            let plain = Data("\u{0}\(Self.alice)\u{0}not-the-password".utf8).base64EncodedString()
            try await wrong.send("AUTH PLAIN \(plain)\r\n")
            let refused = try #require(try await wrong.reply())
            #expect(refused.hasPrefix("535 5.7.8 "), "\(refused)")
            try await wrong.send("AUTH LOGIN\r\n")
            #expect(try await wrong.reply()?.hasPrefix("334 ") == true)
            try await wrong.send(Data(Self.alice.utf8).base64EncodedString() + "\r\n")
            #expect(try await wrong.reply()?.hasPrefix("334 ") == true)
            try await wrong.send(Data("also-wrong".utf8).base64EncodedString() + "\r\n")
            let refusedLogin = try #require(try await wrong.reply())
            #expect(refusedLogin.hasPrefix("535 5.7.8 "), "\(refusedLogin)")
            // The refused session is still open: serve holds no connection to the submission port.
            #expect(try EndToEnd.establishedConnections(of: pid, toPort: upstreamPort) == 0)
            #expect(!installation.serveOutput.contains("SMTP login"), "\(installation.serveOutput.suffix(600))")
            #expect(!installation.serveOutput.contains("SMTP upstream"), "\(installation.serveOutput.suffix(600))")

            // Control: the right password makes serve log in upstream, and the probe sees that connection.
            let right = try await RawClient(address)
            defer { right.close() }
            _ = try await right.reply()
            try await right.send("EHLO right.test\r\n")
            _ = try await right.reply()
            let good = Data("\u{0}\(Self.alice)\u{0}\(EndToEnd.password)".utf8).base64EncodedString()
            try await right.send("AUTH PLAIN \(good)\r\n")
            #expect(try await right.reply()?.hasPrefix("235 ") == true)
            #expect(try EndToEnd.establishedConnections(of: pid, toPort: upstreamPort) == 1)

            var counters: [String: Int64] = [:]
            _ = try await eventually(5) {
                counters = try EndToEnd.stats(installation, account: Self.alice)
                return counters["smtp.login.failed"] == 2 && counters["smtp.login.ok"] == 1
            }
            #expect(counters["smtp.login.failed"] == 2, "\(counters)")
            #expect(counters["smtp.login.ok"] == 1, "\(counters)")
            #expect(counters["smtp.login.upstream_failed"] == nil, "\(counters)")
            try await right.send("QUIT\r\n")
            try await wrong.send("QUIT\r\n")
            installation.stopServe()
        }

        @Test("relay_networks: swaks without AUTH sends as relay_account (bob gets it); without relay_networks, 530")
        func relayNetworks() async throws {
            guard let standIn = StandIn.load() else { return }
            let relaying = try EndToEnd.serving(
                standIn, port: 26007, accounts: [Self.alice], extraServer: "sent_copy = \"never\"",
                extraListen: "relay_networks = [\"127.0.0.1/32\"]\nrelay_account = \"alice@contoso.test\"")
            let id = EndToEnd.uniqueID("relay")
            let allowed = try Self.swaks(port: relaying.smtpPort, id: id)
            #expect(allowed.status == 0, "swaks: \(allowed.output.suffix(1_200))")
            #expect(!allowed.output.contains(" -> AUTH"), "swaks did not log in")
            let credentials = StandInCredentials(standIn)
            let delivered = try await EndToEnd.awaitCopies(
                standIn, credentials: credentials, user: Self.bob, folder: "INBOX", messageID: id)
            #expect(delivered.count == 1)
            let text = String(decoding: delivered.first?.bytes ?? [], as: UTF8.self)
            #expect(
                text.contains("Return-Path: <\(Self.alice)>"), "delivered with alice's envelope: \(text.prefix(400))")
            let row = try #require(try EndToEnd.journal(relaying).first { $0.messageID == id })
            #expect(row.accountEmail == Self.alice)
            #expect(row.status == .sent)
            relaying.stopServe()

            let closed = try EndToEnd.serving(
                standIn, port: 26008, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let refused = try Self.swaks(port: closed.smtpPort, id: EndToEnd.uniqueID("no-relay"))
            #expect(refused.status != 0)
            #expect(refused.output.contains("<** 530 5.7.0 "), "swaks: \(refused.output.suffix(1_200))")
            #expect(try EndToEnd.journal(closed).isEmpty)
            closed.stopServe()
        }

        /// swaks to bob without AUTH, as a scanner would send.
        static func swaks(port: Int, id: String) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/swaks")
            process.arguments = [
                "--server", "127.0.0.1", "--port", String(port), "--ehlo", "scanner.test", "--from", alice, "--to", bob,
                "--header", "Subject: scanned document", "--header", "Message-Id: \(id)",
                "--body", "Scanned page 1.\n.\nEnd.", "--timeout", "60",
            ]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readAllRetryingInterrupts()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        @Test("Postfix's 553 5.7.1 for a sender alice does not own reaches the client with the exact code and text")
        func foreignSenderRefusedUpstream() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 26009, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let client = try await RawClient(try #require(HostPort(host: "127.0.0.1", port: installation.smtpPort)))
            defer { client.close() }
            _ = try await client.reply()
            try await client.send("EHLO foreign.test\r\n")
            _ = try await client.reply()
            let plain = Data("\u{0}\(Self.alice)\u{0}\(EndToEnd.password)".utf8).base64EncodedString()
            try await client.send("AUTH PLAIN \(plain)\r\n")
            #expect(try await client.reply()?.hasPrefix("235 ") == true)
            try await client.send("MAIL FROM:<\(Self.bob)>\r\n")
            #expect(
                try await client.reply()
                    == "553 5.7.1 <bob@contoso.test>: Sender address rejected: not owned by user alice@contoso.test")
            // The session goes on: alice's own address is accepted next.
            try await client.send("MAIL FROM:<\(Self.alice)>\r\n")
            #expect(try await client.reply()?.hasPrefix("250 ") == true)
            try await client.send("QUIT\r\n")
            #expect(try await client.reply()?.hasPrefix("221") == true)
            #expect(try EndToEnd.journal(installation).isEmpty)
            installation.stopServe()
        }
    }
}
