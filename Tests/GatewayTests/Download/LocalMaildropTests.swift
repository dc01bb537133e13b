// GatewayTests/Download: the local store as a POP3 maildrop, driven directly (no network).
import Config
import Dispatch
import Foundation
import Store
import Testing

@testable import Gateway

@Suite("Local maildrop")
struct LocalMaildropTests {
    let directory: String
    let database: MailGateDatabase
    let account = "alice@contoso.test"

    init() throws {
        directory = try DownloadTesting.temporaryDirectory()
        database = try MailGateDatabase(stateDirectory: directory + "/state")
        try database.addAccount(Account(email: account, serverName: "standin", passwordHash: "$unused"))
    }

    /// Stores `messages` the way the runner does (writer → finish → record) and returns the store.
    func fill(_ messages: [[UInt8]], chunk: Int = 7) throws -> MaildirStore {
        let store = MaildirStore(stateDirectory: directory + "/state", account: account)
        try store.prepare(recorded: [])
        for (index, bytes) in messages.enumerated() {
            let uid = UInt32(index + 1)
            let name = MaildirStore.fileName(uidValidity: 77, uid: uid)
            let writer = try store.begin(fileName: name, byteLimit: 1 << 30)
            try writer.begin(count: bytes.count)
            var offset = 0
            while offset < bytes.count {
                try writer.bytes(Array(bytes[offset..<min(bytes.count, offset + chunk)]))
                offset += chunk
            }
            let hash = try writer.finish()
            try database.recordDownload(
                DownloadedMessage(
                    accountEmail: account, mailbox: "INBOX", uidValidity: 77, uid: Int64(uid), messageID: "<\(uid)@x>",
                    size: Int64(bytes.count), sha256: hash, fileName: name, downloadedAt: Date()),
                state: DownloadState(accountEmail: account, mailbox: "INBOX", uidValidity: 77, lastUID: Int64(uid)))
        }
        return store
    }

    func maildrop(_ store: MaildirStore, queue: DispatchQueue) -> LocalMaildrop {
        LocalMaildrop(account: account, database: database, store: store, queue: queue)
    }

