// Gateway: the Store behind the SMTP gateway's seams (password hashes, counters).
import Dispatch
import Store

/// Local password hashes from the `account` table.
struct StorePasswordLookup: PasswordHashLookup {
    let database: MailGateDatabase

    func passwordHash(forEmail email: String) throws -> String? {
        try database.account(email: email)?.passwordHash
    }
}

/// Session counters as Store counter increments (hour buckets), summed in memory by a `CounterBatch` that
/// writes them every few seconds (not a SQLite transaction per event).
struct StoreCounters: GatewayCounters, LatencyRecording {
    let batch: CounterBatch
    /// Where latencies go (nil: not kept).
    var latency: LatencyBook? = nil

    func increment(_ name: String, account: String?, listener: String) {
        batch.add(name, account: account, listener: listener)
    }

    func record(_ metric: LatencyMetric, microseconds: UInt64, account: String?) {
        latency?.record(metric, microseconds: microseconds, account: account)
    }
}
