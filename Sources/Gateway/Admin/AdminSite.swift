// Gateway: what the status server serves: /, /stats.json, /metrics.
import CoreMetrics
public import Config
public import Foundation
import MailCore
import Prometheus
public import Store

/// The routes of the status server, built from the state database on every request (so the page, the JSON and
/// the metrics say what `mailgate stats` says), plus the live figures only the running serve knows.
public struct AdminSite: Sendable {
    public let database: MailGateDatabase
    public let configuration: MailGateConfiguration
    /// Open sessions per listener name, now.
    public let sessionsNow: @Sendable () -> [String: Int]
    /// Writes pending counters first, so that a request sees everything counted until it arrived.
    public let flush: @Sendable () -> Void
    public let clock: @Sendable () -> Date

    public init(
        database: MailGateDatabase, configuration: MailGateConfiguration,
        sessionsNow: @escaping @Sendable () -> [String: Int], flush: @escaping @Sendable () -> Void = {},
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.database = database
        self.configuration = configuration
        self.sessionsNow = sessionsNow
        self.flush = flush
        self.clock = clock
    }

    public func handle(_ request: AdminRequest) -> AdminResponse {
        flush()
        do {
            switch request.path {
            case "/":
                return AdminResponse(
                    status: 200, contentType: "text/html; charset=utf-8", body: Array(try page().utf8))
            case "/stats.json":
                let query = Self.query(request.query)
                var since: Date? = nil
                if let text = query["since"] {
                    guard let parsed = SinceParser.parse(text, now: clock(), seconds: DurationParser.seconds) else {
                        return .text(400, "since=\(sanitizeForLog(text, maximumLength: 40)) is neither a duration (1h, 7d) nor a date (2026-12-01).")
                    }
                    since = parsed
                }
                let report = try StatsReport.load(from: database, since: since, account: query["account"], now: clock())
                return AdminResponse(status: 200, contentType: "application/json", body: Array((report.json() + "\n").utf8))
            case "/metrics":
                return AdminResponse(
                    status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: try metrics())
            default:
                return .text(404, "Not found: try /, /stats.json or /metrics.")
            }
        } catch {
            return .text(500, "The state database could not be read: \(error)")
        }
    }

    /// `a=b&c=d`, percent-decoded; at most 16 pairs.
    static func query(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(16) {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let value = parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? parts[1]
            result[parts[0]] = value
        }
        return result
    }

    // MARK: - /metrics

    /// The Prometheus text format, produced through swift-metrics with a registry of its own per request (no
    /// global bootstrap): counters are everything stored, as `mailgate stats` without --since shows them.
    func metrics() throws(StoreError) -> [UInt8] {
        let report = try StatsReport.load(from: database, since: nil, account: nil, now: clock())
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        func label(_ text: String?) -> String { String((text ?? "").prefix(200)) }
        for entry in report.accounts {
            for (proto, figures) in entry.protocols.sorted(by: { $0.key < $1.key }) {
                let dimensions = [("account", label(entry.account)), ("protocol", proto)]
                for column in StatsFigures.columns where figures[keyPath: column.path] != 0 {
                    CoreMetrics.Counter(label: "mailgate_\(column.key)_total", dimensions: dimensions, factory: factory)
                        .increment(by: figures[keyPath: column.path])
                }
                for (name, value) in figures.upstreamErrors {
                    CoreMetrics.Counter(
                        label: "mailgate_upstream_errors_total", dimensions: dimensions + [("class", label(name))],
                        factory: factory
                    ).increment(by: value)
                }
                for (name, value) in figures.other {
                    CoreMetrics.Counter(
                        label: "mailgate_counter_total", dimensions: dimensions + [("name", label(name))], factory: factory
                    ).increment(by: value)
                }
            }
        }
        for item in report.latency {
            for (quantile, value) in [("0.5", item.p50Milliseconds), ("0.95", item.p95Milliseconds), ("0.99", item.p99Milliseconds)] {
                Gauge(
                    label: "mailgate_latency_milliseconds", dimensions: [("metric", item.metric), ("quantile", quantile)],
                    factory: factory
                ).record(value)
            }
            Gauge(label: "mailgate_latency_samples", dimensions: [("metric", item.metric)], factory: factory)
                .record(Double(item.count))
        }
        for (listener, count) in sessionsNow().sorted(by: { $0.key < $1.key }) {
            Gauge(label: "mailgate_sessions_open", dimensions: [("listener", listener)], factory: factory)
                .record(Double(count))
        }
        let states = try accountStates()
        for state in ["connected", "needs_reconnect", "not_connected"] {
            Gauge(label: "mailgate_accounts", dimensions: [("token_state", state)], factory: factory)
                .record(Double(states.filter { $0.state.key == state }.count))
        }
        return registry.emitToBuffer()
    }