    static let first = Array("Subject: one\r\nX-A: b\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n".utf8)
    static let second = Array("Subject: two\r\n\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 200_000) + [13, 10]
    static let third = Array("\r\nbody without header\r\nsecond\r\n".utf8)

    @Test("open lists every stored message with its exact size and a stable UIDL")
    func openListsSizes() async throws {
        let store = try fill([Self.first, Self.second, Self.third])
        let queue = DispatchQueue(label: "t")
        let drop = maildrop(store, queue: queue)
        let list = try await open(drop, queue).get()
        #expect(list.map(\.size) == [Self.first.count, Self.second.count, Self.third.count])
        #expect(Set(list.map(\.uidl)).count == 3)
        drop.close()
        let again = maildrop(store, queue: queue)
        #expect(try await open(again, queue).get().map(\.uidl) == list.map(\.uidl))
        again.close()
    }

    @Test("RETR streams the exact bytes in bounded chunks, one chunk per resume")
    func retrieveWhole() async throws {
        let store = try fill([Self.first, Self.second])
        let queue = DispatchQueue(label: "t")
        let drop = maildrop(store, queue: queue)
        _ = try await open(drop, queue).get()
        let (bytes, chunks) = try await retrieve(drop, queue, 1, nil)
        #expect(bytes == Self.second)
        #expect(chunks.allSatisfy { $0 <= LocalMaildrop.chunkCount })
        #expect(chunks.count >= 4)
        let (small, _) = try await retrieve(drop, queue, 0, nil)
        #expect(small == Self.first)
        drop.close()
    }

    @Test("TOP sends the header, the blank line and n body lines", arguments: [0, 1, 2, 3, 50])
    func top(lines: Int) async throws {
        let store = try fill([Self.first, Self.third])
        let queue = DispatchQueue(label: "t")
        let drop = maildrop(store, queue: queue)
        _ = try await open(drop, queue).get()
        let header = Array("Subject: one\r\nX-A: b\r\n\r\n".utf8)
        let bodyLines = ["line 1\r\n", ".line 2\r\n", "line 3\r\n"].map { Array($0.utf8) }
        let expected = header + bodyLines.prefix(lines).flatMap { $0 }
        #expect(try await retrieve(drop, queue, 0, lines).bytes == expected)
        let emptyHeader = try await retrieve(drop, queue, 1, lines).bytes
        let thirdLines = ["body without header\r\n", "second\r\n"].map { Array($0.utf8) }
        #expect(emptyHeader == [13, 10] + thirdLines.prefix(lines).flatMap { $0 })
        drop.close()
    }

    @Test("TOP is cut at the same place wherever the chunks split the file")
    func topLimiterSplits() {
        let message = Self.first
        for split in 0...message.count {
            var limiter = TopLimiter(bodyLines: 1)
            let head = Array(message[..<split])
            let tail = Array(message[split...])
            var sent: [UInt8] = []
            if let cut = limiter.consume(head) {
                sent = Array(head[..<cut])
            } else {
                sent = head
                if let cut = limiter.consume(tail) { sent += tail[..<cut] } else { sent += tail }
            }
            #expect(sent == Array("Subject: one\r\nX-A: b\r\n\r\nline 1\r\n".utf8), "split at \(split)")
        }
    }

    @Test("commit removes the files and records the deletion; the next session sees the rest")
    func commitDeletes() async throws {
        let store = try fill([Self.first, Self.second, Self.third])
        let queue = DispatchQueue(label: "t")
        let drop = maildrop(store, queue: queue)
        let list = try await open(drop, queue).get()
        try await commit(drop, queue, [0, 2]).get()
        drop.close()
        #expect(DurableFile.list(store.newDirectory) == [MaildirStore.fileName(uidValidity: 77, uid: 2)])
        let rows = try database.downloadedMessages(account: account, mailbox: "INBOX")
        #expect(rows.filter { $0.deletedLocallyAt != nil }.map(\.uid) == [1, 3])
        let next = maildrop(store, queue: queue)
        let remaining = try await open(next, queue).get()
        #expect(remaining == [list[1]])
        next.close()
    }

    @Test("a closed session deletes nothing, and a second open session is refused with IN-USE")
    func inUseAndClose() async throws {
        let store = try fill([Self.first])
        let queue = DispatchQueue(label: "t")
        let one = maildrop(store, queue: queue)
        _ = try await open(one, queue).get()
        let two = maildrop(store, queue: queue)
        let refused = await open(two, queue)
        guard case .failure(.inUse) = refused else {
            Issue.record("a second session was not refused: \(refused)")
            return
        }
        one.close()
        one.close()
        let three = maildrop(store, queue: queue)
        #expect(try await open(three, queue).get().count == 1)
        three.close()
        #expect(DurableFile.list(store.newDirectory).count == 1)
    }

    @Test("a message whose file went missing is not offered; an index past the list is an error")
    func missingFile() async throws {
        let store = try fill([Self.first, Self.second])
        DurableFile.remove(store.path(of: MaildirStore.fileName(uidValidity: 77, uid: 1)))
        let queue = DispatchQueue(label: "t")
        let drop = maildrop(store, queue: queue)
        #expect(try await open(drop, queue).get().map(\.size) == [Self.second.count])
        let result = await withCheckedContinuation { continuation in
            queue.async {
                drop.retrieve(5, bodyLines: nil, chunk: { _, resume in resume() }) { continuation.resume(returning: $0) }
            }
        }
        guard case .failure(.permanent) = result else {
            Issue.record("an index past the list was not refused: \(result)")
            return
        }
        drop.close()
    }

    @Test("the provider serves the local store only for imap-download servers with forbid_manual_refresh")
    func provider() throws {
        func configuration(incoming: IncomingMode, forbid: Bool) -> MailGateConfiguration {
            MailGateConfiguration(
                sourceFile: "/x", stateDirectory: directory + "/state", listen: ListenSettings(),
                oauth: [:],
                servers: [
                    "standin": ServerSettings(
                        name: "standin", oauth: "o", smtp: HostPortSpec(host: "127.0.0.1", port: 1), incoming: incoming)
                ], download: DownloadSettings(forbidManualRefresh: forbid))
        }
        let queue = DispatchQueue(label: "t")
        for (incoming, forbid, served) in [
            (IncomingMode.imapDownload, true, true), (.imapDownload, false, false), (.imap, true, false),
        ] {
            let provider = DownloadMaildropProvider(
                configuration: configuration(incoming: incoming, forbid: forbid), database: database,
                stateDirectory: directory + "/state")
            let drop = provider.localMaildrop(for: account, queue: queue)
            #expect((drop != nil) == served, "\(incoming) forbid=\(forbid)")
            drop?.close()
            #expect(provider.localMaildrop(for: "nobody@contoso.test", queue: queue) == nil)
        }
    }

    @Test("a write past the byte limit fails and leaves nothing behind")
    func writerLimit() throws {
        let store = MaildirStore(stateDirectory: directory + "/state", account: account)
        try store.prepare(recorded: [])
        let writer = try store.begin(fileName: "x.mailgate", byteLimit: 10)
        #expect(throws: DownloadError.storeFull(limit: 10)) { try writer.bytes(Array(repeating: 65, count: 11)) }
        writer.abandon()
        #expect(DurableFile.list(store.temporaryDirectory).isEmpty)
        #expect(DurableFile.list(store.newDirectory).isEmpty)
    }

    // MARK: - Callbacks as async calls

    func open(_ drop: LocalMaildrop, _ queue: DispatchQueue) async -> Result<[MaildropMessage], MaildropError> {
        await withCheckedContinuation { continuation in
            queue.async { drop.open { continuation.resume(returning: $0) } }
        }
    }

    func retrieve(_ drop: LocalMaildrop, _ queue: DispatchQueue, _ index: Int, _ lines: Int?) async throws
        -> (bytes: [UInt8], chunks: [Int])
    {
        final class Collected: @unchecked Sendable {
            var bytes: [UInt8] = []
            var chunks: [Int] = []
        }
        let collected = Collected()
        let result = await withCheckedContinuation { continuation in
            queue.async {
                drop.retrieve(
                    index, bodyLines: lines,
                    chunk: { bytes, resume in
                        collected.bytes += bytes
                        collected.chunks.append(bytes.count)
                        resume()
                    }, done: { continuation.resume(returning: $0) })
            }
        }
        try result.get()
        return (collected.bytes, collected.chunks)
    }

    func commit(_ drop: LocalMaildrop, _ queue: DispatchQueue, _ indices: [Int]) async -> Result<Void, MaildropError> {
        await withCheckedContinuation { continuation in
            queue.async { drop.commit(deleting: indices) { continuation.resume(returning: $0) } }
        }
    }
}
