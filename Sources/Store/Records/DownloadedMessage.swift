// Store: the `downloadedMessage` table: every message the scheduled download stored locally, and its fate.
public import Foundation
public import GRDB

/// One message downloaded from a mailbox into the local store.
///
/// A row is written only after the message's file is durable (fsynced, renamed, directory fsynced), so a row
/// always means "this message is safely here"; `(account, mailbox, uidValidity, uid)` is unique, which is what
/// keeps a second run from fetching it again.
public struct DownloadedMessage: Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "downloadedMessage"

    /// Row id; nil before insertion.
    public var id: Int64?
    public var accountEmail: String
    public var mailbox: String
    public var uidValidity: Int64
    public var uid: Int64
    /// The Message-ID header without angle brackets' surroundings trimmed (as found), "" when there is none.
    public var messageID: String
    /// Exact octets of the stored file (what POP3 RETR sends before dot-stuffing).
    public var size: Int64
    /// SHA-256 of the stored file, lower-case hex.
    public var sha256: String
    /// Name of the file inside the account's Maildir `cur/` directory.
    public var fileName: String
    public var downloadedAt: Date
    /// When MailGate removed it from the server (delete_after_loading / delete_after_days), if it did.
    public var deletedUpstreamAt: Date?
    /// When a POP3 client deleted it from the local store, if it did.
    public var deletedLocallyAt: Date?

    public enum Columns {
        public static let id = Column("id")
        public static let accountEmail = Column("accountEmail")
        public static let mailbox = Column("mailbox")
        public static let uidValidity = Column("uidValidity")
        public static let uid = Column("uid")
        public static let messageID = Column("messageID")
        public static let size = Column("size")
        public static let sha256 = Column("sha256")
        public static let fileName = Column("fileName")
        public static let downloadedAt = Column("downloadedAt")
        public static let deletedUpstreamAt = Column("deletedUpstreamAt")
        public static let deletedLocallyAt = Column("deletedLocallyAt")
    }

    public init(
        id: Int64? = nil, accountEmail: String, mailbox: String, uidValidity: Int64, uid: Int64, messageID: String,
        size: Int64, sha256: String, fileName: String, downloadedAt: Date, deletedUpstreamAt: Date? = nil,
        deletedLocallyAt: Date? = nil
    ) {
        self.id = id
        self.accountEmail = accountEmail.lowercased()
        self.mailbox = mailbox
        self.uidValidity = uidValidity
        self.uid = uid
        self.messageID = messageID
        self.size = size
        self.sha256 = sha256
        self.fileName = fileName
        self.downloadedAt = UTCTimestamp.rounded(downloadedAt)
        self.deletedUpstreamAt = deletedUpstreamAt.map(UTCTimestamp.rounded)
        self.deletedLocallyAt = deletedLocallyAt.map(UTCTimestamp.rounded)
    }

    public init(row: Row) throws {
        id = row[Columns.id]
        accountEmail = row[Columns.accountEmail]
        mailbox = row[Columns.mailbox]
        uidValidity = row[Columns.uidValidity]
        uid = row[Columns.uid]
        messageID = row[Columns.messageID]
        size = row[Columns.size]
        sha256 = row[Columns.sha256]
        fileName = row[Columns.fileName]
        downloadedAt = try storedDate(row, Columns.downloadedAt)
        let upstream: String? = row[Columns.deletedUpstreamAt]
        deletedUpstreamAt = upstream.flatMap(UTCTimestamp.parse)
        let locally: String? = row[Columns.deletedLocallyAt]
        deletedLocallyAt = locally.flatMap(UTCTimestamp.parse)
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.id] = id
        container[Columns.accountEmail] = accountEmail
        container[Columns.mailbox] = mailbox
        container[Columns.uidValidity] = uidValidity
        container[Columns.uid] = uid
        container[Columns.messageID] = messageID
        container[Columns.size] = size
        container[Columns.sha256] = sha256
        container[Columns.fileName] = fileName
        container[Columns.downloadedAt] = UTCTimestamp.format(downloadedAt)
        container[Columns.deletedUpstreamAt] = deletedUpstreamAt.map(UTCTimestamp.format)
        container[Columns.deletedLocallyAt] = deletedLocallyAt.map(UTCTimestamp.format)
    }
}
