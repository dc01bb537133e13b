// GatewayTests/EndToEnd: the sent journal after real sends through `mailgate serve`: `journal verify` and
// `journal checkpoint`, then tampering with the database and the archive, each caught at the first broken row.

import Foundation
import Store
import Synchronization
import Testing

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running; failed when MAILGATE_REQUIRE_INTEGRATION=1.
    /// Listener ports 26020-26029.
    @Suite("Sent journal end to end: verify, checkpoint, tampering", .serialized)
    struct JournalEndToEndTests {
        static let alice = "alice@contoso.test"
        static let hans = "hans@contoso.test"

        /// The state of an installation after three sends (alice, hans, alice) with serve stopped, copied aside so
        /// that every tampering case starts from its own fresh copy. Made once per test process.
        struct Golden: Sendable {
            var stateDirectory: String
            var checkpoint: String
            var entries: [JournalEntry]
        }

        private static let golden = Mutex<Golden?>(nil)
        private static let building = Mutex(false)

        static func goldenState(_ standIn: StandIn) async throws -> Golden {
            while true {
                if let made = golden.withLock({ $0 }) { return made }
                let mine = building.withLock { busy in
                    defer { busy = true }
                    return !busy
                }
                if mine { break }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            do {
                let made = try await makeGolden(standIn)
                golden.withLock { $0 = made }
                return made
            } catch {
                building.withLock { $0 = false }
                throw error
            }
        }

        private static func makeGolden(_ standIn: StandIn) async throws -> Golden {
            let installation = try EndToEnd.serving(
                standIn, port: 26020, accounts: [alice, hans], extraServer: "sent_copy = \"never\"")
            for (index, sender) in [alice, hans, alice].enumerated() {
                let id = EndToEnd.uniqueID("journal-\(index)")
                let bytes = EndToEnd.message(
                    from: sender, to: ["bob@contoso.test"], subject: "journal \(index)", id: id,
                    extraBody: "Message \(index) of the journal test.\r\n")
                let file = try EndToEnd.write(bytes, named: "journal-\(index).eml", in: installation.directory)
                let sent = try EndToEnd.sendWithPython(
                    port: installation.smtpPort, user: sender, from: sender, to: ["bob@contoso.test"], file: file)
                guard sent.status == 0 else { throw StandInError("send \(index) failed: \(sent.error.suffix(600))") }
            }
            installation.stopServe()
            let entries = try EndToEnd.journal(installation)
            let checkpoint = try installation.run(["journal", "checkpoint"])
            guard checkpoint.status == 0 else { throw StandInError("checkpoint failed: \(checkpoint.stderr)") }
            let keep = NSTemporaryDirectory() + "mailgate-e2e-journal-golden-\(getpid())"
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: installation.stateDirectory, toPath: keep)
            atexit {
                try? FileManager.default.removeItem(
                    atPath: NSTemporaryDirectory() + "mailgate-e2e-journal-golden-\(getpid())")
            }
            return Golden(
                stateDirectory: keep, checkpoint: checkpoint.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                entries: entries)
        }

        /// A fresh installation (never served) holding a copy of the golden state.
        static func copyOfGolden(_ standIn: StandIn, _ golden: Golden, port: Int) throws -> MailGateInstallation {
            let installation = try MailGateInstallation(standIn, smtpPort: port)
            try FileManager.default.copyItem(atPath: golden.stateDirectory, toPath: installation.stateDirectory)
            return installation
        }

        /// Runs SQL on the installation's database with Python's sqlite3 module (the CLI may not be installed).
        static func sql(_ installation: MailGateInstallation, _ statements: [String]) throws {
            let script = """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1])
                for statement in sys.argv[2:]:
                    db.execute(statement)
                db.commit()
                db.close()
                """
            let result = try runPython(
                script, [installation.stateDirectory + "/" + MailGateDatabase.fileName] + statements)
            guard result.status == 0 else { throw StandInError("sqlite3: \(result.error.suffix(600))") }
        }

        @Test("after sends through serve: journal verify prints OK: 3 entries and the head that checkpoint prints")
        func verifyAndCheckpoint() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            #expect(golden.entries.map(\.sequence) == [1, 2, 3])
            #expect(golden.entries.allSatisfy { $0.status == .sent && $0.isChained })
            #expect(golden.entries.map(\.accountEmail) == [Self.alice, Self.hans, Self.alice])
            let head = try #require(golden.entries.last?.entryHash)
            #expect(golden.checkpoint == "3 \(head)")

            let installation = try Self.copyOfGolden(standIn, golden, port: 26021)
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout == "OK: 3 entries; head 3 \(head)\n", "\(verify.stdout)")
            let mine = try installation.run(["journal", "verify", "--account", Self.hans])
            #expect(mine.status == 0, "\(mine.stderr)")
            #expect(mine.stdout.hasPrefix("OK: 1 entries of hans@contoso.test (3 in the chain)"), "\(mine.stdout)")
            let checkpoint = try installation.run(["journal", "checkpoint"])
            #expect(checkpoint.stdout == "3 \(head)\n")
        }

        enum Tampering: String, CaseIterable, Sendable, CustomTestStringConvertible {
            case editRecipient, deleteRow, insertForgedRow, alterArchive
            var testDescription: String { rawValue }
        }

        @Test(
            "tampering with a copy of the state makes journal verify exit 1 naming the first broken row",
            arguments: Tampering.allCases)
        func tampering(_ tampering: Tampering) async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let port = 26022 + Tampering.allCases.firstIndex(of: tampering)!
            let installation = try Self.copyOfGolden(standIn, golden, port: port)
            let second = golden.entries[1]
            let expectedRow: Int64
            let expectedReason: String
            switch tampering {
            case .editRecipient:
                try Self.sql(
                    installation, [#"UPDATE journalEntry SET rcptTo = '["mallory@example.net"]' WHERE sequence = 2"#])
                expectedRow = 2
                expectedReason = "entry 2's fields do not match its hash: it was altered"
            case .deleteRow:
                try Self.sql(installation, ["DELETE FROM journalEntry WHERE sequence = 2"])
                expectedRow = 2
                expectedReason = "entry 2 is missing (the next entry present is 3)"
            case .insertForgedRow:
                // A forger who knows the hash function: entry 2 becomes a new message correctly chained to entry 1;
                // the genuine entries 2 and 3 move up. The first row that no longer fits is the old entry 2.
                var forged = second
                forged.messageID = "<forged@contoso.test>"
                forged.previousHash = golden.entries[0].entryHash
                forged.entryHash = forged.computeHash(previousHash: forged.previousHash)
                try Self.sql(
                    installation,
                    [
                        "UPDATE journalEntry SET sequence = 4 WHERE sequence = 3",
                        "UPDATE journalEntry SET sequence = 3 WHERE sequence = 2",
                        """
                        INSERT INTO journalEntry SELECT 2, status, createdAt, completedAt, accountEmail, listener,
                            mailFrom, rcptTo, '\(forged.messageID)', size, sha256, upstreamReply, sentCopyState,
                            '\(forged.previousHash)', '\(forged.entryHash)' FROM journalEntry WHERE sequence = 3
                        """,
                    ])
                expectedRow = 3
                expectedReason = "entry 3's previous hash does not match entry 2 as it is now"
            case .alterArchive:
                let path = JournalVerifier.archivePath(
                    sha256: second.sha256, directory: installation.stateDirectory + "/archive")
                var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                let index = try #require(bytes.firstRange(of: Array("Message 1".utf8))?.lowerBound)
                bytes[index] = UInt8(ascii: "m")
                _ = chmod(path, 0o600)
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                expectedRow = 2
                expectedReason = "the archived message of entry 2"
            }
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 1, "\(tampering): \(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.isEmpty)
            #expect(
                verify.stderr.hasPrefix("mailgate: journal BROKEN at entry \(expectedRow): \(expectedReason)"),
                "\(tampering): \(verify.stderr)")
            if tampering == .insertForgedRow {
                // The forged row itself is consistent: verify stopped after it, not at it.
                #expect(!verify.stderr.contains("entry 2's"))
            }
        }

        @Test("truncating the journal's tail passes verify but checkpoint no longer matches the one kept aside")
        func truncationShowsInCheckpoint() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let installation = try Self.copyOfGolden(standIn, golden, port: 26026)
            try Self.sql(installation, ["DELETE FROM journalEntry WHERE sequence = 3"])
            let verify = try installation.run(["journal", "verify"])
            #expect(verify.status == 0)
            #expect(verify.stdout.hasPrefix("OK: 2 entries; head 2 \(golden.entries[1].entryHash)"), "\(verify.stdout)")
            let checkpoint = try installation.run(["journal", "checkpoint"])
            #expect(checkpoint.stdout == "2 \(golden.entries[1].entryHash)\n")
            #expect(checkpoint.stdout.trimmingCharacters(in: .newlines) != golden.checkpoint)
        }
    }
}
