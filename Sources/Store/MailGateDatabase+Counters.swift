// Store: statistics as per-hour counters.
public import Foundation
internal import GRDB

extension MailGateDatabase {
    /// Adds each increment to its hour's counter (an upsert), all in one transaction.
    public func increment(_ counters: [CounterIncrement]) throws(StoreError) {
        guard !counters.isEmpty else { return }
        try write("count statistics") { db in try Self.apply(counters, in: db) }
    }

    static func apply(_ counters: [CounterIncrement], in db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO counter (bucket, accountEmail, listener, name, value) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (bucket, accountEmail, listener, name) DO UPDATE SET value = value + excluded.value
                """)
        for counter in counters {
            try statement.execute(arguments: [
                UTCTimestamp.hourBucket(counter.at), counter.accountEmail ?? "", counter.listener ?? "", counter.name,
                counter.amount,
            ])
        }
    }

    /// Totals per (name, account, listener) over the hours from the one containing `since` to now, optionally
    /// for one account only; ordered by name, account, listener.
    public func counters(since: Date, account: String? = nil) throws(StoreError) -> [CounterTotal] {
        let bucket = UTCTimestamp.hourBucket(since)
        return try read("read statistics") { db in
            var sql = """
                SELECT name, accountEmail, listener, SUM(value) AS total FROM counter WHERE bucket >= ?
                """
            var arguments: StatementArguments = [bucket]
            if let account {
                sql += " AND accountEmail = ?"
                arguments += [account.lowercased()]
            }
            sql += " GROUP BY name, accountEmail, listener ORDER BY name, accountEmail, listener"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let email: String = row["accountEmail"]
                let listener: String = row["listener"]
                return CounterTotal(
                    name: row["name"], accountEmail: email.isEmpty ? nil : email,
                    listener: listener.isEmpty ? nil : listener, value: row["total"])
            }
        }
    }
}
