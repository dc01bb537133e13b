// Gateway/Download: the local store: one Maildir per account under <state>/download, written durably.
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One account's Maildir (`tmp/`, `new/`, `cur/`, all 0700). A message is written to `tmp/`, fsynced, renamed
/// into `new/` and the directory fsynced before anyone records it; so a row in the database always means the file
/// is on disk, and a crash leaves at most a file in `tmp/` (removed by `prepare`) or an unrecorded file in `new/`
/// (replaced when the same message is fetched again: the name is derived from UIDVALIDITY and UID).
struct MaildirStore: Sendable {
    /// `<state>/download/<account>`.
    let root: String

    init(stateDirectory: String, account: String) {
        root = stateDirectory + "/download/" + Self.directoryName(for: account)
    }

    var newDirectory: String { root + "/new" }
    var temporaryDirectory: String { root + "/tmp" }

    /// A file-system-safe directory name for an address: letters, digits and `@._+-` kept, the rest `_`.
    static func directoryName(for account: String) -> String {
        let safe = account.lowercased().unicodeScalars.map { scalar -> Character in
            let allowed = (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") || "@._+-".unicodeScalars
                .contains(scalar)
            return allowed ? Character(scalar) : "_"
        }
        let name = String(safe)
        return name.isEmpty || name.hasPrefix(".") ? "_" + name : name
    }

    /// The Maildir file name of a message: unique per mailbox and stable for the same (UIDVALIDITY, UID).
    static func fileName(uidValidity: UInt32, uid: UInt32) -> String {
        "\(uidValidity).\(uid).mailgate"
    }

    /// Creates the directories (0700) and empties `tmp/` of half-written files; files in `new/` that
    /// `recorded` does not name (a crash between rename and record) are removed too.
    func prepare(recorded: Set<String>) throws(DownloadError) {
        do {
            for directory in [root, root + "/tmp", root + "/new", root + "/cur"] {
                try DurableFile.makeDirectory(directory)
                var info = stat()
                guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                    throw DownloadError.storeWrite("\(directory) is not a directory")
                }
            }
        } catch let error as DownloadError {
            throw error
        } catch {
            throw .storeWrite(String(describing: error))
        }
        for name in DurableFile.list(temporaryDirectory) { DurableFile.remove(temporaryDirectory + "/" + name) }
        for name in DurableFile.list(newDirectory) where !recorded.contains(name) {
            DurableFile.remove(newDirectory + "/" + name)
        }
    }

    /// Begins writing `fileName` in `tmp/`.
    func begin(fileName: String, byteLimit: Int) throws(DownloadError) -> MaildirWriter {
        try MaildirWriter(store: self, fileName: fileName, byteLimit: byteLimit)
    }

    /// Removes a delivered message and makes the removal durable.
    func remove(fileName: String) throws(DownloadError) {
        let path = newDirectory + "/" + fileName
        guard unlink(path) == 0 || errno == ENOENT else {
            throw .storeWrite("cannot remove \(path): \(DurableFile.lastError())")
        }
        do { try DurableFile.syncDirectory(newDirectory) } catch { throw .storeWrite(error.description) }
    }

    /// The path of a delivered message.
    func path(of fileName: String) -> String { newDirectory + "/" + fileName }
}

/// One message being written: bytes appended as they arrive, hashed on the way; `finish` makes it durable.
final class MaildirWriter: DownloadIMAPSession.BodySink, @unchecked Sendable {
    // @unchecked: used by one runner task only.
    let fileName: String
    private let store: MaildirStore
    private let temporaryPath: String
    private var descriptor: Int32
    private let hasher = SHA256Hasher()
    private let byteLimit: Int
    private(set) var count = 0
    private var announced: Int?

    fileprivate init(store: MaildirStore, fileName: String, byteLimit: Int) throws(DownloadError) {
        self.store = store
        self.fileName = fileName
        self.byteLimit = byteLimit
        temporaryPath = store.temporaryDirectory + "/" + fileName
        DurableFile.remove(temporaryPath)
        do { descriptor = try DurableFile.createExclusive(temporaryPath) } catch { throw .storeWrite(error.description) }
    }

    deinit { abandon() }

    func begin(count: Int) throws {
        guard count <= byteLimit else { throw DownloadError.storeFull(limit: byteLimit) }
        announced = count
    }

    func bytes(_ chunk: [UInt8]) throws {
        guard descriptor >= 0 else { throw DownloadError.storeWrite("the file was already closed") }
        guard count + chunk.count <= byteLimit else { throw DownloadError.storeFull(limit: byteLimit) }
        do { try DurableFile.writeAll(descriptor, chunk, path: temporaryPath) } catch {
            throw DownloadError.storeWrite(error.description)
        }
        hasher.update(chunk)
        count += chunk.count
    }

    func end() throws {}

    /// fsync, rename into `new/`, fsync `new/`; returns the SHA-256 (hex) of what was written.
    func finish() throws(DownloadError) -> String {
        guard descriptor >= 0 else { throw .storeWrite("the file was already closed") }
        if let announced, announced != count {
            throw .protocolViolation("the body announced \(announced) bytes but \(count) arrived")
        }
        do {
            try DurableFile.sync(descriptor, path: temporaryPath)
            close(descriptor)
            descriptor = -1
            try DurableFile.rename(temporaryPath, to: store.path(of: fileName))
            try DurableFile.syncDirectory(store.newDirectory)
        } catch {
            abandon()
            throw .storeWrite(error.description)
        }
        return SHA256.hexString(hasher.finalize())
    }

    /// Drops the half-written file.
    func abandon() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        DurableFile.remove(temporaryPath)
    }
}
