// Gateway/SentMail: the lock-after-send archive: each sent message's exact bytes, named by their SHA-256.

import Crypto
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

    /// One message of a group commit: what `storeBatch` archives.
    struct BatchItem {
        let message: SpooledMessage
        let sha256: String
        let size: Int
    }

    /// Archives several messages with as few journal commits of the file system as it can: each new file is
    /// created under its final name (no temporary name and rename, which costs the file system a second commit),
    /// written, then all are fsynced, then each folder once. A file is visible under its final name before it is
    /// durable, but nothing refers to it until its journal row commits, and that happens only after these
    /// fsyncs; a torn file left by a crash is found by its hash, not its size, and replaced the slow way. Returns
    /// one result per item, in order.
    func storeBatch(_ items: [BatchItem]) -> [Result<Void, SentMailError>] {
        var results = [Result<Void, SentMailError>](repeating: .success(()), count: items.count)
        struct Open {
            let descriptor: Int32
            let path: String
            let folder: String
            var items: [Int]
        }
        var open: [String: Open] = [:]
        var order: [String] = []
        var createdFolder = false
        var folders: [String: [Int]] = [:]
        for (index, item) in items.enumerated() {
            guard item.sha256.utf8.count == 64, item.sha256.utf8.allSatisfy({ Self.isLowerHex($0) }) else {
                results[index] = .failure(.invalidUse("archive name \(item.sha256.prefix(80)) is not a SHA-256 in hex"))
                continue
            }
            if open[item.sha256] != nil {
                open[item.sha256]!.items.append(index)  // the same bytes twice in one batch: one file
                continue
            }
            let final = path(sha256: item.sha256)
            let folder = DurableFile.directoryName(of: final)
            do throws(SentMailError) {
                if DurableFile.exists(final) {
                    // Archived before (the same message again), or torn by a crash before its row committed.
                    if Self.fileSize(final) == item.size, try Self.hashOfFile(final) == item.sha256 {
                        // Possibly left unsynced by a crashed process: cheap to fsync again when it is clean.
                        try DurableFile.syncFile(final)
                        folders[folder, default: []].append(index)
                        continue
                    }
                    DurableFile.remove(final)
                    try store(item.message, sha256: item.sha256, size: item.size)
                    continue
                }
                if !DurableFile.exists(folder) {
                    try DurableFile.makeDirectory(folder)
                    createdFolder = true
                }
                let descriptor = try DurableFile.createExclusive(final)
                do throws(SentMailError) {
                    try item.message.forEachChunk { (chunk) throws(SentMailError) in
                        try DurableFile.writeAll(descriptor, chunk, path: final)
                    }
                } catch {
                    close(descriptor)
                    DurableFile.remove(final)
                    throw error
                }
                open[item.sha256] = Open(descriptor: descriptor, path: final, folder: folder, items: [index])
                order.append(item.sha256)
            } catch {
                results[index] = .failure(error)
            }
        }
        for key in order {
            guard let file = open[key] else { continue }
            do throws(SentMailError) {
                try DurableFile.sync(file.descriptor, path: file.path)
                close(file.descriptor)
                folders[file.folder, default: []] += file.items
            } catch {
                close(file.descriptor)
                DurableFile.remove(file.path)
                for index in file.items { results[index] = .failure(error) }
            }
        }
        for (folder, indices) in folders {
            do throws(SentMailError) {
                try DurableFile.syncDirectory(folder)
            } catch {
                for index in indices { results[index] = .failure(error) }
            }
        }
        if createdFolder {
            do throws(SentMailError) {
                try DurableFile.syncDirectory(directory)
            } catch {
                for indices in folders.values { for index in indices { results[index] = .failure(error) } }
            }
        }
        return results
    }

    /// Creates the 256 folders `00`…`ff` that are missing (then fsyncs the archive directory once), so that the
    /// first message into each folder does not pay a second directory fsync on its way to the 250.
    func makeFolders() throws(SentMailError) {
        let digits = Array("0123456789abcdef")
        var created = false
        for high in digits {
            for low in digits {
                let folder = directory + "/" + String([high, low])
                if DurableFile.exists(folder) { continue }
                try DurableFile.makeDirectory(folder)
                created = true
            }
        }
        if created { try DurableFile.syncDirectory(directory) }
    }

    /// SHA-256 of the file at `path`, lowercase hex.
    static func hashOfFile(_ path: String) throws(SentMailError) -> String {
        let hasher = SHA256Hasher()
        try DurableFile.readChunks(path) { chunk in hasher.update(chunk) }
        return SHA256.hexString(hasher.finalize())
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
