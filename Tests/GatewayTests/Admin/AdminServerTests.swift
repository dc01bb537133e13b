// GatewayTests/Admin: the status server over real sockets: routes, token, bounds; /metrics and /stats.json agree.

import Config
import Foundation
import MailCore
import Store
import Testing
import Transport

@testable import Gateway

@Suite("Admin status server")
struct AdminServerTests {
    static let token = "s3cret-admin-token-0123456789"

    static func configuration() -> MailGateConfiguration {
        MailGateConfiguration(
            sourceFile: "/tmp/mailgate.toml", stateDirectory: "/tmp/state", listen: ListenSettings(), oauth: [:],
            servers: [:], download: DownloadSettings())
    }

    /// A database with known figures: alice connected, bob must reconnect, carol never connected.
    static func database() throws -> MailGateDatabase {
        let database = try MailGateDatabase.inMemory()
        for email in ["alice@contoso.test", "bob@contoso.test", "carol@contoso.test"] {
            try database.addAccount(
                Account(email: email, serverName: "m365", passwordHash: "$scrypt$x", createdAt: Date()))
        }
        try database.saveToken(email: "alice@contoso.test", sealed: [1, 2, 3], accessExpiresAt: Date().addingTimeInterval(3_000))
        try database.saveToken(email: "bob@contoso.test", sealed: [1, 2, 3], accessExpiresAt: Date())
        try database.markNeedsReconnect(email: "bob@contoso.test", reason: "AADSTS70008: the refresh token expired")
        let now = Date()
        try database.increment([
            CounterIncrement("smtp.sessions", listener: "smtp", amount: 6, at: now),
            CounterIncrement("smtp.login.ok", account: "alice@contoso.test", listener: "smtp", amount: 5, at: now),
            CounterIncrement("smtp.login.failed", account: "alice@contoso.test", listener: "smtp", amount: 2, at: now),
            CounterIncrement("messages_relayed", account: "alice@contoso.test", listener: "smtp", amount: 4, at: now),
            CounterIncrement(
                "messages_relayed", account: "alice@contoso.test", listener: "smtp", amount: 3,
                at: now.addingTimeInterval(-2 * 86_400)),
            CounterIncrement("imap.lock_refusals", account: "alice@contoso.test", listener: "imap", amount: 9, at: now),
            CounterIncrement("upstream_rejected_5xx", account: "alice@contoso.test", listener: "smtp", amount: 1, at: now),
            CounterIncrement("pop3.novel_counter", account: "alice@contoso.test", listener: "pop3", amount: 2, at: now),
        ])
        let book = LatencyBook(database: database, logger: quietLogger)
        for value in 1...100 { book.record(.smtpReply250, microseconds: UInt64(value) * 1_000, account: "alice@contoso.test") }
        book.flush()
        return database
    }

    static func server(_ database: MailGateDatabase, token: String? = nil) throws -> AdminHTTPServer {
        let site = AdminSite(
            database: database, configuration: configuration(), sessionsNow: { ["smtp": 3, "imap": 1] })
        return try AdminHTTPServer(
            address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil, token: token.map(Redacted.init), logger: quietLogger
        ) { site.handle($0) }
    }

