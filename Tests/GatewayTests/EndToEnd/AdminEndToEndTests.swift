// GatewayTests/EndToEnd: a scripted workload through the real `mailgate serve` against the stand-in, real clients
// (swaks, curl); then `stats --json` must report exactly that workload, /stats.json and /metrics must agree with
// it, and the status page, rendered by a real headless Chromium, must show it (screenshot kept as an artifact).

import Foundation
import MailGateTesting
import Store
import Testing
import Transport

@testable import Gateway

/// Runs a program to completion (bounded), stdout and stderr together.
func runTool(_ path: String, _ arguments: [String], timeout: Double = 90) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let data = output.fileHandleForReading.readAllRetryingInterrupts()
    process.waitUntilExit()
    killer.cancel()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

extension StandInTests {
    /// Listener ports 28601-28603 (beside the stand-in's own 28xxx ports only when its base is 28000, which leaves
    /// 28600-28699 free).
    @Suite("Statistics, metrics and the status page through mailgate serve", .serialized)
    struct AdminEndToEndTests {
        static let alice = "alice@contoso.test"
        static let bob = "bob@contoso.test"
        static let carol = "carol@contoso.test"
        static let smtpPort = 28601
        static let imapPort = 28602
        static let adminPort = 28603
        static let pop3Port = 28604

        static func swaks(user: String = alice, to: String = bob, password: String, subject: String) throws -> (
            status: Int32, output: String
        ) {
            try runTool(
                "/usr/bin/swaks",
                [
                    "--server", "127.0.0.1", "--port", String(smtpPort), "--ehlo", "admin-e2e.test", "--auth", "PLAIN",
                    "--auth-user", user, "--auth-password", password, "--from", user, "--to", to,
                    "--header", "Subject: \(subject)", "--header", "Message-Id: \(EndToEnd.uniqueID("stats"))",
                    "--body", "Figures for the administrator.\n", "--timeout", "60",
                ])
        }

        static func curlIMAP(password: String, command: String) throws -> (status: Int32, output: String) {
            try runTool(
                "/usr/bin/curl",
                ["-sS", "--max-time", "60", "--user", "\(alice):\(password)", "imap://127.0.0.1:\(imapPort)/", "-X", command])
        }

        static func http(_ path: String) throws -> String {
            let run = try runTool("/usr/bin/curl", ["-sS", "--fail", "--max-time", "30", "http://127.0.0.1:\(adminPort)\(path)"])
            guard run.status == 0 else { throw StandInError("GET \(path): \(run.output.suffix(400))") }
            return run.output
        }

        static func report(_ json: String) throws -> StatsReport {
            try JSONDecoder().decode(StatsReport.self, from: Data(json.utf8))
        }

        /// The report without its generation time, for comparing two reads.
        static func comparable(_ report: StatsReport) -> String {
            report.json().split(separator: "\n").filter { !$0.contains("\"generated_at\"") }.joined(separator: "\n")
        }

        @Test("4 messages, 2 bad SMTP passwords, 2 IMAP lock refusals, 1 bad IMAP password, 1 token refresh → exactly those figures")
        func workload() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try MailGateInstallation(
                standIn, smtpPort: Self.smtpPort, extraServer: "sent_copy = \"never\"",
                extraListen: "imap = \"127.0.0.1:\(Self.imapPort)\"\npop3 = \"127.0.0.1:\(Self.pop3Port)\"")
            let config = try String(contentsOfFile: installation.configPath, encoding: .utf8)
            try (config + "\n[admin]\nlisten = \"127.0.0.1:\(Self.adminPort)\"\n").write(
                toFile: installation.configPath, atomically: true, encoding: .utf8)
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            let addCarol = try installation.run(["account", "add", Self.carol, "--password-stdin"], stdin: "carol-pw\n")
            #expect(addCarol.status == 0, "\(addCarol.stderr)")
            // bob's access token lives 30 s: inside the 300 s margin, so his first login makes serve refresh it.
            let addBob = try installation.run(["account", "add", Self.bob, "--password-stdin"], stdin: EndToEnd.password + "\n")
            #expect(addBob.status == 0, "\(addBob.stderr)")
            let connectBob = try AccountE2ETokenTests.connectWithShortLifetime(
                installation, Self.bob, seconds: 30, control: AccountControl(standIn: standIn))
            #expect(connectBob.status == 0, "\(connectBob.stderr)")
            try installation.startServe()
            defer { installation.stopServe() }

