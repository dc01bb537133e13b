// Store: the `journalEntry` table: one row per message accepted for sending, hash-chained (DESIGN §6).
internal import Crypto
public import Foundation
public import GRDB

/// Where a journaled message stands.
public enum JournalStatus: String, Sendable, CaseIterable {
    /// Written before the message goes upstream; not yet chained.
    case pending
    /// The upstream accepted it (250 after DATA/BDAT).
    case sent
    /// The upstream refused it.
    case failed
    /// MailGate stopped (or lost the connection) before the upstream's answer: it may or may not have been sent.
    case unknown
}

/// Whether the copy in the Sent folder was made.
public enum SentCopyState: String, Sendable, CaseIterable {
    case pending
    case made
    /// Not needed: the server filed the message itself, or the client appended it.
    case skipped
    case failed
    /// `sent_copy = "never"` or `lock_after_send` off.
    case disabled
}

/// A journal entry: what was sent, by whom, its content hash, and its place in the hash chain.
///
/// **The chain.** `entryHash = SHA-256(canonical encoding of the entry)` where the encoding (see
/// `canonicalBytes(previousHash:)`) covers, with length prefixes: sequence, createdAt (UTC, ms), accountEmail,
/// listener, mailFrom, every rcptTo, messageID, size, sha256, previousHash, status, completedAt and upstreamReply.
/// `previousHash` is the `entryHash` of entry `sequence - 1`, or 64 zeros for entry 1.
///
/// **When hashes are set.** An entry is inserted *pending* with empty `previousHash` and `entryHash`: it is not yet
/// chained. When an entry completes (sent / failed / unknown), it and every later completed entry that directly
/// follows the chained prefix are chained in sequence order, in the same transaction. An entry's hash is therefore
/// computed exactly once, after its status, completedAt and upstreamReply are final, and never changes afterwards:
/// a checkpoint printed once stays valid forever. A pending entry holds back the chaining of the entries after it
/// until it completes (`markInterruptedJournalEntries()` turns entries left pending by a crash into `unknown`).
///
/// **Not hashed.** `sentCopyState` changes after completion (the Sent copy is made later) and is deliberately left
/// out of the hash.
public struct JournalEntry: Sendable, Equatable {
    /// 64 zeros: the `previousHash` of entry 1.
    public static let genesisHash = String(repeating: "0", count: 64)

    public var sequence: Int64
    public var status: JournalStatus
    public var createdAt: Date
    public var completedAt: Date?
    public var accountEmail: String
    /// Which listener accepted it (`smtp`, `smtps`, `relay`, …).
    public var listener: String
    public var mailFrom: String
    public var rcptTo: [String]
    public var messageID: String
    /// Bytes of the message as sent (dot-unstuffed).
    public var size: Int64
    /// SHA-256 of the exact message bytes, lowercase hex; also the archive file's name.
    public var sha256: String
    /// The upstream's final reply line(s) to the message.
    public var upstreamReply: String?
    public var sentCopyState: SentCopyState
    /// Hash of the previous entry; empty while this entry is not chained.
    public var previousHash: String
    /// This entry's hash; empty while it is not chained.
    public var entryHash: String

    public init(
        sequence: Int64, status: JournalStatus, createdAt: Date, completedAt: Date? = nil, accountEmail: String,
        listener: String, mailFrom: String, rcptTo: [String], messageID: String, size: Int64, sha256: String,
        upstreamReply: String? = nil, sentCopyState: SentCopyState = .pending, previousHash: String = "",
        entryHash: String = ""
    ) {
        self.sequence = sequence
        self.status = status
        self.createdAt = UTCTimestamp.rounded(createdAt)
        self.completedAt = completedAt.map(UTCTimestamp.rounded)
        self.accountEmail = accountEmail
        self.listener = listener
        self.mailFrom = mailFrom
        self.rcptTo = rcptTo
        self.messageID = messageID
        self.size = size
        self.sha256 = sha256
        self.upstreamReply = upstreamReply
        self.sentCopyState = sentCopyState
        self.previousHash = previousHash
        self.entryHash = entryHash
    }

