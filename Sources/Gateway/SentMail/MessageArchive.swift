// Gateway/SentMail: the lock-after-send archive: each sent message's exact bytes, named by their SHA-256.

import Store

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps the retained original of every journaled message at `<archive>/<aa>/<sha256>` (mode 0600), where `aa`
/// is the hash's first two hex digits.
///
/// Exchange re-renders MIME, so the server's Sent copy is never byte-equal to what was sent: this file is the
/// proof. It is written to a temporary name, fsynced, renamed and the directory fsynced before the journal row
/// that names it commits.
struct MessageArchive: Sendable {
    let directory: String

    /// `<archive>/<aa>/<sha256>`, the layout `journal verify` reads.
    func path(sha256: String) -> String {
        ArchiveLayout.path(sha256: sha256, directory: directory)
    }

    /// Stores `message` under `sha256` unless an archived file of that name and `size` exists already (same hash,
    /// same bytes). Returns the file's path.
    @discardableResult
    func store(_ message: SpooledMessage, sha256: String, size: Int) throws(SentMailError) -> String {
        guard sha256.utf8.count == 64, sha256.utf8.allSatisfy({ Self.isLowerHex($0) }) else {
            throw .invalidUse("archive name \(sha256.prefix(80)) is not a SHA-256 in hex")
        }
        let final = path(sha256: sha256)
        let folder = DurableFile.directoryName(of: final)
        if let existing = Self.fileSize(final), existing == size { return final }
        let createdFolder = !DurableFile.exists(folder)
        try DurableFile.makeDirectory(folder)
        let temporary = final + ".tmp-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let descriptor = try DurableFile.createExclusive(temporary)
        var open = true
        do {
            try message.forEachChunk { (chunk) throws(SentMailError) in
                try DurableFile.writeAll(descriptor, chunk, path: temporary)
            }
            try DurableFile.sync(descriptor, path: temporary)
            close(descriptor)
            open = false
            try DurableFile.rename(temporary, to: final)
            try DurableFile.syncDirectory(folder)
            if createdFolder { try DurableFile.syncDirectory(directory) }
        } catch {
            if open { close(descriptor) }
            DurableFile.remove(temporary)
            throw error
        }
        return final
    }

    /// The size of the file at `path`, or nil when there is none.
    static func fileSize(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
    }
}