            // The workload.
            for index in 1...3 {
                let sent = try Self.swaks(password: EndToEnd.password, subject: "stats \(index)")
                #expect(sent.status == 0, "swaks: \(sent.output.suffix(800))")
            }
            for _ in 1...2 {
                let refused = try Self.swaks(password: "wrong-password", subject: "never")
                #expect(refused.status != 0)
                #expect(refused.output.contains("535"), "\(refused.output.suffix(400))")
            }
            for command in ["DELETE \"Sent\"", "RENAME \"Sent\" \"Old Sent\""] {
                let refused = try Self.curlIMAP(password: EndToEnd.password, command: command)
                #expect(refused.status != 0, "curl \(command): \(refused.output)")
            }
            let badIMAP = try Self.curlIMAP(password: "wrong-password", command: "NOOP")
            #expect(badIMAP.status != 0)
            let pop3 = try runTool(
                "/usr/bin/curl",
                ["-sS", "--max-time", "60", "--user", "\(Self.alice):\(EndToEnd.password)", "pop3://127.0.0.1:\(Self.pop3Port)/"])
            #expect(pop3.status == 0, "curl pop3 LIST: \(pop3.output.suffix(400))")
            let fromBob = try Self.swaks(user: Self.bob, to: Self.alice, password: EndToEnd.password, subject: "from bob")
            #expect(fromBob.status == 0, "swaks as bob: \(fromBob.output.suffix(800))")

            // Figures of a running serve reach the database within a few seconds.
            var report = try Self.report(try installation.run(["stats", "--json"]).stdout)
            _ = try await eventually(15) {
                report = try Self.report(try installation.run(["stats", "--json"]).stdout)
                return report.protocols["imap"]?.sessions == 3 && report.protocols["smtp"]?.sessions == 6
                    && report.protocols["imap"]?.loginsFailed == 1 && report.protocols["oauth"]?.tokenRefreshes == 1
                    && report.protocols["pop3"]?.loginsOK == 1
            }
            let alice = try #require(report.accounts.first { $0.account == Self.alice }, "\(report.json())")
            let smtp = try #require(alice.protocols["smtp"])
            #expect(smtp.loginsOK == 3, "\(report.json())")
            #expect(smtp.loginsFailed == 2)
            #expect(smtp.messagesSent == 3)
            #expect(smtp.upstreamErrors.isEmpty, "\(smtp.upstreamErrors)")
            #expect(smtp.sentCopiesMade == 0 && smtp.sentCopiesSkipped == 0 && smtp.sentCopiesFailed == 0)
            let journal = try EndToEnd.journal(installation)
            #expect(journal.count == 4)
            #expect(
                smtp.bytesFromClient == journal.filter { $0.accountEmail == Self.alice }.reduce(0) { $0 + $1.size },
                "bytes relayed = archived sizes")
            let imap = try #require(alice.protocols["imap"])
            #expect(imap.loginsOK == 2, "\(report.json())")
            #expect(imap.loginsFailed == 1)
            #expect(imap.lockRefusals == 2)
            #expect(imap.upstreamErrors.isEmpty)
            #expect(imap.bytesToClient > 0 && imap.bytesFromClient > 0)
            let alicePOP3 = try #require(alice.protocols["pop3"], "\(report.json())")
            #expect(alicePOP3.loginsOK == 1 && alicePOP3.loginsFailed == 0)
            let anonymous = try #require(report.accounts.first { $0.account == nil })
            #expect(anonymous.protocols["pop3"]?.sessions == 1)
            #expect(anonymous.protocols["smtp"]?.sessions == 6)
            #expect(anonymous.protocols["imap"]?.sessions == 3)
            #expect(report.accounts.map(\.account) == [Self.alice, Self.bob, nil], "no other account counted anything")
            let bob = try #require(report.accounts.first { $0.account == Self.bob })
            #expect(bob.protocols["oauth"]?.tokenRefreshes == 1, "\(report.json())")
            #expect(bob.protocols["oauth"]?.tokenRefreshFailures == 0)
            #expect(bob.protocols["smtp"]?.loginsOK == 1 && bob.protocols["smtp"]?.messagesSent == 1)
            #expect(alice.protocols["oauth"] == nil, "alice's token was fresh: no refresh")
            let latency = Dictionary(uniqueKeysWithValues: report.latency.map { ($0.metric, $0) })
            #expect(latency["smtp.reply_250"]?.count == 4, "\(report.latency)")
            #expect(latency["smtp.upstream_login"]?.count == 4)
            #expect(latency["imap.upstream_login"]?.count == 2)
            #expect((latency["imap.added"]?.count ?? 0) >= 2)
            for item in report.latency {
                #expect(item.p50Milliseconds <= item.p95Milliseconds && item.p95Milliseconds <= item.p99Milliseconds)
                #expect(item.p99Milliseconds <= item.maxMilliseconds + 0.001)
            }
            #expect((latency["smtp.upstream_login"]?.p50Milliseconds ?? 0) > 0)

