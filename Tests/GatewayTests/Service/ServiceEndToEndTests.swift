// GatewayTests/Service: `mailgate serve` as a service (issue 12 points 4 and 5) against the M365 stand-in:
// sd_notify around start, reload and stop; SIGHUP rebinding listeners while an IMAP session stays usable; SIGTERM
// during a 20 MiB SMTP transfer; JSON logs; no secret in any log line.
import Foundation
import MailCore
import OAuth
import Store
import Testing

@testable import Gateway

extension StandInTests {
    /// Listener ports 29601-29609.
    @Suite("mailgate serve as a service (signals, sd_notify, logs) end to end", .serialized)
    struct ServiceEndToEndTests {
        static let alice = "alice@contoso.test"
        static let bob = "bob@contoso.test"

        /// The secrets this installation used: the local password, alice's stored access and refresh tokens, and the
        /// XOAUTH2 payload built from the token (what would leak if a SASL line were logged).
        static func secrets(_ installation: MailGateInstallation) async throws -> [String] {
            var secrets = [EndToEnd.password]
            if let token = try await AccountE2E.storedToken(installation, alice) {
                secrets.append(token.accessToken.revealed)
                if let refresh = token.refreshToken { secrets.append(refresh.revealed) }
                secrets.append(AccountE2E.xoauth2String(user: alice, token: token.accessToken.revealed))
                // A token cut to a log line's 160 characters would still show this middle part.
                let access = token.accessToken.revealed
                let middle = access.index(access.startIndex, offsetBy: access.count / 2)
                secrets.append(String(access[middle...].prefix(40)))
            }
            return secrets
        }

        static func expectNoSecrets(_ output: String, _ secrets: [String]) {
            #expect(!output.isEmpty)
            for secret in secrets where !secret.isEmpty {
                #expect(!output.contains(secret), "a secret (\(secret.count) characters) is in serve's log")
            }
        }

        @Test("SIGHUP rebinds a moved and a changed listener, raises the log level, and an open IMAP session stays usable")
        func reload() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try MailGateInstallation(
                standIn, smtpPort: 29601, extraListen: "imap = \"127.0.0.1:29602\"")
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            let notify = try NotifySocket(abstract: true)
            try installation.startServe(
                arguments: ["--log-format", "json"], environment: ["NOTIFY_SOCKET": notify.name])
            let ready = try #require(notify.receive(until: "READY=1", timeout: 10), "no READY=1")
            #expect(ready.last?.contains("STATUS=listening on") == true)

            let imap = try #require(LineClient(port: 29602))
            #expect(imap.line()?.hasPrefix("* OK") == true)
            #expect(imap.imap("a1", "LOGIN \(Self.alice) \(EndToEnd.password)").tagged?.hasPrefix("a1 OK") == true)
            #expect(imap.imap("a2", "SELECT INBOX").tagged?.hasPrefix("a2 OK") == true)

            // The SMTP listener moves, [limits] changes (so the IMAP listener is rebound on its own port), debug on.
            var config = try String(contentsOfFile: installation.configPath, encoding: .utf8)
            config = config.replacingOccurrences(of: "127.0.0.1:29601", with: "127.0.0.1:29603")
            config = "log_level = \"trace\"\n" + config + "\n[limits]\nimap_line = 70000\nsmtp_sessions = 400\n"
            try config.write(toFile: installation.configPath, atomically: true, encoding: .utf8)
            installation.signalServe(SIGHUP)
            let reloaded = try #require(notify.receive(until: "READY=1", timeout: 10), "no READY=1 after SIGHUP")
            #expect(reloaded.first?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true, "\(reloaded)")
            #expect(reloaded.last?.contains("(reloaded)") == true)

            // The session opened before the reload is still logged in and relaying.
            #expect(imap.imap("a3", "NOOP").tagged?.hasPrefix("a3 OK") == true)
            let status = imap.imap("a4", "STATUS INBOX (MESSAGES)")
            #expect(status.tagged?.hasPrefix("a4 OK") == true)
            #expect(status.untagged.contains { $0.hasPrefix("* STATUS") })
            // A new session on the rebound IMAP listener, the moved SMTP listener answers, the old port is closed.
            let second = try #require(LineClient(port: 29602))
            #expect(second.line()?.hasPrefix("* OK") == true)
            #expect(second.imap("b1", "LOGIN \(Self.alice) \(EndToEnd.password)").tagged?.hasPrefix("b1 OK") == true)
            #expect(second.imap("b2", "LOGOUT").tagged?.hasPrefix("b2 OK") == true)
            let smtp = try #require(LineClient(port: 29603))
            #expect(smtp.line()?.hasPrefix("220 ") == true)
            #expect(LineClient(port: 29601) == nil, "the old SMTP port still accepts")
            #expect(imap.imap("a5", "LOGOUT").tagged?.hasPrefix("a5 OK") == true)