    // MARK: - accounts

    /// An account and what its token needs.
    struct AccountState {
        enum State {
            case connected(expires: Date, lastRefresh: Date?)
            case needsReconnect(reason: String?)
            case notConnected

            var key: String {
                switch self {
                case .connected: "connected"
                case .needsReconnect: "needs_reconnect"
                case .notConnected: "not_connected"
                }
            }
        }

        var email: String
        var server: String
        var shared: Bool
        var state: State
    }

    func accountStates() throws(StoreError) -> [AccountState] {
        try database.accounts().sorted { $0.email < $1.email }.map { (account) throws(StoreError) -> AccountState in
            let state: AccountState.State
            if let token = try database.token(email: account.email) {
                state =
                    token.state == .needsReconnect
                    ? .needsReconnect(reason: token.lastError)
                    : .connected(expires: token.accessExpiresAt, lastRefresh: token.lastRefreshAt)
            } else {
                state = .notConnected
            }
            return AccountState(email: account.email, server: account.serverName, shared: account.isShared, state: state)
        }
    }

    // MARK: - the page

    static func html(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Messages sent per hour over the last 7 days (168 bars), oldest left.
    func hourlyMessages(now: Date) throws(StoreError) -> [(hour: Date, count: Int64)] {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let thisHour = seconds - ((seconds % 3_600) + 3_600) % 3_600
        let first = Date(timeIntervalSince1970: Double(thisHour - 167 * 3_600))
        let series = try database.counterSeries(name: "messages_relayed", since: first)
        return (0..<168).map { index in
            let hour = Date(timeIntervalSince1970: Double(thisHour - Int64(167 - index) * 3_600))
            return (hour, series[UTCTimestamp.hourBucket(hour)] ?? 0)
        }
    }

    /// An inline SVG bar chart (no script, no external asset).
    static func chart(_ hours: [(hour: Date, count: Int64)]) -> String {
        let width = 840.0
        let height = 160.0
        let peak = max(1, hours.map(\.count).max() ?? 1)
        let barWidth = width / Double(max(1, hours.count))
        var svg = """
            <svg id="messages-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height + 20))" \
            width="\(Int(width))" height="\(Int(height + 20))" role="img" aria-label="Messages sent per hour, last 7 days">
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#f6f8fa"/>

            """
        for (index, item) in hours.enumerated() where item.count > 0 {
            let barHeight = (Double(item.count) / Double(peak) * (height - 10)).rounded()
            let x = (Double(index) * barWidth * 100).rounded() / 100
            svg += """
                <rect class="bar" data-hour="\(UTCTimestamp.hourBucket(item.hour))" data-count="\(item.count)" \
                x="\(x)" y="\(height - barHeight)" width="\(max(1, barWidth - 1))" height="\(barHeight)" fill="#2f6fb3">\
                <title>\(UTCTimestamp.hourBucket(item.hour)):00 UTC: \(item.count)</title></rect>

                """
        }
        for day in stride(from: 0, to: hours.count, by: 24) {
            let x = (Double(day) * barWidth).rounded()
            let label = String(UTCTimestamp.hourBucket(hours[day].hour).prefix(10).suffix(5))
            svg += "<text x=\"\(Int(x) + 2)\" y=\"\(Int(height + 15))\" font-size=\"11\" fill=\"#555\">\(label)</text>\n"
        }
        svg += "<text x=\"\(Int(width) - 4)\" y=\"12\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">peak \(peak)/h</text>\n"
        return svg + "</svg>"
    }

    func page() throws(StoreError) -> String {
        let now = clock()
        let report = try StatsReport.load(from: database, since: now.addingTimeInterval(-86_400), account: nil, now: now)
        let all = try StatsReport.load(from: database, since: nil, account: nil, now: now)
        let accounts = try accountStates()
        let sessions = sessionsNow()
        let hours = try hourlyMessages(now: now)
        let h = Self.html
        var body = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>MailGate status</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>
            body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:60em}
            table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
            td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#a00;font-weight:bold}.ok{color:#070}
            code{background:#eee;padding:0 .2em}
            </style></head><body>
            <h1>MailGate status</h1>
            <p>As of <span id="generated">\(h(UTCTimestamp.format(now)))</span>. Figures of the last 24 hours unless marked; \
            <a href="/stats.json">stats.json</a>, <a href="/metrics">metrics</a>.</p>

            """
        let reconnect = accounts.filter { if case .connected = $0.state { false } else { true } }
        body += "<h2>Accounts</h2>\n"
        if reconnect.isEmpty {
            body += "<p id=\"attention\" class=\"ok\">Every account is connected.</p>\n"
        } else {
            body += "<p id=\"attention\" class=\"bad\">\(reconnect.count) account(s) must sign in again: run the command shown.</p>\n"
        }
        body += "<table id=\"accounts\"><tr><th>account</th><th>server</th><th>token</th><th>what to do</th></tr>\n"
        for account in accounts {
            let state: String
            let action: String
            switch account.state {
            case .connected(let expires, let lastRefresh):
                state = "<span class=\"ok\">connected</span> (access token until \(h(UTCTimestamp.format(expires)))"
                    + (lastRefresh.map { ", refreshed \(h(UTCTimestamp.format($0)))" } ?? "") + ")"
                action = "nothing"
            case .needsReconnect(let reason):
                state = "<span class=\"bad\">must reconnect</span>" + (reason.map { ": \(h(sanitizeForLog($0, maximumLength: 200)))" } ?? "")
                action = "<code>mailgate account connect \(h(account.email))</code>"
            case .notConnected:
                state = "<span class=\"bad\">never connected</span>"
                action = "<code>mailgate account connect \(h(account.email))</code>"
            }
            body += "<tr data-account=\"\(h(account.email))\" data-state=\"\(account.state.key)\"><td>\(h(account.email))\(account.shared ? " (shared)" : "")</td>"
                + "<td>\(h(account.server))</td><td>\(state)</td><td>\(action)</td></tr>\n"
        }
        body += "</table>\n<h2>Sessions now</h2>\n<table id=\"sessions\"><tr><th>listener</th><th>open sessions</th></tr>\n"
        for (listener, count) in sessions.sorted(by: { $0.key < $1.key }) {
            body += "<tr><td>\(h(listener))</td><td class=\"n\" data-listener=\"\(h(listener))\">\(count)</td></tr>\n"
        }
        body += "</table>\n<h2>Messages sent per hour, last 7 days (UTC)</h2>\n" + Self.chart(hours) + "\n"
        body += "<p>Last 7 days: <span id=\"messages-7d\">\(hours.reduce(0) { $0 + $1.count })</span> messages.</p>\n"
        body += "<h2>Last 24 hours per protocol</h2>\n" + Self.figuresTable(report.protocols, id: "last24h")
        body += "<h2>Since the start (everything stored)</h2>\n" + Self.figuresTable(all.protocols, id: "alltime")
        if !report.latency.isEmpty {
            body += "<h2>Latency, last 24 hours (ms)</h2>\n<table id=\"latency\"><tr><th>what</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>\n"
            for item in report.latency {
                body += "<tr data-metric=\"\(h(item.metric))\"><td>\(h(item.title))</td><td class=\"n\">\(item.count)</td>"
                    + [item.p50Milliseconds, item.p95Milliseconds, item.p99Milliseconds, item.maxMilliseconds].map {
                        "<td class=\"n\">\(StatsReport.ms($0))</td>"
                    }.joined() + "</tr>\n"
            }
            body += "</table>\n"
        }
        return body + "</body></html>\n"
    }

    /// Figures (rows) by protocol (columns); every cell carries `data-figure` and `data-protocol` for tests.
    static func figuresTable(_ protocols: [String: StatsFigures], id: String) -> String {
        let used = StatsFigures.protocols.filter { protocols[$0].map { !$0.isEmpty } ?? false }
        guard !used.isEmpty else { return "<p id=\"\(id)\">Nothing counted.</p>\n" }
        var out = "<table id=\"\(id)\"><tr><th></th>" + used.map { "<th>\($0)</th>" }.joined() + "</tr>\n"
        for column in StatsFigures.columns {
            let values = used.map { protocols[$0]?[keyPath: column.path] ?? 0 }
            guard values.contains(where: { $0 != 0 }) else { continue }
            out += "<tr><td>\(html(column.label))</td>"
            for (proto, value) in zip(used, values) {
                out += "<td class=\"n\" data-figure=\"\(column.key)\" data-protocol=\"\(proto)\">\(value)</td>"
            }
            out += "</tr>\n"
        }
        let classes = Set(used.flatMap { protocols[$0]?.upstreamErrors.keys.map { $0 } ?? [] }).sorted()
        for name in classes {
            out += "<tr><td>upstream errors: \(html(name))</td>"
            for proto in used {
                out += "<td class=\"n\" data-figure=\"upstream_errors.\(html(name))\" data-protocol=\"\(proto)\">\(protocols[proto]?.upstreamErrors[name] ?? 0)</td>"
            }
            out += "</tr>\n"
        }
        return out + "</table>\n"
    }
}