            // The table and CSV say the same.
            let table = try installation.run(["stats", "--account", Self.alice])
            #expect(table.status == 0)
            #expect(table.stdout.contains("lock refusals"), "\(table.stdout)")
            #expect(table.stdout.contains("SMTP end of data to 250"))
            let csv = try installation.run(["stats", "--csv"])
            #expect(csv.stdout.contains("figure,\(Self.alice),smtp,messages_sent,3\n"), "\(csv.stdout)")
            #expect(csv.stdout.contains("figure,\(Self.alice),imap,lock_refusals,2\n"))

            // /stats.json is the same report; /metrics carries the same numbers.
            let served = try Self.report(try Self.http("/stats.json"))
            let now = try Self.report(try installation.run(["stats", "--json"]).stdout)
            #expect(Self.comparable(served) == Self.comparable(now))
            let samples = AdminServerTests.samples(try Self.http("/metrics"))
            let a = "account=\"\(Self.alice)\""
            #expect(samples["mailgate_messages_sent_total{\(a),protocol=\"smtp\"}"] == 3)
            #expect(samples["mailgate_logins_ok_total{\(a),protocol=\"smtp\"}"] == 3)
            #expect(samples["mailgate_logins_failed_total{\(a),protocol=\"smtp\"}"] == 2)
            #expect(samples["mailgate_logins_ok_total{\(a),protocol=\"imap\"}"] == 2)
            #expect(samples["mailgate_logins_failed_total{\(a),protocol=\"imap\"}"] == 1)
            #expect(samples["mailgate_lock_refusals_total{\(a),protocol=\"imap\"}"] == 2)
            #expect(samples["mailgate_sessions_total{account=\"\",protocol=\"smtp\"}"] == 6)
            #expect(samples["mailgate_token_refreshes_total{account=\"\(Self.bob)\",protocol=\"oauth\"}"] == 1)
            #expect(samples["mailgate_sessions_total{account=\"\",protocol=\"imap\"}"] == 3)
            #expect(samples["mailgate_accounts{token_state=\"connected\"}"] == 2)
            #expect(samples["mailgate_accounts{token_state=\"not_connected\"}"] == 1)
            #expect(
                samples["mailgate_latency_samples{metric=\"smtp.reply_250\"}"] == 4,
                "\(samples.filter { $0.key.contains("latency") })")

            // The page in a real browser: the DOM has the numbers, and a screenshot is kept.
            let artifacts = StandIn.packageRoot + "/.build/test-artifacts"
            try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
            let screenshot = artifacts + "/admin-status-page.png"
            try? FileManager.default.removeItem(atPath: screenshot)
            let browserFlags = [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(installation.directory)/chromium", "--window-size=1000,1800",
            ]
            let dom = try runTool("/usr/bin/chromium", browserFlags + ["--dump-dom", "http://127.0.0.1:\(Self.adminPort)/"])
            #expect(dom.status == 0, "\(dom.output.suffix(600))")
            let html = dom.output
            #expect(html.contains("<span id=\"messages-7d\">4</span>"), "\(html.suffix(2_000))")
            #expect(html.contains("data-account=\"\(Self.carol)\" data-state=\"not_connected\""))
            #expect(html.contains("mailgate account connect \(Self.carol)"))
            #expect(html.contains("data-account=\"\(Self.alice)\" data-state=\"connected\""))
            #expect(html.contains("data-figure=\"messages_sent\" data-protocol=\"smtp\">4</td>"))
            #expect(html.contains("data-figure=\"token_refreshes\" data-protocol=\"oauth\">1</td>"))
            #expect(html.contains("data-figure=\"lock_refusals\" data-protocol=\"imap\">2</td>"))
            #expect(html.contains("data-figure=\"logins_failed\" data-protocol=\"smtp\">2</td>"))
            #expect(html.contains("class=\"bar\""), "the chart has its bar for this hour")
            let shot = try runTool("/usr/bin/chromium", browserFlags + ["--screenshot=\(screenshot)", "http://127.0.0.1:\(Self.adminPort)/"])
            #expect(shot.status == 0, "\(shot.output.suffix(600))")
            let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
            #expect(png.count > 10_000, "a rendered page, not an empty image: \(png.count) bytes")
            #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])

            // Sessions now: one SMTP client connected (not logged in), one IMAP client logged in.
            let smtpClient = try await RawClient(try #require(HostPort(host: "127.0.0.1", port: Self.smtpPort)))
            let imapClient = try await RawClient(try #require(HostPort(host: "127.0.0.1", port: Self.imapPort)))
            try await imapClient.send("a1 LOGIN \(Self.alice) \(EndToEnd.password)\r\n")
            var live: [String: Double] = [:]
            _ = try await eventually(10) {
                live = AdminServerTests.samples(try Self.http("/metrics"))
                return live["mailgate_sessions_open{kind=\"smtp\"}"] == 1
                    && live["mailgate_sessions_open{kind=\"imap_pop3_logged_in\"}"] == 1
            }
            #expect(live["mailgate_sessions_open{kind=\"smtp\"}"] == 1, "\(live.filter { $0.key.contains("open") })")
            #expect(live["mailgate_sessions_open{kind=\"imap_pop3_logged_in\"}"] == 1)
            #expect(try Self.http("/").contains("data-sessions=\"smtp\">1</td>"))
            smtpClient.close()
            imapClient.close()
            #expect(try await eventually(10) {
                let now = AdminServerTests.samples(try Self.http("/metrics"))
                return now["mailgate_sessions_open{kind=\"smtp\"}"] == 0
                    && now["mailgate_sessions_open{kind=\"imap_pop3_logged_in\"}"] == 0
            })

            // A login just before SIGTERM is not lost: stop writes what the last flush had not.
            let last = try Self.swaks(password: EndToEnd.password, subject: "just before the stop")
            #expect(last.status == 0)
            installation.stopServe()
            let afterStop = try Self.report(try installation.run(["stats", "--json", "--account", Self.alice]).stdout)
            #expect(afterStop.accounts.first?.protocols["smtp"]?.loginsOK == 4, "\(afterStop.json())")

            // --since by the test's clock: rows three hours old are outside 1h and inside 6h.
            let database = try MailGateDatabase(stateDirectory: installation.stateDirectory)
            try database.increment([
                CounterIncrement(
                    "smtp.login.ok", account: Self.alice, listener: "smtp", amount: 40,
                    at: Date().addingTimeInterval(-3 * 3_600)),
            ])
            let hour = try Self.report(try installation.run(["stats", "--json", "--since", "1h"]).stdout)
            let six = try Self.report(try installation.run(["stats", "--json", "--since", "6h"]).stdout)
            let all = try Self.report(try installation.run(["stats", "--json"]).stdout)
            let logins = { (report: StatsReport) in
                report.accounts.first { $0.account == Self.alice }?.protocols["smtp"]?.loginsOK
            }
            #expect(logins(hour) == 4, "\(hour.since ?? "nil")")
            #expect(logins(six) == 44)
            #expect(logins(all) == 44)
            #expect(all.since == nil, "the default is everything stored")
            #expect(try installation.run(["stats", "--since", "soon"]).status == 2)
        }
    }
}
