// GatewayTests/Download: the download runner in process against the stand-in's Dovecot, with the test's clock.
import Config
import Crypto
import Foundation
import Logging
import Store
import Testing

@testable import Gateway

extension DownloadAgainstStandIn {
@Suite("Download runner against the stand-in")
struct DownloadRunnerEndToEndTests {
    /// One state directory, database and runner for `user`.
    struct Rig {
        let standIn: StandIn
        let user: String
        let state: String
        let database: MailGateDatabase
        let clock: TestClock
        let runner: DownloadRunner

        init(
            _ standIn: StandIn, user: String, deleteAfterLoading: Bool = false, deleteAfterDays: Int = 0,
            maxStoreBytes: Int = DownloadSettings.defaultMaxStoreBytes
        ) throws {
            self.standIn = standIn
            self.user = user
            state = try DownloadTesting.temporaryDirectory() + "/state"
            database = try MailGateDatabase(stateDirectory: state)
            try database.addAccount(Account(email: user, serverName: "standin", passwordHash: "$unused"))
            clock = TestClock()
            let clock = clock
            runner = DownloadRunner(
                configuration: try DownloadTesting.configuration(
                    standIn, stateDirectory: state, deleteAfterLoading: deleteAfterLoading,
                    deleteAfterDays: deleteAfterDays, download: DownloadSettings(maxStoreBytes: maxStoreBytes)),
                database: database, stateDirectory: state, credentials: StandInCredentials(standIn),
                logger: Logger(label: "test.download"), now: { clock.now })
        }

        func holdings() throws -> DownloadTesting.Holdings {
            try DownloadTesting.holdings(stateDirectory: state, account: user)
        }

        func counter(_ name: String) throws -> Int64 {
            try database.counters(since: Date().addingTimeInterval(-7_200), account: user).filter { $0.name == name }
                .reduce(0) { $0 + $1.value }
        }
    }

    @Test("each new message is stored once, byte for byte as the server has it; a second run fetches nothing")
    func storesOnce() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let rig = try Rig(standIn, user: DownloadTesting.dora)
        let ids = try await DownloadTesting.deliver(standIn, to: rig.user, count: 3, size: 150_000, label: "once")
        let first = await rig.runner.runAccount(rig.user)
        #expect(first.failure == nil, "\(first.failure?.description ?? "")")
        let second = await rig.runner.runAccount(rig.user)
        #expect(second.failure == nil)
        #expect(second.messages == 0)
        let holdings = try rig.holdings()
        #expect(holdings.consistent())
        for id in ids {
            let rows = holdings.present(id)
            #expect(rows.count == 1, "\(id) stored \(rows.count) times")
            let server = try await DownloadTesting.onServer(standIn, user: rig.user, messageID: id)
            #expect(server.count == 1, "delete_after_loading is off: the server keeps \(id)")
            if let row = rows.first, let copy = server.first {
                let local = [UInt8](FileManager.default.contents(atPath: holdings.store.path(of: row.fileName)) ?? Data())
                #expect(local == copy.bytes, "the local file of \(id) is the server's BODY[]")
                #expect(Int(row.size) == copy.bytes.count)
            }
        }
        #expect(try rig.counter("download.messages") == Int64(first.messages))
        #expect(try rig.counter("download.bytes") == Int64(first.bytes))
        #expect(try rig.counter("download.runs") == 2)
        // Directories are private.
        var info = stat()
        #expect(stat(holdings.store.root, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test("delete_after_loading never deletes a message whose local write failed (store full, or a file where the store should be)")
    func deleteAfterLoadingOnlyAfterDurableWrite() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        // 1. max_store_bytes too small for the message.
        let small = try Rig(standIn, user: DownloadTesting.dora, deleteAfterLoading: true, maxStoreBytes: 4_096)
        let ids = try await DownloadTesting.deliver(standIn, to: small.user, count: 1, size: 20_000, label: "full")
        let full = await small.runner.runAccount(small.user)
        #expect(full.failure == .storeFull(limit: 4_096))
        #expect(full.deletedAfterLoading == 0)
        #expect(try await DownloadTesting.onServer(standIn, user: small.user, messageID: ids[0]).count == 1)
        #expect(try small.holdings().rows.isEmpty)
        #expect(DurableFile.list(try small.holdings().store.temporaryDirectory).isEmpty)
        #expect(try small.counter("download.failures.store_full") == 1)

