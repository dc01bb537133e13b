// Store: the `counter` table: statistics per UTC hour, account and listener.
public import Foundation
public import GRDB

/// One statistic to add to: `name` (e.g. `smtp.sent`, `imap.login.failed`), optionally per account and listener.
public struct CounterIncrement: Sendable, Equatable {
    public var name: String
    public var accountEmail: String?
    public var listener: String?
    public var amount: Int64
    /// When it happened; decides the hour bucket.
    public var at: Date

    public init(_ name: String, account: String? = nil, listener: String? = nil, amount: Int64 = 1, at: Date = Date()) {
        self.name = name
        self.accountEmail = account?.lowercased()
        self.listener = listener
        self.amount = amount
        self.at = at
    }
}

/// A statistic summed over the hours asked for.
public struct CounterTotal: Sendable, Equatable {
    public var name: String
    public var accountEmail: String?
    public var listener: String?
    public var value: Int64

    public init(name: String, accountEmail: String?, listener: String?, value: Int64) {
        self.name = name
        self.accountEmail = accountEmail
        self.listener = listener
        self.value = value
    }
}

/// A row of `counter`: one hour's value of one statistic. `''` stands for "no account" / "no listener" so that
/// the primary key (which cannot hold NULLs usefully) makes increments upserts.
public struct Counter: Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "counter"

    public var bucket: String
    public var accountEmail: String
    public var listener: String
    public var name: String
    public var value: Int64

    public enum Columns {
        public static let bucket = Column("bucket")
        public static let accountEmail = Column("accountEmail")
        public static let listener = Column("listener")
        public static let name = Column("name")
        public static let value = Column("value")
    }

    public init(bucket: String, accountEmail: String, listener: String, name: String, value: Int64) {
        self.bucket = bucket
        self.accountEmail = accountEmail
        self.listener = listener
        self.name = name
        self.value = value
    }

    public init(row: Row) throws {
        bucket = row[Columns.bucket]
        accountEmail = row[Columns.accountEmail]
        listener = row[Columns.listener]
        name = row[Columns.name]
        value = row[Columns.value]
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.bucket] = bucket
        container[Columns.accountEmail] = accountEmail
        container[Columns.listener] = listener
        container[Columns.name] = name
        container[Columns.value] = value
    }
}
