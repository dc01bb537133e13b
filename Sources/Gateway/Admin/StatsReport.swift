// Gateway: the statistics report shared by `mailgate stats` (table, JSON, CSV), /stats.json and /metrics.
public import Foundation
public import Store

/// The figures of one protocol (for one account, or summed): what the administrator reads, mapped from the
/// counter names the SMTP, IMAP, POP3 and download code write. Names it does not know land in `other` so that
/// a new counter shows up before this mapping learns it.
public struct StatsFigures: Codable, Sendable, Equatable {
    public var sessions: Int64 = 0
    public var connectionsRefused: Int64 = 0
    public var loginsOK: Int64 = 0
    public var loginsFailed: Int64 = 0
    public var loginsBusy: Int64 = 0
    public var messagesSent: Int64 = 0
    public var sentCopiesMade: Int64 = 0
    public var sentCopiesSkipped: Int64 = 0
    public var sentCopiesFailed: Int64 = 0
    public var bytesFromClient: Int64 = 0
    public var bytesToClient: Int64 = 0
    public var commands: Int64 = 0
    public var lockRefusals: Int64 = 0
    public var appendsDeduplicated: Int64 = 0
    public var tokenRefreshes: Int64 = 0
    public var tokenRefreshFailures: Int64 = 0
    public var upstreamReconnects: Int64 = 0
    /// Upstream errors by class: `login`, `rejected_4xx`, `rejected_5xx`, `fate_unknown`, `unclassified`, …
    public var upstreamErrors: [String: Int64] = [:]
    public var downloads: Int64 = 0
    public var deletions: Int64 = 0
    /// Counters without a column of their own, by their stored name.
    public var other: [String: Int64] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case sessions, commands, downloads, deletions, other
        case connectionsRefused = "connections_refused"
        case loginsOK = "logins_ok"
        case loginsFailed = "logins_failed"
        case loginsBusy = "logins_busy"
        case messagesSent = "messages_sent"
        case sentCopiesMade = "sent_copies_made"
        case sentCopiesSkipped = "sent_copies_skipped"
        case sentCopiesFailed = "sent_copies_failed"
        case bytesFromClient = "bytes_from_client"
        case bytesToClient = "bytes_to_client"
        case lockRefusals = "lock_refusals"
        case appendsDeduplicated = "appends_deduplicated"
        case tokenRefreshes = "token_refreshes"
        case tokenRefreshFailures = "token_refresh_failures"
        case upstreamReconnects = "upstream_reconnects"
        case upstreamErrors = "upstream_errors"
    }

    /// The plain number figures in table order: JSON key, the table's label, and a key path.
    public static var columns: [(key: String, label: String, path: WritableKeyPath<StatsFigures, Int64>)] { [
        ("sessions", "sessions", \.sessions),
        ("connections_refused", "connections refused (limit)", \.connectionsRefused),
        ("logins_ok", "logins ok", \.loginsOK),
        ("logins_failed", "logins failed", \.loginsFailed),
        ("logins_busy", "logins refused (busy)", \.loginsBusy),
        ("messages_sent", "messages sent", \.messagesSent),
        ("sent_copies_made", "sent copies made", \.sentCopiesMade),
        ("sent_copies_skipped", "sent copies skipped", \.sentCopiesSkipped),
        ("sent_copies_failed", "sent copies failed", \.sentCopiesFailed),
        ("bytes_from_client", "bytes from clients", \.bytesFromClient),
        ("bytes_to_client", "bytes to clients", \.bytesToClient),
        ("commands", "commands", \.commands),
        ("lock_refusals", "lock refusals", \.lockRefusals),
        ("appends_deduplicated", "APPENDs de-duplicated", \.appendsDeduplicated),
        ("token_refreshes", "token refreshes", \.tokenRefreshes),
        ("token_refresh_failures", "token refresh failures", \.tokenRefreshFailures),
        ("upstream_reconnects", "upstream reconnects", \.upstreamReconnects),
        ("downloads", "downloads", \.downloads),
        ("deletions", "deletions", \.deletions),
    ] }

    public var isEmpty: Bool { self == StatsFigures() }

    public mutating func add(_ other: StatsFigures) {
        for column in Self.columns { self[keyPath: column.path] += other[keyPath: column.path] }
        for (name, value) in other.upstreamErrors { upstreamErrors[name, default: 0] += value }
        for (name, value) in other.other { self.other[name, default: 0] += value }
    }

    /// The protocols, in display order.
    public static let protocols = ["smtp", "imap", "pop3", "download", "oauth", "other"]

    /// Where counter `name` goes: its protocol and what it adds to.
    public static func classify(_ name: String) -> (protocol: String, apply: (inout StatsFigures, Int64) -> Void) {
        // Names the SMTP recorder and sent-copy worker wrote before counters had a protocol prefix.
        let legacy: [String: String] = [
            "messages_relayed": "messages_sent", "bytes_relayed": "bytes_relayed",
            "messages_fate_unknown": "messages_fate_unknown", "upstream_rejected_4xx": "upstream_rejected_4xx",
            "upstream_rejected_5xx": "upstream_rejected_5xx", "sent_copy_made": "sent_copy_made",
            "sent_copy_skipped": "sent_copy_skipped", "sent_copy_failed": "sent_copy_failed",
        ]
        var proto: String
        var rest: String
        if let renamed = legacy[name] {
            proto = "smtp"
            rest = renamed
        } else if let dot = name.firstIndex(of: "."), Self.protocols.contains(String(name[..<dot]))
            || name.hasPrefix("token.")
        {
            proto = String(name[..<dot])
            rest = String(name[name.index(after: dot)...])
            if proto == "token" { proto = "oauth" }
        } else {
            return ("other", { figures, value in figures.other[name, default: 0] += value })
        }
        let column: WritableKeyPath<StatsFigures, Int64>?
        switch rest {
        case "sessions": column = \.sessions
        case "connection.refused_limit": column = \.connectionsRefused
        case "login.ok": column = \.loginsOK
        case "login.failed": column = \.loginsFailed
        case "login.busy": column = \.loginsBusy
        case "messages_sent", "messages_relayed", "messages": column = proto == "download" ? \.downloads : \.messagesSent
        case "bytes_relayed", "bytes_from_client": column = \.bytesFromClient
        case "bytes_to_client": column = \.bytesToClient
        case "commands": column = \.commands
        case "lock_refusals": column = \.lockRefusals
        case "append_deduplicated", "appends_deduplicated": column = \.appendsDeduplicated
        case "sent_copy_made": column = \.sentCopiesMade
        case "sent_copy_skipped": column = \.sentCopiesSkipped
        case "sent_copy_failed": column = \.sentCopiesFailed
        case "refresh.ok", "refreshed", "refreshes": column = \.tokenRefreshes
        case "refresh.failed", "refresh_failures": column = \.tokenRefreshFailures
        case "upstream_reconnects": column = \.upstreamReconnects
        case "downloaded", "downloads", "messages_downloaded", "retrieved": column = \.downloads
        case "deleted", "deletions", "messages_deleted": column = \.deletions
        default: column = nil
        }
        if let column { return (proto, { figures, value in figures[keyPath: column] += value }) }
        let errorClass: String?
        switch rest {
        case "login.upstream_failed":
            // The client's login failed because the upstream's did: both a failed login and an upstream error.
            return (proto, { figures, value in
                figures.loginsFailed += value
                figures.upstreamErrors["login", default: 0] += value
            })
        case "upstream_rejected_4xx": errorClass = "rejected_4xx"
        case "upstream_rejected_5xx": errorClass = "rejected_5xx"
        case "messages_fate_unknown": errorClass = "fate_unknown"
        case "upstream_errors": errorClass = "unclassified"
        default:
            errorClass = rest.hasPrefix("upstream_errors.") ? String(rest.dropFirst("upstream_errors.".count)) : nil
        }
        if let errorClass, !errorClass.isEmpty {
            return (proto, { figures, value in figures.upstreamErrors[errorClass, default: 0] += value })
        }
        return (proto, { figures, value in figures.other[name, default: 0] += value })
    }
}