        // 2. A plain file where the account's Maildir should be.
        let blocked = try Rig(standIn, user: DownloadTesting.dora, deleteAfterLoading: true)
        let root = MaildirStore(stateDirectory: blocked.state, account: blocked.user).root
        try DurableFile.makeDirectory(DurableFile.directoryName(of: root))
        #expect(FileManager.default.createFile(atPath: root, contents: Data("not a directory".utf8)))
        let failed = await blocked.runner.runAccount(blocked.user)
        guard case .storeWrite? = failed.failure else {
            Issue.record("expected a store write failure, got \(String(describing: failed.failure))")
            return
        }
        #expect(try await DownloadTesting.onServer(standIn, user: blocked.user, messageID: ids[0]).count == 1)
        #expect(try blocked.counter("download.failures.store_write") == 1)

        // 3. Once the store is writable, the message is stored, then (and only then) deleted on the server.
        try FileManager.default.removeItem(atPath: root)
        let done = await blocked.runner.runAccount(blocked.user)
        #expect(done.failure == nil, "\(done.failure?.description ?? "")")
        let holdings = try blocked.holdings()
        #expect(holdings.present(ids[0]).count == 1)
        #expect(holdings.present(ids[0]).first?.deletedUpstreamAt != nil)
        #expect(holdings.consistent())
        #expect(try await DownloadTesting.onServer(standIn, user: blocked.user, messageID: ids[0]).isEmpty)
        #expect(try blocked.counter("download.deleted.after_loading") == Int64(done.deletedAfterLoading))
        #expect(done.deletedAfterLoading >= 1)
    }

    @Test("delete_after_days deletes on the server what was downloaded N days ago by the test's clock, not before")
    func deleteAfterDays() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let rig = try Rig(standIn, user: DownloadTesting.dora, deleteAfterDays: 3)
        let ids = try await DownloadTesting.deliver(standIn, to: rig.user, count: 2, label: "days")
        let first = await rig.runner.runAccount(rig.user)
        #expect(first.failure == nil, "\(first.failure?.description ?? "")")
        #expect(first.deletedAfterDays == 0)
        rig.clock.advance(days: 2.9)
        let early = await rig.runner.runAccount(rig.user)
        #expect(early.deletedAfterDays == 0)
        for id in ids { #expect(try await DownloadTesting.onServer(standIn, user: rig.user, messageID: id).count == 1) }
        rig.clock.advance(days: 0.2)
        let due = await rig.runner.runAccount(rig.user)
        #expect(due.failure == nil, "\(due.failure?.description ?? "")")
        #expect(due.deletedAfterDays == first.messages)
        for id in ids {
            #expect(try await DownloadTesting.onServer(standIn, user: rig.user, messageID: id).isEmpty)
            // Deleted on the server, still in the local store for POP3 clients.
            #expect(try rig.holdings().present(id).count == 1)
        }
        #expect(try rig.counter("download.deleted.after_days") == Int64(due.deletedAfterDays))
        let after = await rig.runner.runAccount(rig.user)
        #expect(after.deletedAfterDays == 0 && after.messages == 0)
    }

    @Test("reload fetches again what was downloaded and deleted locally; UIDLs stay the same")
    func reload() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let rig = try Rig(standIn, user: DownloadTesting.dora)
        let ids = try await DownloadTesting.deliver(standIn, to: rig.user, count: 2, label: "reload")
        #expect(await rig.runner.runAccount(rig.user).failure == nil)
        let before = try rig.holdings()
        let rowIDs = ids.compactMap { before.present($0).first?.id }
        #expect(rowIDs.count == 2)
        // A POP3 client deletes everything locally.
        let store = before.store
        try rig.database.markDeletedLocally(before.rows.compactMap(\.id), at: Date())
        for row in before.rows { try store.remove(fileName: row.fileName) }
        let plain = await rig.runner.runAccount(rig.user)
        #expect(plain.messages == 0, "without reload nothing known comes back")
        #expect(try rig.holdings().present(ids[0]).isEmpty)
        let reloaded = await rig.runner.runAccount(rig.user, reload: true)
        #expect(reloaded.failure == nil, "\(reloaded.failure?.description ?? "")")
        #expect(reloaded.messages >= 2)
        let after = try rig.holdings()
        #expect(after.consistent())
        #expect(ids.compactMap { after.present($0).first?.id } == rowIDs)
    }
}
}
