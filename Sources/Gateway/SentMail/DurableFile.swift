// Gateway/SentMail: small POSIX file helpers for the spool and archive: 0600 files, fsync, atomic rename.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// POSIX file operations with explicit durability, used off the session queues.
///
/// Foundation's file APIs do not expose fsync of a directory, which is what makes a rename survive a power loss;
/// the journal promises that an archived message is on disk before its row commits.
enum DurableFile {
    /// Bytes read or copied at a time.
    static let chunkCount = 65_536

    /// `errno` as a sentence fragment.
    static func lastError() -> String {
        String(cString: strerror(errno))
    }

    /// Creates `path` and its missing parents with `mode` (0700 by default).
    static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(SentMailError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw .fileFailed(path: current, operation: "create the directory", reason: lastError())
            }
        }
    }

    /// Opens a new file for writing with mode 0600; fails if it exists.
    static func createExclusive(_ path: String) throws(SentMailError) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .fileFailed(path: path, operation: "create", reason: lastError()) }
        return descriptor
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(SentMailError) {
        var failure: SentMailError?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = .fileFailed(path: path, operation: "write", reason: lastError())
                    return
                }
                offset += written
            }
        }
        if let failure { throw failure }
    }

    /// fsync(2) on an open file.
    static func sync(_ descriptor: Int32, path: String) throws(SentMailError) {
        guard fsync(descriptor) == 0 else { throw .fileFailed(path: path, operation: "fsync", reason: lastError()) }
    }

    /// fsync(2) on a closed file, by path.
    static func syncFile(_ path: String) throws(SentMailError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .fileFailed(path: path, operation: "open", reason: lastError()) }
        defer { close(descriptor) }
        try sync(descriptor, path: path)
    }

    /// fsync(2) on a directory, so that a rename or creation inside it is durable.
    static func syncDirectory(_ path: String) throws(SentMailError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw .fileFailed(path: path, operation: "open the directory", reason: lastError())
        }
        defer { close(descriptor) }
        try sync(descriptor, path: path)
    }

    /// Renames `from` to `to` (atomic on one file system).
    static func rename(_ from: String, to: String) throws(SentMailError) {
        #if canImport(Glibc)
            let result = Glibc.rename(from, to)
        #else
            let result = Darwin.rename(from, to)
        #endif
        guard result == 0 else {
            throw .fileFailed(path: to, operation: "rename \(from) to", reason: lastError())
        }
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Removes `path`; a missing file is not an error.
    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Calls `body` with consecutive chunks of the file at `path` (at most `chunkCount` bytes each).
    static func readChunks(
        _ path: String, _ body: ([UInt8]) throws(SentMailError) -> Void
    ) throws(SentMailError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .fileFailed(path: path, operation: "open", reason: lastError()) }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: chunkCount)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileFailed(path: path, operation: "read", reason: lastError())
            }
            if count == 0 { return }
            try body(Array(buffer[..<count]))
        }
    }

    /// Names in a directory (without `.` and `..`), or [] when it cannot be read.
    static func list(_ directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Writes `bytes` to `path` durably and atomically: a temporary file in the same directory, fsync, rename,
    /// fsync of the directory. The file gets mode 0600.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(SentMailError) {
        let temporary = path + ".tmp"
        remove(temporary)
        let descriptor = try createExclusive(temporary)
        do {
            try writeAll(descriptor, bytes, path: temporary)
            try sync(descriptor, path: temporary)
        } catch {
            close(descriptor)
            remove(temporary)
            throw error
        }
        close(descriptor)
        try rename(temporary, to: path)
        try syncDirectory(directoryName(of: path))
    }

    /// The directory part of `path` (`.` when there is none).
    static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
