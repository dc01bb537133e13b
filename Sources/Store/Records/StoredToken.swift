// Store: the `token` table: one sealed OAuth token set per account.
public import Foundation
public import GRDB

/// Whether an account's token can be used or an administrator must run `account connect` again.
public enum TokenState: String, Sendable, CaseIterable {
    case connected
    case needsReconnect
}

/// An account's OAuth tokens, sealed by the `Vault` (AES-256-GCM, the account email as associated data): the
/// database alone reveals no token.
public struct StoredToken: Sendable, Equatable {
    public var accountEmail: String
    /// `Vault.seal` of the JSON `{access_token, refresh_token, scope}`.
    public var sealed: [UInt8]
    public var accessExpiresAt: Date
    public var state: TokenState
    public var lastRefreshAt: Date?
    /// Why the token needs reconnecting (a sentence without secrets).
    public var lastError: String?

    public init(
        accountEmail: String, sealed: [UInt8], accessExpiresAt: Date, state: TokenState = .connected,
        lastRefreshAt: Date? = nil, lastError: String? = nil
    ) {
        self.accountEmail = accountEmail.lowercased()
        self.sealed = sealed
        self.accessExpiresAt = UTCTimestamp.rounded(accessExpiresAt)
        self.state = state
        self.lastRefreshAt = lastRefreshAt.map(UTCTimestamp.rounded)
        self.lastError = lastError
    }

    public enum Columns {
        public static let accountEmail = Column("accountEmail")
        public static let sealed = Column("sealed")
        public static let accessExpiresAt = Column("accessExpiresAt")
        public static let state = Column("state")
        public static let lastRefreshAt = Column("lastRefreshAt")
        public static let lastError = Column("lastError")
    }
}

extension StoredToken: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "token"

    public init(row: Row) throws {
        accountEmail = row[Columns.accountEmail]
        let blob: Data = row[Columns.sealed]
        sealed = [UInt8](blob)
        accessExpiresAt = try storedDate(row, Columns.accessExpiresAt)
        let stateText: String = row[Columns.state]
        guard let state = TokenState(rawValue: stateText) else {
            throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "unknown token state")
        }
        self.state = state
        lastRefreshAt = try storedOptionalDate(row, Columns.lastRefreshAt)
        lastError = row[Columns.lastError]
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.accountEmail] = accountEmail
        container[Columns.sealed] = Data(sealed)
        container[Columns.accessExpiresAt] = UTCTimestamp.format(accessExpiresAt)
        container[Columns.state] = state.rawValue
        container[Columns.lastRefreshAt] = lastRefreshAt.map(UTCTimestamp.format)
        container[Columns.lastError] = lastError
    }
}
