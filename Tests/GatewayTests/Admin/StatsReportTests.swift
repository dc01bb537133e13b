// GatewayTests/Admin: counter names → figures, --since by the test's clock, latency percentiles, JSON/CSV shapes.

import Foundation
import Store
import Testing

@testable import Gateway

@Suite("StatsReport")
struct StatsReportTests {
    /// 2026-12-03T10:00:00Z.
    static let tenOClock = Date(timeIntervalSince1970: 1_796_292_000)

    @Test("every counter name the gateway writes lands in its figure; unknown names show up under other")
    func mapping() throws {
        let database = try MailGateDatabase.inMemory()
        let at = Self.tenOClock
        let a = "alice@contoso.com"
        try database.increment([
            CounterIncrement("smtp.sessions", listener: "smtp", amount: 4, at: at),
            CounterIncrement("smtp.login.ok", account: a, listener: "smtp", amount: 3, at: at),
            CounterIncrement("smtp.login.failed", account: a, listener: "smtp", amount: 2, at: at),
            CounterIncrement("smtp.login.upstream_failed", account: a, listener: "smtp", amount: 1, at: at),
            CounterIncrement("smtp.connection.refused_limit", listener: "smtp", amount: 5, at: at),
            CounterIncrement("messages_relayed", account: a, listener: "smtp", amount: 7, at: at),
            CounterIncrement("bytes_relayed", account: a, listener: "smtp", amount: 7_000, at: at),
            CounterIncrement("sent_copy_made", account: a, listener: "smtp", amount: 6, at: at),
            CounterIncrement("sent_copy_skipped", account: a, listener: "smtp", amount: 1, at: at),
            CounterIncrement("upstream_rejected_5xx", account: a, listener: "smtp", amount: 2, at: at),
            CounterIncrement("messages_fate_unknown", account: a, listener: "smtp", amount: 1, at: at),
            CounterIncrement("imap.sessions", listener: "imap", amount: 2, at: at),
            CounterIncrement("imap.login.ok", account: a, listener: "imap", amount: 2, at: at),
            CounterIncrement("imap.lock_refusals", account: a, listener: "imap", amount: 9, at: at),
            CounterIncrement("imap.append_deduplicated", account: a, listener: "imap", amount: 1, at: at),
            CounterIncrement("imap.bytes_to_client", account: a, listener: "imap", amount: 500, at: at),
            CounterIncrement("imap.bytes_from_client", account: a, listener: "imap", amount: 50, at: at),
            CounterIncrement("imap.upstream_errors", account: a, listener: "imap", amount: 3, at: at),
            CounterIncrement("token.refresh.ok", account: a, amount: 4, at: at),
            CounterIncrement("token.refresh.failed", account: a, amount: 1, at: at),
            CounterIncrement("pop3.login.ok", account: a, listener: "pop3", amount: 8, at: at),
            CounterIncrement("pop3.upstream_errors.timeout", account: a, listener: "pop3", amount: 2, at: at),
            CounterIncrement("download.messages", account: a, amount: 11, at: at),
            CounterIncrement("download.deleted", account: a, amount: 10, at: at),
            CounterIncrement("pop3.brand_new_thing", account: a, listener: "pop3", amount: 12, at: at),
            CounterIncrement("weird", account: a, amount: 13, at: at),
        ])
        let report = try StatsReport.load(from: database, since: nil, account: nil, now: at)
        #expect(report.version == 1)
        let alice = try #require(report.accounts.first { $0.account == a })
        let smtp = try #require(alice.protocols["smtp"])
        #expect(smtp.loginsOK == 3)
        #expect(smtp.loginsFailed == 3, "local failures plus the one the upstream refused")
        #expect(smtp.upstreamErrors == ["login": 1, "rejected_5xx": 2, "fate_unknown": 1])
        #expect(smtp.messagesSent == 7)
        #expect(smtp.bytesFromClient == 7_000)
        #expect(smtp.sentCopiesMade == 6 && smtp.sentCopiesSkipped == 1 && smtp.sentCopiesFailed == 0)
        let imap = try #require(alice.protocols["imap"])
        #expect(imap.loginsOK == 2 && imap.lockRefusals == 9 && imap.appendsDeduplicated == 1)
        #expect(imap.bytesToClient == 500 && imap.bytesFromClient == 50)
        #expect(imap.upstreamErrors == ["unclassified": 3])
        let oauth = try #require(alice.protocols["oauth"])
        #expect(oauth.tokenRefreshes == 4 && oauth.tokenRefreshFailures == 1)
        let pop3 = try #require(alice.protocols["pop3"])
        #expect(pop3.loginsOK == 8)
        #expect(pop3.upstreamErrors == ["timeout": 2])
        #expect(pop3.other == ["pop3.brand_new_thing": 12])
        let download = try #require(alice.protocols["download"])
        #expect(download.downloads == 11 && download.deletions == 10)
        #expect(alice.protocols["other"]?.other == ["weird": 13])
        let anonymous = try #require(report.accounts.last)
        #expect(anonymous.account == nil)
        #expect(anonymous.protocols["smtp"]?.sessions == 4)
        #expect(anonymous.protocols["smtp"]?.connectionsRefused == 5)
        #expect(report.protocols["imap"]?.sessions == 2)
        #expect(report.total.loginsOK == 3 + 2 + 8)
        #expect(report.totals.count == 26)
        let table = report.table()
        #expect(table.contains("pop3.brand_new_thing"))
        #expect(table.contains("upstream errors: rejected_5xx"))
        #expect(table.contains("lock refusals"))
        let csv = report.csv()
        #expect(csv.contains("figure,alice@contoso.com,imap,lock_refusals,9\n"))
        #expect(csv.contains("upstream_error,alice@contoso.com,smtp,rejected_5xx,2\n"))
        #expect(csv.contains("other,alice@contoso.com,pop3,pop3.brand_new_thing,12\n"))
    }

