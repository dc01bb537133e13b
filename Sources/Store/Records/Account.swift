// Store: the `account` table: who may log in locally, and which server their mail goes to.
public import Foundation
public import GRDB

/// A local account: the M365 address, the server it uses, and the local password's slow hash.
public struct Account: Sendable, Equatable {
    /// Lowercased email address; the primary key.
    public var email: String
    /// The `[server.NAME]` this account's mail goes through.
    public var serverName: String
    /// A shared mailbox reached with `delegateEmail`'s sign-in.
    public var isShared: Bool
    /// Whose token opens a shared mailbox.
    public var delegateEmail: String?
    /// The local password as a PHC string (scrypt), from `Crypto.PasswordHash`.
    public var passwordHash: String
    public var createdAt: Date

    public init(
        email: String, serverName: String, isShared: Bool = false, delegateEmail: String? = nil, passwordHash: String,
        createdAt: Date = Date()
    ) {
        self.email = email.lowercased()
        self.serverName = serverName
        self.isShared = isShared
        self.delegateEmail = delegateEmail?.lowercased()
        self.passwordHash = passwordHash
        self.createdAt = UTCTimestamp.rounded(createdAt)
    }

    /// The table's columns, for queries.
    public enum Columns {
        public static let email = Column("email")
        public static let serverName = Column("serverName")
        public static let isShared = Column("isShared")
        public static let delegateEmail = Column("delegateEmail")
        public static let passwordHash = Column("passwordHash")
        public static let createdAt = Column("createdAt")
    }
}

extension Account: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "account"

    public init(row: Row) throws {
        email = row[Columns.email]
        serverName = row[Columns.serverName]
        isShared = row[Columns.isShared]
        delegateEmail = row[Columns.delegateEmail]
        passwordHash = row[Columns.passwordHash]
        createdAt = try storedDate(row, Columns.createdAt)
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.email] = email
        container[Columns.serverName] = serverName
        container[Columns.isShared] = isShared
        container[Columns.delegateEmail] = delegateEmail
        container[Columns.passwordHash] = passwordHash
        container[Columns.createdAt] = UTCTimestamp.format(createdAt)
    }
}

/// Reads a timestamp column written by `UTCTimestamp.format`.
func storedDate(_ row: Row, _ column: Column) throws -> Date {
    let text: String = row[column]
    guard let date = UTCTimestamp.parse(text) else {
        throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "column \(column.name) holds no timestamp")
    }
    return date
}

/// Reads an optional timestamp column written by `UTCTimestamp.format`.
func storedOptionalDate(_ row: Row, _ column: Column) throws -> Date? {
    let text: String? = row[column]
    guard let text else { return nil }
    guard let date = UTCTimestamp.parse(text) else {
        throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "column \(column.name) holds no timestamp")
    }
    return date
}
