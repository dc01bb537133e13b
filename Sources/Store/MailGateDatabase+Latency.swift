// Store: latency histograms per UTC hour, metric and account (migration "v2-admin-latency").
public import Foundation
internal import GRDB

/// One hour's histogram of one latency metric, serialized by the caller (the Store does not read it).
public struct LatencyBucket: Sendable, Equatable {
    /// Hour bucket, `2026-11-29T05`.
    public var bucket: String
    /// `smtp.upstream_login`, `smtp.reply_250`, `imap.added`, …
    public var metric: String
    /// The account, or nil for figures that belong to none.
    public var accountEmail: String?
    /// The serialized histogram.
    public var histogram: Data

    public init(bucket: String, metric: String, accountEmail: String?, histogram: Data) {
        self.bucket = bucket
        self.metric = metric
        self.accountEmail = accountEmail
        self.histogram = histogram
    }
}

extension MailGateDatabase {
    /// The `latency` table: one serialized histogram per (hour, metric, account).
    static func migrateAdminLatency(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE latency (
                    bucket TEXT NOT NULL,
                    metric TEXT NOT NULL CHECK (metric <> ''),
                    accountEmail TEXT NOT NULL DEFAULT '',
                    histogram BLOB NOT NULL,
                    PRIMARY KEY (bucket, metric, accountEmail)
                ) WITHOUT ROWID;
                """)
    }

    /// Merges each histogram into its hour's stored one, in one transaction: `merge(stored, new)` returns the
    /// combined serialization (the Store does not know the format).
    public func mergeLatency(_ buckets: [LatencyBucket], merge: (Data, Data) -> Data) throws(StoreError) {
        guard !buckets.isEmpty else { return }
        try write("record latency") { db in
            for item in buckets {
                let account = item.accountEmail?.lowercased() ?? ""
                let stored = try Data.fetchOne(
                    db, sql: "SELECT histogram FROM latency WHERE bucket = ? AND metric = ? AND accountEmail = ?",
                    arguments: [item.bucket, item.metric, account])
                let value = stored.map { merge($0, item.histogram) } ?? item.histogram
                try db.execute(
                    sql: """
                        INSERT INTO latency (bucket, metric, accountEmail, histogram) VALUES (?, ?, ?, ?)
                        ON CONFLICT (bucket, metric, accountEmail) DO UPDATE SET histogram = excluded.histogram
                        """, arguments: [item.bucket, item.metric, account, value])
            }
        }
    }

    /// The stored histograms from the hour containing `since` (all when nil), optionally of one account, ordered
    /// by metric, account and hour.
    public func latencyBuckets(since: Date?, account: String? = nil) throws(StoreError) -> [LatencyBucket] {
        try read("read latency") { db in
            var sql = "SELECT bucket, metric, accountEmail, histogram FROM latency WHERE bucket >= ?"
            var arguments: StatementArguments = [since.map(UTCTimestamp.hourBucket) ?? ""]
            if let account {
                sql += " AND accountEmail = ?"
                arguments += [account.lowercased()]
            }
            sql += " ORDER BY metric, accountEmail, bucket"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let email: String = row["accountEmail"]
                return LatencyBucket(
                    bucket: row["bucket"], metric: row["metric"], accountEmail: email.isEmpty ? nil : email,
                    histogram: row["histogram"])
            }
        }
    }
}

extension MailGateDatabase {
    /// Sum of counter `name` per hour bucket from the hour containing `since` (for the status page's chart).
    public func counterSeries(name: String, since: Date) throws(StoreError) -> [String: Int64] {
        try read("read statistics per hour") { db in
            var series: [String: Int64] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT bucket, SUM(value) AS total FROM counter WHERE name = ? AND bucket >= ? GROUP BY bucket",
                arguments: [name, UTCTimestamp.hourBucket(since)])
            for row in rows { series[row["bucket"]] = row["total"] }
            return series
        }
    }
}
