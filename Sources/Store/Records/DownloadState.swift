// Store: the `downloadState` table: how far scheduled downloads got per account and mailbox (sketch).
public import Foundation
public import GRDB

/// The last UID downloaded from a mailbox, valid while the mailbox's UIDVALIDITY stays the same.
public struct DownloadState: Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "downloadState"

    public var accountEmail: String
    public var mailbox: String
    public var uidValidity: Int64
    public var lastUID: Int64
    public var updatedAt: Date

    public enum Columns {
        public static let accountEmail = Column("accountEmail")
        public static let mailbox = Column("mailbox")
        public static let uidValidity = Column("uidValidity")
        public static let lastUID = Column("lastUID")
        public static let updatedAt = Column("updatedAt")
    }

    public init(accountEmail: String, mailbox: String, uidValidity: Int64, lastUID: Int64, updatedAt: Date = Date()) {
        self.accountEmail = accountEmail.lowercased()
        self.mailbox = mailbox
        self.uidValidity = uidValidity
        self.lastUID = lastUID
        self.updatedAt = UTCTimestamp.rounded(updatedAt)
    }

    public init(row: Row) throws {
        accountEmail = row[Columns.accountEmail]
        mailbox = row[Columns.mailbox]
        uidValidity = row[Columns.uidValidity]
        lastUID = row[Columns.lastUID]
        updatedAt = try storedDate(row, Columns.updatedAt)
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.accountEmail] = accountEmail
        container[Columns.mailbox] = mailbox
        container[Columns.uidValidity] = uidValidity
        container[Columns.lastUID] = lastUID
        container[Columns.updatedAt] = UTCTimestamp.format(updatedAt)
    }
}
