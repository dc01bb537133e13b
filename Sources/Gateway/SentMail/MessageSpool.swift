// Gateway/SentMail: the bounded spool that keeps a relayed message's exact bytes for the sent copy and archive.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A finished spool: where the exact bytes of one message are.
enum SpooledMessage: Sendable, Equatable {
    /// Small messages stay in memory (up to `Limits.spoolMemory`).
    case memory([UInt8])
    /// Larger ones were spilled to this file in the spool directory.
    case file(path: String)

    /// Calls `body` with the bytes in order, in chunks (file reads are `DurableFile.chunkCount` at a time).
    func forEachChunk(_ body: ([UInt8]) throws(SentMailError) -> Void) throws(SentMailError) {
        switch self {
        case .memory(let bytes):
            if !bytes.isEmpty { try body(bytes) }
        case .file(let path):
            try DurableFile.readChunks(path, body)
        }
    }
}

/// Reads a spooled message chunk by chunk (at most `DurableFile.chunkCount` bytes at a time), so a caller that
/// awaits between chunks never holds the whole message.
final class SpooledMessageReader {
    private var memory: [UInt8]?
    private var memoryOffset = 0
    private var descriptor: Int32 = -1
    private let path: String

    init(_ message: SpooledMessage) throws(SentMailError) {
        switch message {
        case .memory(let bytes):
            memory = bytes
            path = "memory"
        case .file(let path):
            self.path = path
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw .fileFailed(path: path, operation: "open", reason: DurableFile.lastError())
            }
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// The next chunk, or nil at the end.
    func next() throws(SentMailError) -> [UInt8]? {
        if let memory {
            guard memoryOffset < memory.count else { return nil }
            let end = min(memory.count, memoryOffset + DurableFile.chunkCount)
            defer { memoryOffset = end }
            return Array(memory[memoryOffset..<end])
        }
        var buffer = [UInt8](repeating: 0, count: DurableFile.chunkCount)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileFailed(path: path, operation: "read", reason: DurableFile.lastError())
            }
            if count == 0 { return nil }
            buffer.removeSubrange(count...)
            return buffer
        }
    }
}

/// Collects a message's bytes as they are relayed: in memory up to `memoryLimit`, then in a file
/// `<spool>/<id>.eml.part` (mode 0600), so a 20 MiB attachment costs at most `memoryLimit` bytes of memory.
///
/// Used from one queue at a time (the session's while receiving); not thread-safe.
final class MessageSpool {
    let directory: String
    let id: String
    let memoryLimit: Int
    private var memory: [UInt8] = []
    private var descriptor: Int32 = -1
    /// The most bytes ever held in memory (for the bounded-memory tests).
    private(set) var memoryHighWater = 0
    private(set) var count = 0

    init(directory: String, id: String, memoryLimit: Int) {
        self.directory = directory
        self.id = id
        self.memoryLimit = max(0, memoryLimit)
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// The spill file while the message is being received.
    var partPath: String { directory + "/" + id + ".eml.part" }

    /// Whether the bytes went to a file.
    var hasSpilled: Bool { descriptor >= 0 }

    /// Appends bytes, spilling to the file when memory would pass its bound.
    func write(_ bytes: [UInt8]) throws(SentMailError) {
        guard !bytes.isEmpty else { return }
        count += bytes.count
        if descriptor < 0 && memory.count + bytes.count <= memoryLimit {
            memory.append(contentsOf: bytes)
            memoryHighWater = max(memoryHighWater, memory.count)
            return
        }
        if descriptor < 0 {
            try DurableFile.makeDirectory(directory)
            descriptor = try DurableFile.createExclusive(partPath)
            let held = memory
            memory = []
            try DurableFile.writeAll(descriptor, held, path: partPath)
        }
        try DurableFile.writeAll(descriptor, bytes, path: partPath)
    }

    /// Ends writing: returns where the bytes are. The file is closed (not yet fsynced: the archive is the durable
    /// copy, and the job file makes the spool file durable when the copy is queued).
    func seal() -> SpooledMessage {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
            return .file(path: partPath)
        }
        let bytes = memory
        memory = []
        return .memory(bytes)
    }

    /// Drops whatever was spooled (message refused or abandoned).
    func discard() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        memory = []
        DurableFile.remove(partPath)
    }
}