/// p50/p95/p99 of one latency metric over the report's hours.
public struct LatencyFigures: Codable, Sendable, Equatable {
    public var metric: String
    public var title: String
    public var count: UInt64
    public var p50Milliseconds: Double
    public var p95Milliseconds: Double
    public var p99Milliseconds: Double
    public var maxMilliseconds: Double

    enum CodingKeys: String, CodingKey {
        case metric, title, count
        case p50Milliseconds = "p50_ms"
        case p95Milliseconds = "p95_ms"
        case p99Milliseconds = "p99_ms"
        case maxMilliseconds = "max_ms"
    }

    init(metric: LatencyMetric, histogram: LatencyHistogram) {
        func ms(_ microseconds: UInt64) -> Double { (Double(microseconds) / 1_000 * 1_000).rounded() / 1_000 }
        self.metric = metric.rawValue
        title = metric.title
        count = histogram.count
        p50Milliseconds = ms(histogram.microseconds(atPercentile: 50))
        p95Milliseconds = ms(histogram.microseconds(atPercentile: 95))
        p99Milliseconds = ms(histogram.microseconds(atPercentile: 99))
        maxMilliseconds = ms(histogram.maxMicroseconds)
    }
}

/// `mailgate stats --json` and `/stats.json`, version 1 (README: "Statistics, metrics and the status page").
///
/// Additions keep `version` 1; a renamed or removed field or a changed meaning makes it 2.
public struct StatsReport: Codable, Sendable {
    public static let currentVersion = 1

