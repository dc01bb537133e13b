// Store: journal checkpoints: the append-only file `serve` writes, its parser, and the check of a chain against it.
public import Crypto
public import Foundation
public import MailCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One anchored head of the journal: "entry `sequence` had hash `entryHash` at `time`".
///
/// Kept outside the database (a log line, the checkpoint file, an RFC 3161 token), it makes a truncated or
/// rebuilt chain visible: the hash chain alone cannot tell a consistent rewrite from the original.
public struct JournalCheckpoint: Sendable, Equatable {
    public var sequence: Int64
    public var entryHash: String
    public var time: Date

    public init(sequence: Int64, entryHash: String, time: Date) {
        self.sequence = sequence
        self.entryHash = entryHash
        self.time = UTCTimestamp.rounded(time)
    }

    /// `SEQ:HASH`, the form `journal verify --checkpoint` takes.
    public var argument: String { "\(sequence):\(entryHash)" }

    /// The three fields as they appear in a line of the checkpoint file, without the check value.
    var fields: String { "\(sequence) \(entryHash) \(UTCTimestamp.format(time))" }

    /// The line of the checkpoint file, newline included.
    public var line: String { fields + " " + Self.check(fields) + "\n" }

    /// The log line `serve` writes for a log shipper to keep elsewhere.
    public var logLine: String { "journal checkpoint \(fields)" }

    /// First 16 hex digits of SHA-256 of the line's first three fields (`printf '%s' "SEQ HASH TIME" | sha256sum`):
    /// catches a damaged byte, not a forger (a forger recomputes it; the time-stamps and copies kept elsewhere are
    /// what catch a forger).
    static func check(_ fields: String) -> String { String(SHA256.hex(Array(fields.utf8)).prefix(16)) }

    /// Parses `SEQ:HASH` (a checkpoint kept by hand, e.g. from `journal checkpoint` with the space made a colon).
    public static func parseArgument(_ text: String) -> (sequence: Int64, entryHash: String)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let sequence = JournalCheckpointFile.parseSequence(Substring(parts[0])),
            JournalCheckpointFile.isHash(parts[1])
        else { return nil }
        return (sequence, String(parts[1]))
    }
}

/// A checkpoint file that cannot be read as written.
public struct CheckpointFileError: MailGateError, Equatable {
    /// 1-based line number (0: the file as a whole).
    public var line: Int
    public var problem: String

    public var description: String {
        line == 0 ? "the checkpoint file \(problem)" : "line \(line) of the checkpoint file \(problem)"
    }
}

/// The append-only checkpoint file in the state dir: `<state>/checkpoints/checkpoints.txt`.
///
/// Format (text, ASCII, one checkpoint per line, LF line ends):
///
///     mailgate journal checkpoints v1
///     SEQUENCE HASH TIME CHECK
///
/// SEQUENCE is the entry's sequence in decimal (no sign, no leading zeros), HASH its `entryHash` (64 lowercase hex
/// digits), TIME when the checkpoint was taken (`2026-12-03T09:07:53.123Z`, UTC, milliseconds), CHECK the first 16
/// hex digits of the SHA-256 of `SEQUENCE HASH TIME` (single spaces), fields separated by one space. Lines only
/// ever get appended (each write fsynced), so the sequences and the times never decrease down the file. The
/// RFC 3161 token of a checkpoint, when a TSA is configured, is `<state>/checkpoints/SEQUENCE.tsr` (DER).
public enum JournalCheckpointFile {
    /// The first line of every checkpoint file.
    public static let header = "mailgate journal checkpoints v1"
    /// Largest checkpoint file read (a checkpoint a minute for a century is far below this).
    public static let maximumBytes = 64 << 20

    /// Where the checkpoints and their tokens live.
    public static func directory(stateDirectory: String) -> String { stateDirectory + "/checkpoints" }
    /// The checkpoint file.
    public static func path(stateDirectory: String) -> String {
        directory(stateDirectory: stateDirectory) + "/checkpoints.txt"
    }
    /// The time-stamp token of the checkpoint of entry `sequence`.
    public static func tokenPath(directory: String, sequence: Int64) -> String { directory + "/\(sequence).tsr" }

