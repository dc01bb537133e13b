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

/// Session counters as Store counter increments (hour buckets), written off the session queue.
struct StoreCounters: GatewayCounters {
    let database: MailGateDatabase

    func increment(_ name: String, account: String?, listener: String) {
        // A lost counter must not fail a session; the Store logs nothing secret, so the error is dropped here.
        try? database.increment([CounterIncrement(name, account: account, listener: listener)])
    }
}
