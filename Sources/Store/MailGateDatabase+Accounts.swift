// Store: accounts and their sealed tokens.
public import Foundation
internal import GRDB

extension MailGateDatabase {
    /// Adds an account; refuses an address that already exists.
    public func addAccount(_ account: Account) throws(StoreError) {
        guard account.email.contains("@"), account.email.utf8.count <= 254 else {
            throw StoreError.invalidValue("account address \"\(account.email)\"")
        }
        try write("add account") { db in
            if try Account.exists(db, key: account.email) { throw StoreError.accountExists(email: account.email) }
            try account.insert(db)
        }
    }

    /// Replaces an account's local password hash.
    public func setPassword(email: String, hash: String) throws(StoreError) {
        let key = email.lowercased()
        try write("change a password") { db in
            try db.execute(sql: "UPDATE account SET passwordHash = ? WHERE email = ?", arguments: [hash, key])
            if db.changesCount == 0 { throw StoreError.accountNotFound(email: key) }
        }
    }

    /// Removes an account; its token and download state go with it (ON DELETE CASCADE). The journal stays.
    public func removeAccount(email: String) throws(StoreError) {
        let key = email.lowercased()
        try write("remove account") { db in
            guard try Account.deleteOne(db, key: key) else { throw StoreError.accountNotFound(email: key) }
        }
    }

    /// The account with this address (case-insensitive), or `nil`.
    public func account(email: String) throws(StoreError) -> Account? {
        try read("read an account") { db in try Account.fetchOne(db, key: email.lowercased()) }
    }

    /// All accounts, by address.
    public func accounts() throws(StoreError) -> [Account] {
        try read("list accounts") { db in try Account.order(Account.Columns.email).fetchAll(db) }
    }

    /// Stores (or replaces) an account's sealed token; clears any previous error.
    public func saveToken(
        email: String, sealed: [UInt8], accessExpiresAt: Date, state: TokenState = .connected,
        lastRefreshAt: Date? = Date()
    ) throws(StoreError) {
        let token = StoredToken(
            accountEmail: email, sealed: sealed, accessExpiresAt: accessExpiresAt, state: state,
            lastRefreshAt: lastRefreshAt, lastError: nil)
        try write("save a token") { db in
            guard try Account.exists(db, key: token.accountEmail) else {
                throw StoreError.accountNotFound(email: token.accountEmail)
            }
            try token.save(db)
        }
    }

    /// The account's token, or `nil` when it was never connected.
    public func token(email: String) throws(StoreError) -> StoredToken? {
        try read("read a token") { db in try StoredToken.fetchOne(db, key: email.lowercased()) }
    }

    /// Marks the token unusable (refresh refused, consent revoked) with a reason an administrator can read.
    /// `reason` must not contain secrets.
    public func markNeedsReconnect(email: String, reason: String) throws(StoreError) {
        let key = email.lowercased()
        try write("mark a token for reconnecting") { db in
            try db.execute(
                sql: "UPDATE token SET state = 'needsReconnect', lastError = ? WHERE accountEmail = ?",
                arguments: [String(reason.prefix(500)), key])
            if db.changesCount == 0 { throw StoreError.accountNotFound(email: key) }
        }
    }

    /// The download position for a mailbox, or `nil`.
    public func downloadState(email: String, mailbox: String) throws(StoreError) -> DownloadState? {
        try read("read download state") { db in
            try DownloadState.fetchOne(db, key: ["accountEmail": email.lowercased(), "mailbox": mailbox])
        }
    }

    /// Stores the download position for a mailbox.
    public func saveDownloadState(_ state: DownloadState) throws(StoreError) {
        try write("save download state") { db in try state.save(db) }
    }
}