    /// Parses a whole checkpoint file; any byte out of place is an error naming its line.
    public static func parse(_ bytes: [UInt8]) throws(CheckpointFileError) -> [JournalCheckpoint] {
        guard bytes.count <= maximumBytes else {
            throw CheckpointFileError(line: 0, problem: "is larger than \(maximumBytes) bytes")
        }
        guard !bytes.isEmpty else { throw CheckpointFileError(line: 0, problem: "is empty (it has no header line)") }
        guard bytes.last == 0x0A else {
            throw CheckpointFileError(
                line: bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count,
                problem: "does not end with a line end: the last write was cut off or the file was damaged")
        }
        let lines = bytes.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard let first = lines.first, Array(first) == Array(header.utf8) else {
            throw CheckpointFileError(line: 1, problem: "is not the header \"\(header)\"")
        }
        var checkpoints: [JournalCheckpoint] = []
        for (index, raw) in lines.dropFirst().enumerated() {
            let number = index + 2
            guard raw.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
                throw CheckpointFileError(line: number, problem: "holds a byte that is not printable ASCII")
            }
            let text = String(decoding: raw, as: UTF8.self)
            let parts = text.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 4 else {
                throw CheckpointFileError(line: number, problem: "does not have 4 fields separated by single spaces")
            }
            guard let sequence = parseSequence(parts[0]) else {
                throw CheckpointFileError(line: number, problem: "has no valid sequence number")
            }
            guard isHash(parts[1]) else {
                throw CheckpointFileError(line: number, problem: "has no valid hash (64 lowercase hex digits)")
            }
            guard let time = UTCTimestamp.parse(String(parts[2])), UTCTimestamp.format(time) == parts[2] else {
                throw CheckpointFileError(line: number, problem: "has no valid time")
            }
            let fields = "\(parts[0]) \(parts[1]) \(parts[2])"
            guard parts[3] == JournalCheckpoint.check(fields) else {
                throw CheckpointFileError(
                    line: number, problem: "does not match its check value: a byte of it was changed")
            }
            let checkpoint = JournalCheckpoint(sequence: sequence, entryHash: String(parts[1]), time: time)
            if let previous = checkpoints.last {
                guard checkpoint.sequence > previous.sequence, checkpoint.time >= previous.time else {
                    throw CheckpointFileError(
                        line: number,
                        problem: "goes back (entry \(checkpoint.sequence) at \(parts[2]) after entry "
                            + "\(previous.sequence) at \(UTCTimestamp.format(previous.time))): checkpoints are only "
                            + "appended, so lines were re-ordered or the file was edited")
                }
            }
            checkpoints.append(checkpoint)
        }
        return checkpoints
    }

    /// Reads and parses the file; a missing file is an error too (there is nothing to check against).
    public static func read(path: String) throws(CheckpointFileError) -> [JournalCheckpoint] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointFileError(line: 0, problem: "\(path) cannot be read")
        }
        return try parse([UInt8](data))
    }

    /// Appends one checkpoint (writing the header first into a new file), fsyncs the file and, when it was
    /// created, its directory. Refuses to write after a file whose last line is cut off or damaged.
    public static func append(_ checkpoint: JournalCheckpoint, stateDirectory: String) throws(StoreError) {
        let folder = directory(stateDirectory: stateDirectory)
        let file = path(stateDirectory: stateDirectory)
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw .stateDirectory(path: folder, reason: String(cString: strerror(errno)))
        }
        let existing = FileManager.default.contents(atPath: file).map { [UInt8]($0) }
        if let existing {
            do {
                let checkpoints = try parse(existing)
                if let last = checkpoints.last, checkpoint.sequence <= last.sequence {
                    throw StoreError.invalidValue(
                        "checkpoint of entry \(checkpoint.sequence) after one of entry \(last.sequence)")
                }
            } catch let error as CheckpointFileError {
                throw .invalidValue("the checkpoint file \(file) is damaged, so nothing is appended: \(error)")
            } catch let error as StoreError {
                throw error
            } catch {
                throw .invalidValue("\(error)")
            }
        }
        let text = (existing == nil ? header + "\n" : "") + checkpoint.line
        let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .stateDirectory(path: file, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw .stateDirectory(path: file, reason: String(cString: strerror(errno)))
            }
            offset += written
        }
        bytes.removeAll()
        guard fsync(fd) == 0 else { throw .stateDirectory(path: file, reason: String(cString: strerror(errno))) }
        if existing == nil { try syncDirectory(folder) }
    }

    /// Writes a time-stamp token beside the checkpoints (temporary name, fsync, rename, directory fsync).
    public static func storeToken(_ der: [UInt8], sequence: Int64, stateDirectory: String) throws(StoreError) {
        let folder = directory(stateDirectory: stateDirectory)
        let final = tokenPath(directory: folder, sequence: sequence)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .stateDirectory(path: temporary, reason: String(cString: strerror(errno))) }
        var offset = 0
        while offset < der.count {
            let written = der.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw .stateDirectory(path: temporary, reason: String(cString: strerror(errno)))
            }
            offset += written
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, rename(temporary, final) == 0 else {
            throw .stateDirectory(path: final, reason: String(cString: strerror(errno)))
        }
        try syncDirectory(folder)
    }

    static func syncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .stateDirectory(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .stateDirectory(path: path, reason: String(cString: strerror(errno))) }
    }

    static func parseSequence(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            text == "0" || text.first != "0"
        else { return nil }
        return Int64(text)
    }

    static func isHash(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { MailGateDatabase.isLowerHex($0) }
    }
}

