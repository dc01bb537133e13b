// Store: re-walks the journal's hash chain from the entries' fields and re-hashes the archived messages.
internal import Crypto
internal import Foundation
internal import Glibc

/// The outcome of `JournalVerifier.verify`.
public struct JournalVerification: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// Every chained entry and every archived message checked out.
        case ok(count: Int)
        /// The first entry (by sequence) at which the chain or its archive fails, and why.
        case broken(sequence: Int64, reason: String)
    }

    public var outcome: Outcome
    /// Entries whose fate is unknown (MailGate stopped before the upstream answered): check them by hand.
    public var unknownFate: [Int64]
    /// Entries still pending (not yet chained): sends in progress, or left by a crash before
    /// `markInterruptedJournalEntries()` ran.
    public var pending: [Int64]

    public init(outcome: Outcome, unknownFate: [Int64] = [], pending: [Int64] = []) {
        self.outcome = outcome
        self.unknownFate = unknownFate
        self.pending = pending
    }

    public var isOK: Bool {
        if case .ok = outcome { return true }
        return false
    }
}

/// Checks the sent journal without trusting any stored hash (DESIGN §6, `journal verify`).
///
/// For entries in sequence order it checks: sequences are 1, 2, 3, … without gaps; each chained entry's
/// `previousHash` equals the recomputed hash of the entry before it (64 zeros for entry 1) and its `entryHash`
/// equals the hash recomputed from its own fields; the chained entries form a prefix and the entry after that
/// prefix is pending (nothing else stops chaining); entries after it carry no hash. For every `sent` entry the
/// archive file `<archive>/<sha256[0..<2]>/<sha256>` must exist, have `size` bytes and hash to `sha256`.
///
/// What it cannot see: entries deleted from the end of the journal. Compare `journal checkpoint` output kept
/// elsewhere for that.
public enum JournalVerifier {
    /// Bytes read from an archived file at a time.
    public static let readChunk = 1 << 16

    /// Seconds a row may stay pending while its message is simply on its way (the upstream's verdict on a large
    /// message can take minutes); older pending rows are reported as stuck.
    public static let pendingInProgressSeconds: Double = 600

    /// Why the pending rows among `entries` are pending, one sentence per sequence (for `journal verify`).
    ///
    /// A pending row is either a send still waiting for the server's verdict or one whose completion failed:
    /// `serve` retries a failed completion with a back-off, and a restart marks what is left `unknown`. The first
    /// pending row also holds back the chaining of every later row, which is said with the count.
    /// - Parameter now: seconds since 1970 (nil: the current time).
    public static func pendingReasons(entries: [JournalEntry], now: Double? = nil) -> [Int64: String] {
        let now = Date(timeIntervalSince1970: now ?? Date().timeIntervalSince1970)
        let ordered = entries.sorted { $0.sequence < $1.sequence }
        var reasons: [Int64: String] = [:]
        var first = true
        for (index, entry) in ordered.enumerated() where entry.status == .pending {
            let age = max(0, now.timeIntervalSince(entry.createdAt))
            let since = "since \(UTCTimestamp.format(entry.createdAt)) (\(Int(age)) s)"
            var reason =
                age < pendingInProgressSeconds
                ? "pending \(since): a send in progress, waiting for the server's verdict"
                : "pending \(since): its completion failed (serve retries it; its log names the error) or serve "
                    + "stopped before the verdict (the next start marks it unknown)"
            if first {
                let held = ordered[(index + 1)...].filter { $0.status != .pending }.count
                if held > 0 { reason += "; it holds back the chaining of \(held) later entries" }
                first = false
            }
            reasons[entry.sequence] = reason
        }
        return reasons
    }

    public static func verify(entries: [JournalEntry], archiveDirectory: String?) -> JournalVerification {
        let ordered = entries.sorted { $0.sequence < $1.sequence }
        let unknown = ordered.filter { $0.status == .unknown }.map(\.sequence)
        let pending = ordered.filter { $0.status == .pending }.map(\.sequence)
        func broken(_ sequence: Int64, _ reason: String) -> JournalVerification {
            JournalVerification(
                outcome: .broken(sequence: sequence, reason: reason), unknownFate: unknown, pending: pending)
        }
        var previousHash = JournalEntry.genesisHash
        var chainEnded = false
        var expected: Int64 = 1
        for entry in ordered {
            guard entry.sequence == expected else {
                if entry.sequence > expected {
                    return broken(
                        expected, "entry \(expected) is missing (the next entry present is \(entry.sequence))")
                }
                return broken(entry.sequence, "entry \(entry.sequence) appears twice")
            }
            expected += 1
            if chainEnded || entry.status == .pending {
                if !chainEnded && entry.status == .pending { chainEnded = true }
                guard entry.entryHash.isEmpty && entry.previousHash.isEmpty else {
                    return broken(
                        entry.sequence,
                        "entry \(entry.sequence) carries a hash although an earlier or this "
                            + "entry is still pending, so it cannot have been chained")
                }
                continue
            }
            guard entry.isChained else {
                return broken(
                    entry.sequence, "entry \(entry.sequence) is \(entry.status.rawValue) but was never chained")
            }
            guard entry.previousHash == previousHash else {
                return broken(
                    entry.sequence,
                    "entry \(entry.sequence)'s previous hash does not match entry "
                        + "\(entry.sequence - 1) as it is now: an earlier entry was altered, removed or inserted")
            }
            let recomputed = entry.computeHash(previousHash: previousHash)
            guard entry.entryHash == recomputed else {
                return broken(entry.sequence, "entry \(entry.sequence)'s fields do not match its hash: it was altered")
            }
            previousHash = recomputed
            if entry.status == .sent, let archiveDirectory {
                if let problem = checkArchive(entry, directory: archiveDirectory) {
                    return broken(entry.sequence, problem)
                }
            }
        }
        return JournalVerification(outcome: .ok(count: ordered.count), unknownFate: unknown, pending: pending)
    }

    /// Where the archived copy of a message with this SHA-256 lives.
    public static func archivePath(sha256: String, directory: String) -> String {
        ArchiveLayout.path(sha256: sha256, directory: directory)
    }

    /// `nil` when the archived file matches the entry, else the problem.
    static func checkArchive(_ entry: JournalEntry, directory: String) -> String? {
        let path = archivePath(sha256: entry.sha256, directory: directory)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return "the archived message of entry \(entry.sequence) (\(path)) cannot be read: "
                + String(cString: strerror(errno))
        }
        defer { close(fd) }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: readChunk)
        var total: Int64 = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return "reading the archived message of entry \(entry.sequence) failed: "
                    + String(cString: strerror(errno))
            }
            if count == 0 { break }
            total += Int64(count)
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
        }
        let digest = SHA256.hexString(hasher.finalize())
        guard total == entry.size, digest == entry.sha256 else {
            return "the archived message of entry \(entry.sequence) (\(path)) was altered: it has \(total) bytes and "
                + "SHA-256 \(digest), the journal says \(entry.size) bytes and \(entry.sha256)"
        }
        return nil
    }
}