    public struct AccountEntry: Codable, Sendable {
        /// nil: what happened before a login (SMTP/IMAP sessions are counted at connect) or without an account.
        public var account: String?
        public var protocols: [String: StatsFigures]
        public var total: StatsFigures
        public var latency: [LatencyFigures]

        enum CodingKeys: String, CodingKey { case account, protocols, total, latency }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(account, forKey: .account)
            try container.encode(protocols, forKey: .protocols)
            try container.encode(total, forKey: .total)
            try container.encode(latency, forKey: .latency)
        }
    }

    /// A stored counter as it is (name, account, listener, sum).
    public struct Total: Codable, Sendable {
        public var name: String
        public var account: String?
        public var listener: String?
        public var value: Int64
    }

    public var version: Int
    public var generatedAt: String
    /// Start of the first hour counted (UTC), or nil for everything stored.
    public var since: String?
    /// The `--account` filter, if any.
    public var account: String?
    /// One entry per account (sorted; the no-account entry last).
    public var accounts: [AccountEntry]
    /// Each protocol summed over all accounts.
    public var protocols: [String: StatsFigures]
    /// Everything summed.
    public var total: StatsFigures
    /// Latency over all accounts, per metric.
    public var latency: [LatencyFigures]
    /// The raw counters behind the figures.
    public var totals: [Total]

    enum CodingKeys: String, CodingKey {
        case version, since, account, accounts, protocols, total, latency, totals
        case generatedAt = "generated_at"
    }

    /// `since` and `account` are written as null when unset, so the shape never loses a key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(generatedAt, forKey: .generatedAt)
        try container.encode(since, forKey: .since)
        try container.encode(account, forKey: .account)
        try container.encode(accounts, forKey: .accounts)
        try container.encode(protocols, forKey: .protocols)
        try container.encode(total, forKey: .total)
        try container.encode(latency, forKey: .latency)
        try container.encode(totals, forKey: .totals)
    }

    /// Reads counters and latency histograms from `database` over the hours from the one containing `since`.
    public static func load(
        from database: MailGateDatabase, since: Date?, account: String?, now: Date = Date()
    ) throws(StoreError) -> StatsReport {
        let account = account?.lowercased()
        let totals = try database.counters(since: since ?? Date(timeIntervalSince1970: 0), account: account)
        let buckets = try database.latencyBuckets(since: since, account: account)
        return build(totals: totals, latency: buckets, since: since, account: account, now: now)
    }

    /// The report from already read rows (tests build it from rows they wrote).
    public static func build(
        totals: [CounterTotal], latency: [LatencyBucket], since: Date?, account: String?, now: Date
    ) -> StatsReport {
        var perAccount: [String: [String: StatsFigures]] = [:]
        for total in totals {
            let (proto, apply) = StatsFigures.classify(total.name)
            apply(&perAccount[total.accountEmail ?? "", default: [:]][proto, default: StatsFigures()], total.value)
        }
        var histograms: [String: [LatencyMetric: LatencyHistogram]] = [:]
        var overall: [LatencyMetric: LatencyHistogram] = [:]
        for bucket in latency {
            guard let metric = LatencyMetric(rawValue: bucket.metric),
                let histogram = LatencyHistogram(serialized: bucket.histogram)
            else { continue }
            histograms[bucket.accountEmail ?? "", default: [:]][metric, default: LatencyHistogram()].add(histogram)
            overall[metric, default: LatencyHistogram()].add(histogram)
            if perAccount[bucket.accountEmail ?? ""] == nil { perAccount[bucket.accountEmail ?? ""] = [:] }
        }
        func figures(_ map: [LatencyMetric: LatencyHistogram]) -> [LatencyFigures] {
            LatencyMetric.allCases.compactMap { metric in
                map[metric].map { LatencyFigures(metric: metric, histogram: $0) }
            }
        }
        var entries: [AccountEntry] = []
        var protocols: [String: StatsFigures] = [:]
        var total = StatsFigures()
        let keys = perAccount.keys.sorted { ($0.isEmpty ? 1 : 0, $0) < ($1.isEmpty ? 1 : 0, $1) }
        for key in keys {
            let map = perAccount[key] ?? [:]
            var sum = StatsFigures()
            for (proto, figures) in map {
                sum.add(figures)
                protocols[proto, default: StatsFigures()].add(figures)
            }
            total.add(sum)
            entries.append(
                AccountEntry(
                    account: key.isEmpty ? nil : key, protocols: map, total: sum, latency: figures(histograms[key] ?? [:])))
        }
        return StatsReport(
            version: currentVersion, generatedAt: UTCTimestamp.format(now), since: since.map(Self.hourStart),
            account: account, accounts: entries, protocols: protocols, total: total, latency: figures(overall),
            totals: totals.map {
                Total(name: $0.name, account: $0.accountEmail, listener: $0.listener, value: $0.value)
            })
    }

    /// The start of the hour containing `date`, as stored text.
    static func hourStart(_ date: Date) -> String {
        UTCTimestamp.hourBucket(date) + ":00:00.000Z"
    }

    /// Pretty JSON with sorted keys (stable for diffs and tests).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// `kind,account,protocol,name,value` rows: `figure`, `upstream_error`, `other` and `latency` (p50_ms, …).
    public func csv() -> String {
        var lines = ["kind,account,protocol,name,value"]
        func field(_ text: String) -> String {
            var safe = text
            // A cell starting with = + - @ is a formula in spreadsheets; a leading quote keeps it text.
            if let first = safe.first, "=+-@".contains(first) { safe = "'" + safe }
            if safe.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
                return "\"" + safe.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            return safe
        }
        for entry in accounts {
            let who = field(entry.account ?? "")
            for proto in StatsFigures.protocols {
                guard let figures = entry.protocols[proto] else { continue }
                for column in StatsFigures.columns where figures[keyPath: column.path] != 0 {
                    lines.append("figure,\(who),\(proto),\(column.key),\(figures[keyPath: column.path])")
                }
                for (name, value) in figures.upstreamErrors.sorted(by: { $0.key < $1.key }) {
                    lines.append("upstream_error,\(who),\(proto),\(field(name)),\(value)")
                }
                for (name, value) in figures.other.sorted(by: { $0.key < $1.key }) {
                    lines.append("other,\(who),\(proto),\(field(name)),\(value)")
                }
            }
            for item in entry.latency { lines += Self.latencyRows(item, who: who) }
        }
        for item in latency { lines += Self.latencyRows(item, who: "*") }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func latencyRows(_ item: LatencyFigures, who: String) -> [String] {
        let proto = item.metric.split(separator: ".").first.map(String.init) ?? ""
        return [
            "latency,\(who),\(proto),\(item.metric).count,\(item.count)",
            "latency,\(who),\(proto),\(item.metric).p50_ms,\(item.p50Milliseconds)",
            "latency,\(who),\(proto),\(item.metric).p95_ms,\(item.p95Milliseconds)",
            "latency,\(who),\(proto),\(item.metric).p99_ms,\(item.p99Milliseconds)",
            "latency,\(who),\(proto),\(item.metric).max_ms,\(item.maxMilliseconds)",
        ]
    }

    /// The readable table: one block per account, a row per figure, a column per protocol.
    public func table() -> String {
        var out = "Statistics " + (since.map { "since \($0)" } ?? "over everything stored") + " (UTC hours)"
        if let account { out += " for \(account)" }
        out += ":\n"
        guard !accounts.isEmpty else { return out + "  nothing counted\n" }
        var blocks = accounts.map { ($0.account ?? "(before login / no account)", $0.protocols, $0.latency) }
        if accounts.count > 1 { blocks.append(("all accounts", protocols, latency)) }
        for (title, map, latencies) in blocks {
            let used = StatsFigures.protocols.filter { map[$0].map { !$0.isEmpty } ?? false }
            out += "\n" + title + "\n"
            let labelWidth = 30
            func pad(_ text: String, _ width: Int, right: Bool = true) -> String {
                let gap = String(repeating: " ", count: max(0, width - text.count))
                return right ? gap + text : text + gap
            }
            out += "  " + pad("", labelWidth, right: false) + used.map { pad($0, 12) }.joined() + "\n"
            var rows: [(String, [Int64])] = StatsFigures.columns.map { column in
                (column.label, used.map { map[$0]?[keyPath: column.path] ?? 0 })
            }
            let classes = Set(used.flatMap { map[$0]?.upstreamErrors.keys.map { $0 } ?? [] }).sorted()
            rows += classes.map { name in ("upstream errors: \(name)", used.map { map[$0]?.upstreamErrors[name] ?? 0 }) }
            let others = Set(used.flatMap { map[$0]?.other.keys.map { $0 } ?? [] }).sorted()
            rows += others.map { name in (name, used.map { map[$0]?.other[name] ?? 0 }) }
            for (label, values) in rows where values.contains(where: { $0 != 0 }) {
                out += "  " + pad(label, labelWidth, right: false) + values.map { pad(String($0), 12) }.joined() + "\n"
            }
            if !latencies.isEmpty {
                out += "  " + pad("latency (ms)", labelWidth, right: false)
                    + ["count", "p50", "p95", "p99", "max"].map { pad($0, 10) }.joined() + "\n"
                for item in latencies {
                    out += "  " + pad(item.title, labelWidth, right: false)
                        + [String(item.count), Self.ms(item.p50Milliseconds), Self.ms(item.p95Milliseconds),
                           Self.ms(item.p99Milliseconds), Self.ms(item.maxMilliseconds)].map { pad($0, 10) }.joined()
                        + "\n"
                }
            }
        }
        return out
    }

    static func ms(_ value: Double) -> String {
        String(format: value < 10 ? "%.2f" : "%.1f", value)
    }
}

/// Parses `--since`: a duration back from now (`30m`, `1h`, `7d`) or a UTC date (`2026-12-01`,
/// `2026-12-01T10:00`, `2026-12-01T10:00:00Z`).
public enum SinceParser {
    public static func parse(_ text: String, now: Date = Date(), seconds: (String) -> Int?) -> Date? {
        if let value = seconds(text), value > 0 { return now.addingTimeInterval(-Double(value)) }
        let bytes = Array(text.utf8)
        guard bytes.count >= 10, bytes.count <= 25 else { return nil }
        var full = text
        if full.hasSuffix("Z") { full.removeLast() }
        switch full.count {
        case 10: full += "T00:00:00.000"
        case 13: full += ":00:00.000"
        case 16: full += ":00.000"
        case 19: full += ".000"
        case 23: break
        default: return nil
        }
        return UTCTimestamp.parse(full + "Z")
    }
}