            // A configuration that does not load is refused; everything goes on as it was.
            let third = try #require(LineClient(port: 29602))
            #expect(third.line()?.hasPrefix("* OK") == true)
            #expect(third.imap("c1", "LOGIN \(Self.alice) \(EndToEnd.password)").tagged?.hasPrefix("c1 OK") == true)
            try (config + "\nno_such_key = 1\n").write(toFile: installation.configPath, atomically: true, encoding: .utf8)
            installation.signalServe(SIGHUP)
            #expect(notify.receive(until: "READY=1", timeout: 10) != nil, "no READY=1 after the refused reload")
            #expect(third.imap("c2", "NOOP").tagged?.hasPrefix("c2 OK") == true)
            #expect(LineClient(port: 29603) != nil, "the SMTP listener went away after a refused reload")

            // SIGTERM: an IMAP session with no command in flight is told BYE and closed.
            installation.signalServe(SIGTERM)
            #expect(notify.receive(until: "STOPPING=1", timeout: 10) != nil, "no STOPPING=1")
            #expect(third.line() == "* BYE MailGate is shutting down")
            #expect(third.closedByPeer(timeout: 5))
            #expect(installation.waitForServeExit(timeout: 40) == 0)

            // Every line is one JSON object; debug lines appear after the reload; the reload said what it did.
            let output = installation.serveOutput
            var levels: [String] = []
            var messages: [String] = []
            for line in output.split(separator: "\n") where !line.hasPrefix("mailgate serve: listening") {
                let object = try #require(
                    try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
                levels.append(object["level"] as? String ?? "")
                messages.append(object["message"] as? String ?? "")
            }
            let reloadIndex = try #require(messages.firstIndex { $0.hasPrefix("SIGHUP: reloading") })
            #expect(!levels[..<reloadIndex].contains { $0 == "debug" || $0 == "trace" })
            #expect(levels[reloadIndex...].contains { $0 == "debug" || $0 == "trace" })
            #expect(messages.contains { $0.hasPrefix("reload: smtp listener on 127.0.0.1:29603") })
            #expect(messages.contains { $0.hasPrefix("reload: imap listener on 127.0.0.1:29602") })
            #expect(messages.contains("IMAP login"))
            #expect(messages.contains("reload: [limits] smtp_sessions changed; that takes a restart to apply"))
            #expect(messages.contains { $0.hasPrefix("reload refused, the running configuration stays:") })
            Self.expectNoSecrets(output, try await Self.secrets(installation))
        }

        /// MAIL, RCPT, DATA for alice → bob on a fresh session; returns the client after the 354.
        static func openData(port: Int) throws -> LineClient {
            let client = try #require(LineClient(port: port, timeout: 60))
            #expect(client.smtpReply()?.hasPrefix("220 ") == true)
            client.send("EHLO client.test")
            #expect(client.smtpReply()?.hasPrefix("250 ") == true)
            let plain = Data("\u{0}\(alice)\u{0}\(EndToEnd.password)".utf8).base64EncodedString()
            client.send("AUTH PLAIN \(plain)")
            #expect(client.smtpReply()?.hasPrefix("235 ") == true)
            client.send("MAIL FROM:<\(alice)>")
            #expect(client.smtpReply()?.hasPrefix("250 ") == true)
            client.send("RCPT TO:<\(bob)>")
            #expect(client.smtpReply()?.hasPrefix("250 ") == true)
            client.send("DATA")
            #expect(client.smtpReply()?.hasPrefix("354 ") == true)
            return client
        }

        /// 20 MiB of message: headers with `id`, then 76-character lines.
        static func bigMessage(id: String) -> (head: [UInt8], body: [UInt8]) {
            let head = Array("From: <\(alice)>\r\nTo: <\(bob)>\r\nSubject: drain\r\nMessage-ID: \(id)\r\n\r\n".utf8)
            let line = Array((String(repeating: "0123456789abcdefghij", count: 4).prefix(76) + "\r\n").utf8)
            var body: [UInt8] = []
            body.reserveCapacity(20 * 1_048_576 + line.count)
            while body.count < 20 * 1_048_576 { body.append(contentsOf: line) }
            return (head, body)
        }