/// Checks the journal's entries against checkpoints kept elsewhere.
public enum JournalCheckpointCheck {
    /// One sentence per checkpoint the chain no longer contains (empty: every checkpoint is in the chain).
    ///
    /// `entries` must be a chain `JournalVerifier.verify` accepted; a checkpoint is contained when the entry of its
    /// sequence exists, is chained and has its hash.
    public static func problems(
        entries: [JournalEntry], checkpoints: [(sequence: Int64, entryHash: String)]
    ) -> [String] {
        var bySequence: [Int64: JournalEntry] = [:]
        for entry in entries { bySequence[entry.sequence] = entry }
        var problems: [String] = []
        for checkpoint in checkpoints {
            guard let entry = bySequence[checkpoint.sequence] else {
                problems.append(
                    "checkpoint \(checkpoint.sequence):\(checkpoint.entryHash.prefix(16))…: the journal has no "
                        + "entry \(checkpoint.sequence) any more, so it was truncated")
                continue
            }
            guard entry.isChained else {
                problems.append(
                    "checkpoint \(checkpoint.sequence):\(checkpoint.entryHash.prefix(16))…: entry "
                        + "\(checkpoint.sequence) is not chained any more, so the journal was rewritten")
                continue
            }
            if entry.entryHash != checkpoint.entryHash {
                problems.append(
                    "checkpoint \(checkpoint.sequence):\(checkpoint.entryHash.prefix(16))…: entry "
                        + "\(checkpoint.sequence) now has hash \(entry.entryHash.prefix(16))…, so the chain up to it "
                        + "was rebuilt after the checkpoint was taken")
            }
        }
        return problems
    }

    /// Checks the RFC 3161 token stored beside each checkpoint against `caFile`: present, for the checkpoint's
    /// hash, signed by a certificate chaining to `caFile`, and with times that never go back as the sequence grows.
    /// Returns the verified tokens and one sentence per problem.
    public static func tokenProblems(
        checkpoints: [JournalCheckpoint], directory: String, caFile: String
    ) -> (verified: [(sequence: Int64, token: TimeStampToken)], problems: [String]) {
        var verified: [(sequence: Int64, token: TimeStampToken)] = []
        var problems: [String] = []
        for checkpoint in checkpoints.sorted(by: { $0.sequence < $1.sequence }) {
            let path = JournalCheckpointFile.tokenPath(directory: directory, sequence: checkpoint.sequence)
            guard let data = FileManager.default.contents(atPath: path) else {
                problems.append(
                    "checkpoint \(checkpoint.sequence): its time-stamp token \(path) is missing (the TSA was "
                        + "unreachable when it was taken, or the token was removed)")
                continue
            }
            guard let digest = TimeStamp.digest(hex: checkpoint.entryHash) else { continue }
            do {
                let token = try TimeStamp.verify(response: [UInt8](data), sha256: digest, caFile: caFile)
                if let previous = verified.last, token.genTime < previous.token.genTime {
                    problems.append(
                        "checkpoint \(checkpoint.sequence): its token's time \(token.genTime) is before the time "
                            + "\(previous.token.genTime) of checkpoint \(previous.sequence)'s token, so the tokens "
                            + "were swapped or the checkpoints re-ordered")
                }
                verified.append((checkpoint.sequence, token))
            } catch {
                problems.append("checkpoint \(checkpoint.sequence): \(path): \(error)")
            }
        }
        return (verified, problems)
    }
}
