// Gateway/Download: the local store as a POP3 maildrop (served when forbid_manual_refresh is on).
public import Config
public import Dispatch
public import Store
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Serves POP3 sessions of imap-download accounts from the local store while `forbid_manual_refresh` is on: a
/// poll then needs no upstream connection. Without it (or for other servers) it returns nil and the POP3 front
/// reads the server's INBOX over IMAP.
public struct DownloadMaildropProvider: LocalMaildropProvider {
    /// `[download] forbid_manual_refresh` of the start (a reload logs a change of it as restart-only).
    let forbidManualRefresh: Bool
    /// The `[server]` sections in force, read per login (a reload may add an imap-download server).
    let servers: @Sendable () -> [String: ServerSettings]
    let database: MailGateDatabase
    let stateDirectory: String

    public init(configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String) {
        forbidManualRefresh = configuration.download.forbidManualRefresh
        let servers = configuration.servers
        self.servers = { servers }
        self.database = database
        self.stateDirectory = stateDirectory
    }

    /// For `serve`: the servers come from the live directory, so a SIGHUP's `[server]` changes apply at the next login.
    init(
        live: LiveDirectory, configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String
    ) {
        forbidManualRefresh = configuration.download.forbidManualRefresh
        servers = { live.configuration.servers }
        self.database = database
        self.stateDirectory = stateDirectory
    }

    public func localMaildrop(for accountEmail: String, queue: DispatchQueue) -> (any POP3Maildrop)? {
        guard forbidManualRefresh,
            let account = try? database.account(email: accountEmail),
            servers()[account.serverName]?.incoming == .imapDownload
        else { return nil }
        return LocalMaildrop(
            account: account.email, database: database,
            store: MaildirStore(stateDirectory: stateDirectory, account: account.email), queue: queue)
    }
}

/// One POP3 session's view of an account's local store. Called on the session's queue; file and database work
/// runs on a utility queue and every callback comes back on the session's queue.
///
/// UIDL is the row id (stable across sessions, reloads and UIDVALIDITY changes); sizes are the files' exact
/// octets; RETR and TOP read the file in 64 KiB chunks, the next one only after `resume`. `commit(deleting:)`
/// removes the files and records the local deletion; it never talks to the server (retention on the server is
/// the download runner's `delete_after_loading` / `delete_after_days`).
final class LocalMaildrop: POP3Maildrop, @unchecked Sendable {
    // @unchecked: `messages`, `holdsLock` and `closed` are touched only on `queue` (the session's).
    private let account: String
    private let database: MailGateDatabase
    private let store: MaildirStore
    private let queue: DispatchQueue
    private let io = DispatchQueue(label: "mailgate.local-maildrop", qos: .utility)
    private var messages: [DownloadedMessage] = []
    private var holdsLock = false
    private var closed = false

    /// Stores (account directories) with an open maildrop in this process (RFC 1939 §8: one session at a time).
    private static let inUse = Mutex<Set<String>>([])
    /// Bytes read from a file at a time.
    static let chunkCount = 65_536

    init(account: String, database: MailGateDatabase, store: MaildirStore, queue: DispatchQueue) {
        self.account = account.lowercased()
        self.database = database
        self.store = store
        self.queue = queue
    }

    deinit {
        if holdsLock { _ = Self.inUse.withLock { [root = store.root] in $0.remove(root) } }
    }

    func open(_ done: @escaping @Sendable (Result<[MaildropMessage], MaildropError>) -> Void) {
        guard !closed else { return done(.failure(.permanent("the session is over"))) }
        let account = account
        let root = store.root
        let acquired = Self.inUse.withLock { $0.insert(root).inserted }
        guard acquired else {
            return done(.failure(.inUse("another POP3 session is using this maildrop; try again later")))
        }
        holdsLock = true
        let database = database
        let store = store
        io.async { [self] in
            let result: Result<[DownloadedMessage], MaildropError>
            do {
                let rows = try database.locallyPresentMessages(account: account)
                // A row whose file is missing or of another size is not offered (it cannot be sent exactly).
                result = .success(
                    rows.filter { row in
                        var info = stat()
                        return stat(store.path(of: row.fileName), &info) == 0 && Int64(info.st_size) == row.size
                    })
            } catch {
                result = .failure(.temporary("the local store cannot be read now"))
            }
            queue.async { [self] in
                switch result {
                case .success(let rows):
                    messages = rows
                    done(.success(rows.map { MaildropMessage(uidl: String($0.id ?? 0), size: Int($0.size)) }))
                case .failure(let error):
                    done(.failure(error))
                }
            }
        }
    }

