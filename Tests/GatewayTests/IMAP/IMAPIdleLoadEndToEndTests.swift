// GatewayTests/IMAP: 1,000 IMAP sessions of bob in IDLE through the real `mailgate serve` against the stand-in's
// Dovecot, with 100 SMTP submitters (alice, through serve, to alice) at once (issue 8's targets, issue 13 point 2):
// every message delivered once, then one message to bob wakes every session, each answers DONE/NOOP/LOGOUT; memory
// per idle pair, threads bounded, sockets and memory back afterwards.

import Foundation
import Testing

@testable import Gateway

extension StandInTests {
    /// Listener ports 27801 (IMAP) and 27851 (SMTP). The load itself is integration/bench/imap_idle_load.py, the
    /// same script the 10,000-session bench runs (integration/bench/imap-idle).
    @Suite("IMAP: 1,000 sessions in IDLE and 100 SMTP submitters through mailgate serve", .serialized)
    struct IMAPIdleLoadEndToEndTests {
        static let sessions = 1_000
        static let submitters = 100
        /// Gateway memory per idle session pair (client connection + upstream TLS session) this debug build must stay
        /// under. Issue 8's target is 32 KiB: the release build measures 30.1 (1,000) and 30.7 (9,900) KiB with
        /// integration/bench/imap-idle; the debug build of the suite 31.2–32.5 KiB (before this work: 60–70), so the
        /// bound here has 2 KiB of room for the debug build's noise and still fails on any of the fixes undone.
        static let kibPerPairTarget = 34.0

        @Test("1,000 IDLE sessions + 100 submitters: each message delivered once, every session woken by a delivery and answered, ≤ 34 KiB per idle pair (debug build), threads bounded, sockets and memory back")
        func thousandIdleSessions() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(
                standIn, smtpPort: 27851, imapPort: 27801,
                accounts: ["alice@contoso.test", "bob@contoso.test"],
                extraServer: "sent_copy = \"never\"\nlock_after_send = false",
                extraLimits: "imap_upstream_sessions = \(Self.sessions + 20)\nimap_sessions_per_address = \(Self.sessions + 20)\nsmtp_sessions_per_address = 200")
            let pid = try #require(installation.serveProcessIdentifier)
            #expect(installation.serveOutput.contains("descriptor limit"), "serve logs its descriptor limit at start")

            let script = try String(
                contentsOfFile: StandIn.packageRoot + "/integration/bench/imap_idle_load.py", encoding: .utf8)
            let started = Date()
            let result = try runPython(script, [
                "--imap-port", "27801", "--smtp-port", "27851", "--user", "bob@contoso.test",
                "--submitter", "alice@contoso.test", "--password", IMAPEndToEnd.password, "--pid", String(pid),
                "--sessions", String(Self.sessions), "--submitters", String(Self.submitters), "--messages", "1",
                "--recipient", "alice@contoso.test", "--setup-timeout", "40", "--wake-timeout", "20",
            ])
            let elapsed = Date().timeIntervalSince(started)
            try #require(result.status == 0, "the load script failed: \(result.error.suffix(1500))")
            let line = try #require(result.output.split(separator: "\n").last)
            let out = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            print("imap idle load: \(line)")

            #expect(elapsed < 60, "bounded time: \(elapsed) s")
            #expect(out["idling"] as? Int == Self.sessions, "every session reached IDLE: \(out["setup_failures"] ?? "")")
            let submit = try #require(out["submit"] as? [String: Any])
            #expect(submit["sent"] as? Int == Self.submitters, "\(submit)")
            #expect(submit["error_count"] as? Int == 0, "\(submit)")
            #expect(out["delivered"] as? Int == Self.submitters, "each message is in alice's INBOX: \(out)")
            #expect(out["distinct_message_ids"] as? Int == Self.submitters, "and only once: \(out)")
            #expect(out["woken"] as? Int == Self.sessions, "the wake-up message to bob reached every session: \(out)")
            #expect(out["answered"] as? Int == Self.sessions, "DONE, NOOP, LOGOUT answered in every session: \(out)")
            #expect(out["failed"] as? Int == 0, "\(out["failures"] ?? "")")

            let perPair = try #require(out["kib_per_pair"] as? Double)
            #expect(perPair <= Self.kibPerPairTarget, "gateway memory per idle session pair: \(perPair) KiB")

            let before = try #require(out["before"] as? [String: Any]).compactMapValues { $0 as? Int }
            let idle = try #require(out["idle"] as? [String: Any]).compactMapValues { $0 as? Int }
            let after = try #require(out["after"] as? [String: Any]).compactMapValues { $0 as? Int }
            let sockets = try #require(out["sockets"] as? [String: Int])
            #expect(sockets["idle"]! - sockets["before"]! == 2 * Self.sessions, "two sockets per pair while idling: \(sockets)")
            #expect(sockets["after"] == sockets["before"], "every socket is closed again: \(sockets)")
            // Other descriptors: the store's pool may open a reader or two under load (GRDB opens them lazily).
            #expect(after["fds"]! - sockets["after"]! <= before["fds"]! - sockets["before"]! + 4, "\(before) -> \(after)")
            // Threads: Dispatch's pool, not one per session (2,000 connections).
            let peakThreads = try #require(out["peak_threads"] as? Int)
            #expect(peakThreads <= 64, "threads bounded: peak \(peakThreads)")
            #expect(after["threads"]! <= 64)
            // Memory: most of what the sessions used is given back once they are gone (serve trims its heap; glibc
            // keeps the pages that still hold a live allocation, so not all of it).
            let idleGrowth = idle["rss_kib"]! - before["rss_kib"]!
            let kept = after["rss_kib"]! - before["rss_kib"]!
            #expect(kept < idleGrowth / 2, "RSS before \(before), idling \(idle), after \(after)")
        }
    }
}
