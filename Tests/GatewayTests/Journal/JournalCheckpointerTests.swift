// GatewayTests/Journal: serve's checkpointer: due after N entries or M seconds, never for an unmoved head, once at
// shutdown, continuing an earlier run's file, and a TSA that cannot be reached leaves the checkpoint without a token.
import Config
import Crypto
import Foundation
import Logging
import MailGateTesting
import Store
import Synchronization
import Testing

@testable import Gateway

/// Keeps every log message (the checkpointer's log line is part of its contract).
final class CapturedLog: @unchecked Sendable {
    // @unchecked: `lines` is guarded by the mutex.
    let lines = Mutex<[String]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let log: CapturedLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.lines.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }
}

@Suite("Journal checkpointer", .serialized)
struct JournalCheckpointerTests {
    @discardableResult
    static func send(_ database: MailGateDatabase, _ text: String) throws -> Int64 {
        let bytes = Array(text.utf8)
        let sequence = try database.insertPendingJournalEntry(
            accountEmail: "alice@contoso.test", listener: "smtp", mailFrom: "alice@contoso.test",
            rcptTo: ["bob@contoso.test"], messageID: "<\(text)@contoso.test>", size: Int64(bytes.count),
            sha256: SHA256.hex(bytes))
        try database.completeJournalEntry(sequence: sequence, status: .sent, upstreamReply: "250 ok")
        return sequence
    }

    static func checkpoints(_ state: String) throws -> [JournalCheckpoint] {
        let path = JournalCheckpointFile.path(stateDirectory: state)
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try JournalCheckpointFile.read(path: path)
    }

    @Test("every N entries, then nothing while the head stands still, then one at shutdown")
    func everyNEntries() async throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase(stateDirectory: state.path)
        let log = CapturedLog()
        let checkpointer = JournalCheckpointer(
            database: database, stateDirectory: state.path,
            settings: JournalSettings(checkpointEveryEntries: 3, checkpointEverySeconds: 3_600), logger: log.logger,
            stamper: nil, pollInterval: 0.05)
        checkpointer.start()
        for index in 1...2 { try Self.send(database, "n\(index)") }
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(try Self.checkpoints(state.path).isEmpty, "2 of 3 entries: not due yet")
        try Self.send(database, "n3")
        #expect(try await eventually(5) { try Self.checkpoints(state.path).map(\.sequence) == [3] })
        try Self.send(database, "n4")
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(try Self.checkpoints(state.path).map(\.sequence) == [3])
        checkpointer.stop()
        let written = try Self.checkpoints(state.path)
        #expect(written.map(\.sequence) == [3, 4])
        let head = try #require(try database.journalHead())
        #expect(written.last?.entryHash == head.hash)
        for checkpoint in written { #expect(log.text.contains("notice \(checkpoint.logLine)"), "\(log.text)") }

        // A second run continues the file and writes nothing at shutdown when nothing was added.
        let again = JournalCheckpointer(
            database: database, stateDirectory: state.path,
            settings: JournalSettings(checkpointEveryEntries: 1, checkpointEverySeconds: 3_600), logger: log.logger,
            stamper: nil, pollInterval: 0.05)
        again.start()
        try await Task.sleep(nanoseconds: 200_000_000)
        again.stop()
        #expect(try Self.checkpoints(state.path).map(\.sequence) == [3, 4])
    }

    @Test("after M seconds one new entry is enough")
    func afterSeconds() async throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase(stateDirectory: state.path)
        let checkpointer = JournalCheckpointer(
            database: database, stateDirectory: state.path,
            settings: JournalSettings(checkpointEveryEntries: 1_000, checkpointEverySeconds: 4),
            logger: CapturedLog().logger, stamper: nil, pollInterval: 0.05)
        checkpointer.start()
        try Self.send(database, "t1")
        #expect(try await eventually(10) { try Self.checkpoints(state.path).map(\.sequence) == [1] })
        try Self.send(database, "t2")
        try await Task.sleep(nanoseconds: 300_000_000)
        // M is 4 s so that a loaded machine's scheduling delays stay well inside it.
        #expect(try Self.checkpoints(state.path).map(\.sequence) == [1], "less than M seconds since the last one")
        #expect(try await eventually(10) { try Self.checkpoints(state.path).map(\.sequence) == [1, 2] })
        checkpointer.stop()
    }

    @Test("an unreachable TSA: the checkpoint is written and logged, no token, the failure logged; a damaged file is not appended to")
    func unreachableTSAAndDamagedFile() async throws {
        let state = try TemporaryStateDirectory()
        let database = try MailGateDatabase(stateDirectory: state.path)
        let log = CapturedLog()
        let certificates = try TestCertificates.make()
        let stamper = try TimeStampClient(url: "https://127.0.0.1:1/", caFile: certificates.caFile, timeout: 5)
        let checkpointer = JournalCheckpointer(
            database: database, stateDirectory: state.path,
            settings: JournalSettings(checkpointEveryEntries: 1, checkpointEverySeconds: 3_600), logger: log.logger,
            stamper: stamper, pollInterval: 0.05)
        checkpointer.start()
        try Self.send(database, "u1")
        #expect(try await eventually(5) { log.text.contains("journal checkpoint 1: time-stamping at https://127.0.0.1:1/ failed") }, "\(log.text)")
        checkpointer.stop()
        #expect(try Self.checkpoints(state.path).map(\.sequence) == [1])
        let folder = JournalCheckpointFile.directory(stateDirectory: state.path)
        #expect(!FileManager.default.fileExists(atPath: JournalCheckpointFile.tokenPath(directory: folder, sequence: 1)))

        // Damage the file: the next run logs it and appends nothing, but still logs its checkpoint.
        let path = JournalCheckpointFile.path(stateDirectory: state.path)
        let damaged = try String(contentsOfFile: path, encoding: .utf8) + "a line that is no checkpoint\n"
        try damaged.write(toFile: path, atomically: true, encoding: .utf8)
        let next = JournalCheckpointer(
            database: database, stateDirectory: state.path,
            settings: JournalSettings(checkpointEveryEntries: 1, checkpointEverySeconds: 3_600), logger: log.logger,
            stamper: nil, pollInterval: 0.05)
        next.start()
        try Self.send(database, "u2")
        try await Task.sleep(nanoseconds: 300_000_000)
        next.stop()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == damaged)
        #expect(log.text.contains("no checkpoint is appended until the file is repaired"), "\(log.text)")
        #expect(log.text.contains("(not in the checkpoint file)"), "\(log.text)")
    }
}