        @Test("SIGTERM during a 20 MiB message: the message completes with its journal row, then 421 4.3.2")
        func drainCompletes() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try EndToEnd.serving(
                standIn, port: 29604, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let id = EndToEnd.uniqueID("drain-complete")
            let (head, body) = Self.bigMessage(id: id)
            let client = try Self.openData(port: 29604)
            #expect(client.write(head + body.prefix(body.count / 2)))
            installation.signalServe(SIGTERM)
            try await Task.sleep(for: .milliseconds(500))
            // New clients are no longer accepted while the message in flight goes on.
            #expect(LineClient(port: 29604) == nil, "serve still accepts during the drain")
            #expect(client.write(Array(body.suffix(from: body.count / 2)) + Array(".\r\n".utf8)))
            let verdict = client.smtpReply()
            #expect(verdict?.hasPrefix("250 ") == true, "\(verdict ?? "nil")")
            #expect(client.smtpReply()?.hasPrefix("421 4.3.2") == true)
            #expect(installation.waitForServeExit(timeout: 40) == 0)
            let rows = try EndToEnd.journal(installation)
            let row = try #require(rows.first { $0.messageID == id })
            #expect(row.status == .sent)
            #expect(row.size == Int64(head.count + body.count))
            #expect(!rows.contains { $0.status == .pending })
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(installation.serveOutput.contains("SMTP message relayed"))
            Self.expectNoSecrets(installation.serveOutput, try await Self.secrets(installation))
        }

        @Test("SIGTERM during an IMAP APPEND: the command completes upstream, then * BYE")
        func imapDrain() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try MailGateInstallation(
                standIn, smtpPort: 29608, extraListen: "imap = \"127.0.0.1:29609\"")
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe()
            let client = try #require(LineClient(port: 29609, timeout: 3))
            #expect(client.line()?.hasPrefix("* OK") == true)
            #expect(client.imap("a1", "LOGIN \(Self.alice) \(EndToEnd.password)").tagged?.hasPrefix("a1 OK") == true)
            let id = EndToEnd.uniqueID("drain-append")
            let message = Array("From: <\(Self.alice)>\r\nSubject: drain\r\nMessage-ID: \(id)\r\n\r\n".utf8)
                + [UInt8](repeating: UInt8(ascii: "x"), count: 4_000) + Array("\r\n".utf8)
            client.send("a2 APPEND INBOX {\(message.count)}")
            #expect(client.line()?.hasPrefix("+") == true)
            #expect(client.write(Array(message.prefix(1_000))))
            installation.signalServe(SIGTERM)
            // The command is half-sent: no BYE while the drain waits for it.
            #expect(client.line() == nil)
            #expect(client.write(Array(message.dropFirst(1_000)) + Array("\r\n".utf8)))
            var lines: [String] = []
            while let line = client.line() { lines.append(line) }
            let done = try #require(lines.firstIndex { $0.hasPrefix("a2 ") }, "\(lines)")
            #expect(lines[done].hasPrefix("a2 OK"), "\(lines)")
            #expect(lines.suffix(from: done).contains("* BYE MailGate is shutting down"), "\(lines)")
            #expect(installation.waitForServeExit(timeout: 40) == 0)
            // The APPEND reached the mailbox.
            let token = try standIn.accessToken(for: Self.alice)
            let check = try await CheckingIMAPClient.open(standIn, user: Self.alice, token: token)
            let found = try await check.messages(in: "INBOX", messageID: id)
            await check.close()
            #expect(found.count == 1)
            #expect(installation.serveOutput.contains("draining 1 sessions"))
        }

        @Test("SIGTERM with a short drain_timeout during a stalled 20 MiB message: 421 4.3.2, nothing pending")
        func drainTimesOut() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try MailGateInstallation(
                standIn, smtpPort: 29605, extraServer: "sent_copy = \"never\"")
            var config = try String(contentsOfFile: installation.configPath, encoding: .utf8)
            config += "\n[limits]\ndrain_timeout = \"1s\"\n"
            try config.write(toFile: installation.configPath, atomically: true, encoding: .utf8)
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe()
            let id = EndToEnd.uniqueID("drain-timeout")
            let (head, body) = Self.bigMessage(id: id)
            let client = try Self.openData(port: 29605)
            #expect(client.write(head + body.prefix(body.count / 2)))
            let started = Date()
            installation.signalServe(SIGTERM)
            // The client stalls mid-message: after drain_timeout it is told why and closed.
            let reply = client.smtpReply()
            #expect(reply?.hasPrefix("421 4.3.2") == true, "\(reply ?? "nil")")
            #expect(Date().timeIntervalSince(started) >= 0.9)
            #expect(client.closedByPeer(timeout: 5))
            #expect(installation.waitForServeExit(timeout: 40) == 0)
            let rows = try EndToEnd.journal(installation)
            #expect(!rows.contains { $0.status == .pending })
            #expect(!rows.contains { $0.messageID == id && $0.status == .sent })
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(installation.serveOutput.contains("drain_timeout (1 s) reached with 1 sessions busy"))
        }
    }
}