    /// Whether the entry has its place in the hash chain.
    public var isChained: Bool { !entryHash.isEmpty }

    /// The entry's hash given the previous entry's hash, recomputed from the fields (never from a stored hash).
    public func computeHash(previousHash: String) -> String {
        SHA256.hex(canonicalBytes(previousHash: previousHash))
    }

    /// The unambiguous byte string the hash covers: a version tag, then each field as an 8-byte big-endian length
    /// followed by its UTF-8 bytes; an absent optional is the length 0xFFFFFFFFFFFFFFFF with no bytes, and the
    /// recipient list is its count followed by each recipient.
    public func canonicalBytes(previousHash: String) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ text: String?) {
            guard let text else {
                out += [UInt8](repeating: 0xFF, count: 8)
                return
            }
            let bytes = Array(text.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { out += $0 }
            out += bytes
        }
        field("mailgate-journal-v1")
        field(String(sequence))
        field(UTCTimestamp.format(createdAt))
        field(accountEmail)
        field(listener)
        field(mailFrom)
        field(String(rcptTo.count))
        for recipient in rcptTo { field(recipient) }
        field(messageID)
        field(String(size))
        field(sha256)
        field(previousHash)
        field(status.rawValue)
        field(completedAt.map(UTCTimestamp.format))
        field(upstreamReply)
        return out
    }

    public enum Columns {
        public static let sequence = Column("sequence")
        public static let status = Column("status")
        public static let createdAt = Column("createdAt")
        public static let completedAt = Column("completedAt")
        public static let accountEmail = Column("accountEmail")
        public static let listener = Column("listener")
        public static let mailFrom = Column("mailFrom")
        public static let rcptTo = Column("rcptTo")
        public static let messageID = Column("messageID")
        public static let size = Column("size")
        public static let sha256 = Column("sha256")
        public static let upstreamReply = Column("upstreamReply")
        public static let sentCopyState = Column("sentCopyState")
        public static let previousHash = Column("previousHash")
        public static let entryHash = Column("entryHash")
    }
}

extension JournalEntry: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "journalEntry"

    public init(row: Row) throws {
        sequence = row[Columns.sequence]
        let statusText: String = row[Columns.status]
        let copyText: String = row[Columns.sentCopyState]
        guard let status = JournalStatus(rawValue: statusText), let copy = SentCopyState(rawValue: copyText) else {
            throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "unknown journal status")
        }
        self.status = status
        sentCopyState = copy
        createdAt = try storedDate(row, Columns.createdAt)
        completedAt = try storedOptionalDate(row, Columns.completedAt)
        accountEmail = row[Columns.accountEmail]
        listener = row[Columns.listener]
        mailFrom = row[Columns.mailFrom]
        let rcptText: String = row[Columns.rcptTo]
        guard let recipients = try? JSONDecoder().decode([String].self, from: Data(rcptText.utf8)) else {
            throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "rcptTo is not a JSON array of strings")
        }
        rcptTo = recipients
        messageID = row[Columns.messageID]
        size = row[Columns.size]
        sha256 = row[Columns.sha256]
        upstreamReply = row[Columns.upstreamReply]
        previousHash = row[Columns.previousHash]
        entryHash = row[Columns.entryHash]
    }

    public func encode(to container: inout PersistenceContainer) throws {
        container[Columns.sequence] = sequence
        container[Columns.status] = status.rawValue
        container[Columns.createdAt] = UTCTimestamp.format(createdAt)
        container[Columns.completedAt] = completedAt.map(UTCTimestamp.format)
        container[Columns.accountEmail] = accountEmail
        container[Columns.listener] = listener
        container[Columns.mailFrom] = mailFrom
        let json = try JSONEncoder().encode(rcptTo)
        container[Columns.rcptTo] = String(decoding: json, as: UTF8.self)
        container[Columns.messageID] = messageID
        container[Columns.size] = size
        container[Columns.sha256] = sha256
        container[Columns.upstreamReply] = upstreamReply
        container[Columns.sentCopyState] = sentCopyState.rawValue
        container[Columns.previousHash] = previousHash
        container[Columns.entryHash] = entryHash
    }
}