    func retrieve(
        _ index: Int, bodyLines: Int?,
        chunk: @escaping @Sendable (_ bytes: [UInt8], _ resume: @escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable (Result<Void, MaildropError>) -> Void
    ) {
        guard messages.indices.contains(index) else { return done(.failure(.permanent("no such message"))) }
        let path = store.path(of: messages[index].fileName)
        let reader = ChunkReader(path: path, limiter: bodyLines.map { TopLimiter(bodyLines: $0) })
        let io = io
        let queue = queue
        @Sendable func step() {
            io.async {
                let next = reader.next()
                queue.async {
                    switch next {
                    case .failure(let error): done(.failure(error))
                    case .success(nil): done(.success(()))
                    case .success(let bytes?): chunk(bytes, step)
                    }
                }
            }
        }
        step()
    }

    func commit(deleting indices: [Int], _ done: @escaping @Sendable (Result<Void, MaildropError>) -> Void) {
        let doomed = indices.filter { messages.indices.contains($0) }.map { messages[$0] }
        let database = database
        let store = store
        let queue = queue
        io.async {
            let result: Result<Void, MaildropError>
            do {
                try database.markDeletedLocally(doomed.compactMap(\.id), at: Date())
                for message in doomed { try store.remove(fileName: message.fileName) }
                result = .success(())
            } catch {
                result = .failure(.temporary("the local store could not record the deletions"))
            }
            queue.async { done(result) }
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        if holdsLock {
            holdsLock = false
            let root = store.root
            _ = Self.inUse.withLock { $0.remove(root) }
        }
    }
}

/// Reads a file chunk by chunk (one `next` at a time, on the I/O queue), cut short for TOP.
final class ChunkReader: @unchecked Sendable {
    // @unchecked: `next` is only called from one serial queue, one call at a time.
    private let path: String
    private var descriptor: Int32 = -1
    private var limiter: TopLimiter?
    private var finished = false

    init(path: String, limiter: TopLimiter?) {
        self.path = path
        self.limiter = limiter
    }

    deinit { if descriptor >= 0 { Glibc.close(descriptor) } }

    /// The next bytes, nil at the end.
    func next() -> Result<[UInt8]?, MaildropError> {
        if finished { return .success(nil) }
        if descriptor < 0 {
            descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return .failure(.temporary("the message file cannot be opened")) }
        }
        var buffer = [UInt8](repeating: 0, count: LocalMaildrop.chunkCount)
        var count = 0
        repeat {
            count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
        } while count < 0 && errno == EINTR
        guard count >= 0 else { return .failure(.temporary("the message file cannot be read")) }
        guard count > 0 else {
            finish()
            return .success(nil)
        }
        var bytes = Array(buffer[..<count])
        if limiter != nil, let cut = limiter!.consume(bytes) {
            bytes = Array(bytes[..<cut])
            finish()
            if bytes.isEmpty { return .success(nil) }
        }
        return .success(bytes)
    }

    private func finish() {
        finished = true
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }
}

/// Where TOP stops: the header, the blank line after it, then `bodyLines` lines (RFC 1939 §7).
struct TopLimiter: Sendable {
    let bodyLines: Int
    private var inHeader = true
    private var lineHasContent = false
    private var linesSent = 0

    init(bodyLines: Int) { self.bodyLines = max(0, bodyLines) }

    /// Feeds `bytes`; returns how many of them to send when the limit falls inside them (nil: all, go on).
    mutating func consume(_ bytes: [UInt8]) -> Int? {
        for (offset, byte) in bytes.enumerated() {
            if inHeader {
                if byte == UInt8(ascii: "\n") {
                    if !lineHasContent {
                        inHeader = false
                        if bodyLines == 0 { return offset + 1 }
                    }
                    lineHasContent = false
                } else if byte != UInt8(ascii: "\r") {
                    lineHasContent = true
                }
            } else if byte == UInt8(ascii: "\n") {
                linesSent += 1
                if linesSent >= bodyLines { return offset + 1 }
            }
        }
        return nil
    }
}