    @Test("--since counts whole UTC hours from the test's clock; a date works too; --account filters")
    func since() throws {
        let database = try MailGateDatabase.inMemory()
        let now = Self.tenOClock.addingTimeInterval(30 * 60)  // 10:30
        try database.increment([
            CounterIncrement("smtp.login.ok", account: "a@x.test", amount: 1, at: now.addingTimeInterval(-3 * 86_400)),
            CounterIncrement("smtp.login.ok", account: "a@x.test", amount: 10, at: now.addingTimeInterval(-5 * 3_600)),
            CounterIncrement("smtp.login.ok", account: "a@x.test", amount: 100, at: now.addingTimeInterval(-10 * 60)),
            CounterIncrement("smtp.login.ok", account: "b@x.test", amount: 1_000, at: now.addingTimeInterval(-10 * 60)),
        ])
        func logins(_ since: String?, account: String? = nil) throws -> Int64 {
            let start = try since.map { try #require(SinceParser.parse($0, now: now, seconds: { Self.seconds($0) })) }
            return try StatsReport.load(from: database, since: start, account: account, now: now).total.loginsOK
        }
        #expect(try logins(nil) == 1_111)
        #expect(try logins("1h") == 1_100, "10:30 - 1h = 09:30, counted from the 09:00 hour")
        #expect(try logins("6h") == 1_110)
        #expect(try logins("7d") == 1_111)
        #expect(try logins("2026-12-03") == 1_110)
        #expect(try logins("2026-12-03T10:00") == 1_100)
        #expect(try logins("2026-12-03T10:00:00Z") == 1_100)
        #expect(try logins(nil, account: "A@x.test") == 111)
        #expect(SinceParser.parse("yesterday", now: now, seconds: { Self.seconds($0) }) == nil)
        #expect(SinceParser.parse("2026-13-01", now: now, seconds: { Self.seconds($0) }) == nil)
        let report = try StatsReport.load(
            from: database, since: SinceParser.parse("1h", now: now, seconds: { Self.seconds($0) }), account: nil, now: now)
        #expect(report.since == "2026-12-03T09:00:00.000Z")
    }

    /// The CLI's parser (Config.DurationParser) is not a Gateway dependency of the tests; a small stand-in.
    static func seconds(_ text: String) -> Int? {
        guard let unit = text.last, let number = Int(text.dropLast()) else { return nil }
        switch unit {
        case "m": return number * 60
        case "h": return number * 3_600
        case "d": return number * 86_400
        default: return nil
        }
    }

    @Test("latency: histograms per hour merge in the database; p50/p95/p99 over the hours asked for")
    func latency() throws {
        let database = try MailGateDatabase.inMemory()
        let clock = CounterBatchTests.TestClock(Self.tenOClock.addingTimeInterval(-3_600))  // 09:00
        let book = LatencyBook(database: database, logger: quietLogger, clock: { clock.read() })
        // 09:xx: 100 samples 1..100 ms; then 10:xx: 100 samples of 1 s.
        for value in 1...100 { book.record(.smtpReply250, microseconds: UInt64(value) * 1_000, account: "a@x.test") }
        book.flush()
        for value in 1...50 { book.record(.smtpReply250, microseconds: UInt64(value) * 1_000, account: "a@x.test") }
        for value in 51...100 { book.record(.smtpReply250, microseconds: UInt64(value) * 1_000, account: "a@x.test") }
        book.flush()  // merged into the stored 09:00 histogram: 200 samples
        clock.advance(3_600)
        for _ in 0..<100 { book.record(.smtpReply250, microseconds: 1_000_000, account: "a@x.test") }
        book.record(.imapAdded, microseconds: 42, account: nil)
        book.flush()
        #expect(try database.latencyBuckets(since: nil).count == 3)
        let all = try StatsReport.load(from: database, since: nil, account: nil, now: clock.read())
        let reply = try #require(all.latency.first { $0.metric == "smtp.reply_250" })
        #expect(reply.count == 300)
        #expect(abs(reply.p50Milliseconds - 75) <= 1, "\(reply)")
        #expect(abs(reply.p95Milliseconds - 1_000) <= 10, "\(reply)")
        #expect(abs(reply.p99Milliseconds - 1_000) <= 10, "\(reply)")
        let lastHour = try StatsReport.load(from: database, since: Self.tenOClock, account: nil, now: clock.read())
        let recent = try #require(lastHour.latency.first { $0.metric == "smtp.reply_250" })
        #expect(recent.count == 100)
        #expect(abs(recent.p50Milliseconds - 1_000) <= 10)
        let earlier = try StatsReport.load(
            from: database, since: nil, account: "a@x.test", now: clock.read())
        #expect(earlier.latency.map(\.metric) == ["smtp.reply_250"], "imap.added belongs to no account")
        #expect(all.latency.first { $0.metric == "imap.added" }?.p50Milliseconds == 0.042)
        #expect(all.table().contains("SMTP end of data to 250"))
        #expect(all.csv().contains("latency,*,smtp,smtp.reply_250.count,300\n"))
    }

    @Test("a histogram survives its serialization; damaged rows are skipped, not fatal")
    func serialization() throws {
        var histogram = LatencyHistogram()
        for value: UInt64 in [1, 7, 900, 12_345, 3_000_000, 9_000_000_000] { histogram.record(microseconds: value) }
        let again = try #require(LatencyHistogram(serialized: histogram.serialized()))
        #expect(again == histogram)
        #expect(again.count == 6)
        #expect(again.maxMicroseconds >= LatencyHistogram.highestMicroseconds * 99 / 100, "clamped to an hour")
        #expect(LatencyHistogram(serialized: Data("{\"v\":2}".utf8)) == nil)
        #expect(LatencyHistogram(serialized: Data("not json".utf8)) == nil)
        #expect(LatencyHistogram(serialized: Data("{\"v\":1,\"unit\":\"us\",\"buckets\":[[1]]}".utf8)) == nil)
    }

    @Test("the JSON shape: version 1, documented keys, every figure present")
    func jsonShape() throws {
        let database = try MailGateDatabase.inMemory()
        try database.increment([CounterIncrement("smtp.login.ok", account: "a@x.test", amount: 2, at: Self.tenOClock)])
        let report = try StatsReport.load(from: database, since: nil, account: nil, now: Self.tenOClock)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect(object["version"] as? Int == 1)
        #expect(object["since"] is NSNull && object["account"] is NSNull)
        #expect(Set(object.keys) == [
            "version", "generated_at", "since", "account", "accounts", "protocols", "total", "latency", "totals",
        ])
        let accounts = try #require(object["accounts"] as? [[String: Any]])
        #expect(accounts.first?["account"] as? String == "a@x.test")
        let smtp = try #require((accounts.first?["protocols"] as? [String: Any])?["smtp"] as? [String: Any])
        #expect(smtp["logins_ok"] as? Int == 2)
        for column in StatsFigures.columns { #expect(smtp[column.key] != nil, "missing \(column.key)") }
        #expect(smtp["upstream_errors"] is [String: Any])
        #expect(smtp["other"] is [String: Any])
        let decoded = try JSONDecoder().decode(StatsReport.self, from: Data(report.json().utf8))
        #expect(decoded.accounts.first?.protocols["smtp"]?.loginsOK == 2)
    }
}