    /// Sends `request` raw and reads until the server closes: (status, headers, body).
    static func exchange(_ address: HostPort, _ request: String) async throws -> (Int, String, String) {
        let connection = try await AsyncConnection.connect(to: address, tls: nil, serverName: nil, timeout: 5)
        defer { connection.close() }
        try await connection.write(Array(request.utf8))
        var bytes: [UInt8] = []
        while let chunk = try await connection.readAvailable() {
            bytes += chunk
            guard bytes.count < 4_000_000 else { break }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return (0, text, "") }
        let head = String(text[..<split.lowerBound])
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, head, String(text[split.upperBound...]))
    }

    static func get(_ address: HostPort, _ path: String, auth: String? = nil) async throws -> (Int, String, String) {
        try await exchange(
            address, "GET \(path) HTTP/1.1\r\nHost: localhost\r\n" + (auth.map { "Authorization: \($0)\r\n" } ?? "") + "\r\n")
    }

    /// `name{labels} value` lines of the Prometheus text, keyed by `name{labels}`.
    static func samples(_ text: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            result[String(line[..<space])] = value
        }
        return result
    }

    @Test("/stats.json is the stats report; /metrics says the same numbers; 404 elsewhere; HEAD has no body")
    func routesAgree() async throws {
        let database = try Self.database()
        let server = try Self.server(database)
        defer { server.close() }
        let (status, head, body) = try await Self.get(server.boundAddress, "/stats.json")
        #expect(status == 200)
        #expect(head.contains("Content-Type: application/json"))
        let served = try JSONDecoder().decode(StatsReport.self, from: Data(body.utf8))
        let direct = try StatsReport.load(from: database, since: nil, account: nil)
        #expect(served.version == 1)
        #expect(served.json().split(separator: "\n").filter { !$0.contains("generated_at") }
                == direct.json().split(separator: "\n").filter { !$0.contains("generated_at") })
        let alice = try #require(served.accounts.first { $0.account == "alice@contoso.test" })
        #expect(alice.protocols["smtp"]?.messagesSent == 7)

        let (metricsStatus, metricsHead, metrics) = try await Self.get(server.boundAddress, "/metrics")
        #expect(metricsStatus == 200)
        #expect(metricsHead.contains("text/plain; version=0.0.4"))
        let samples = Self.samples(metrics)
        let a = "account=\"alice@contoso.test\""
        #expect(samples["mailgate_logins_ok_total{\(a),protocol=\"smtp\"}"] == 5, "\(metrics)")
        #expect(samples["mailgate_logins_failed_total{\(a),protocol=\"smtp\"}"] == 2)
        #expect(samples["mailgate_messages_sent_total{\(a),protocol=\"smtp\"}"] == 7)
        #expect(samples["mailgate_lock_refusals_total{\(a),protocol=\"imap\"}"] == 9)
        #expect(samples["mailgate_sessions_total{account=\"\",protocol=\"smtp\"}"] == 6)
        #expect(samples["mailgate_upstream_errors_total{\(a),protocol=\"smtp\",class=\"rejected_5xx\"}"] == 1)
        #expect(samples["mailgate_counter_total{\(a),protocol=\"pop3\",name=\"pop3.novel_counter\"}"] == 2)
        #expect(samples["mailgate_sessions_open{listener=\"smtp\"}"] == 3)
        #expect(samples["mailgate_accounts{token_state=\"needs_reconnect\"}"] == 1)
        #expect(samples["mailgate_accounts{token_state=\"not_connected\"}"] == 1)
        let p95 = try #require(samples["mailgate_latency_milliseconds{metric=\"smtp.reply_250\",quantile=\"0.95\"}"])
        #expect(p95 == served.latency.first { $0.metric == "smtp.reply_250" }?.p95Milliseconds)
        // Every figure of the report appears in /metrics with its value, and nothing else is claimed.
        for entry in served.accounts {
            for (proto, figures) in entry.protocols {
                for column in StatsFigures.columns where figures[keyPath: column.path] != 0 {
                    let key = "mailgate_\(column.key)_total{account=\"\(entry.account ?? "")\",protocol=\"\(proto)\"}"
                    #expect(samples[key] == Double(figures[keyPath: column.path]), "\(key)")
                }
            }
        }
        let counterSum = samples.filter { $0.key.hasPrefix("mailgate_") && $0.key.contains("_total{") }.values.reduce(0, +)
        #expect(counterSum == Double(served.totals.reduce(0) { $0 + $1.value }), "each stored count appears once")

        #expect(try await Self.get(server.boundAddress, "/nothing").0 == 404)
        let (headStatus, headHead, headBody) = try await Self.exchange(server.boundAddress, "HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(headStatus == 200 && headBody.isEmpty && headHead.contains("Content-Length: "))
        let filtered = try await Self.get(server.boundAddress, "/stats.json?since=1d&account=alice%40contoso.test")
        let recent = try JSONDecoder().decode(StatsReport.self, from: Data(filtered.2.utf8))
        #expect(recent.account == "alice@contoso.test")
        #expect(recent.total.messagesSent == 4, "the message two days ago is outside 1d")
        #expect(try await Self.get(server.boundAddress, "/stats.json?since=soon").0 == 400)
    }

    @Test("the page: accounts with their token state and the command to run, sessions now, the 7-day chart")
    func page() async throws {
        let database = try Self.database()
        let server = try Self.server(database)
        defer { server.close() }
        let (status, head, html) = try await Self.get(server.boundAddress, "/")
        #expect(status == 200)
        #expect(head.contains("text/html"))
        #expect(head.contains("Content-Security-Policy: default-src 'none'"))
        #expect(html.contains("data-account=\"bob@contoso.test\" data-state=\"needs_reconnect\""))
        #expect(html.contains("<code>mailgate account connect bob@contoso.test</code>"))
        #expect(html.contains("<code>mailgate account connect carol@contoso.test</code>"))
        #expect(html.contains("data-account=\"alice@contoso.test\" data-state=\"connected\""))
        #expect(html.contains("2 account(s) must sign in again"))
        #expect(html.contains("data-listener=\"smtp\">3</td>"))
        #expect(html.contains("<svg id=\"messages-chart\""))
        #expect(html.contains("<span id=\"messages-7d\">7</span>"))
        #expect(html.contains("data-count=\"4\"") && html.contains("data-count=\"3\""))
        #expect(!html.contains("http://") || !html.contains("src=\"http"), "no external assets")
        #expect(!html.contains("<script"))
    }

    @Test("with a token: 401 without it or with a wrong one; Bearer and Basic pass")
    func token() async throws {
        let server = try Self.server(try Self.database(), token: Self.token)
        defer { server.close() }
        let (denied, head, _) = try await Self.get(server.boundAddress, "/metrics")
        #expect(denied == 401)
        #expect(head.contains("WWW-Authenticate: Bearer"))
        #expect(try await Self.get(server.boundAddress, "/metrics", auth: "Bearer wrong").0 == 401)
        #expect(try await Self.get(server.boundAddress, "/metrics", auth: "Bearer \(Self.token)x").0 == 401)
        #expect(try await Self.get(server.boundAddress, "/metrics", auth: "Bearer \(Self.token)").0 == 200)
        let basic = Data("admin:\(Self.token)".utf8).base64EncodedString()
        #expect(try await Self.get(server.boundAddress, "/", auth: "Basic \(basic)").0 == 200)
        let wrongBasic = Data("admin:nope".utf8).base64EncodedString()
        #expect(try await Self.get(server.boundAddress, "/", auth: "Basic \(wrongBasic)").0 == 401)
    }

    @Test("bounded input: long line 431, too many headers 431, a body 413, POST 405, garbage 400; the server lives on")
    func hostileInput() async throws {
        let server = try Self.server(try Self.database())
        defer { server.close() }
        let address = server.boundAddress
        let long = "GET /" + String(repeating: "a", count: 10_000) + " HTTP/1.1\r\n\r\n"
        #expect(try await Self.exchange(address, long).0 == 431)
        let headers = (0..<70).map { "X-\($0): y\r\n" }.joined()
        #expect(try await Self.exchange(address, "GET / HTTP/1.1\r\n\(headers)\r\n").0 == 431)
        #expect(try await Self.exchange(address, "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").0 == 413)
        #expect(try await Self.exchange(address, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0 == 405)
        #expect(try await Self.exchange(address, "\u{1}\u{2} nonsense\r\n\r\n").0 == 400)
        #expect(try await Self.exchange(address, "GET / HTTP/1.1\r\nNoColon\r\n\r\n").0 == 400)
        #expect(
            try await Self.exchange(address, "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n").0 == 400)
        #expect(try await Self.get(address, "/stats.json").0 == 200)
    }
}
