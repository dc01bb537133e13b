// GatewayTests/EndToEnd: revision security against the stand-in: `journal verify --against-server` over Dovecot,
// checkpoints written by `serve` with RFC 3161 tokens from the stand-in's TSA, a consistently rebuilt chain caught
// by the checkpoints, altered and swapped tokens, and `journal export` checked with sha256sum and openssl alone.

import Foundation
import MailGateTesting
import Store
import Synchronization
import Testing

@testable import Gateway

/// The journal fields every manifest row carries (JournalEntry's columns plus the exported file and its hash).
enum ExportFields {
    static let all = [
        "sequence", "status", "createdAt", "completedAt", "accountEmail", "listener", "mailFrom", "rcptTo",
        "messageID", "size", "sha256", "upstreamReply", "sentCopyState", "previousHash", "entryHash", "file",
        "fileSHA256",
    ]
}

extension StandInTests {
    /// Skipped with a message when the stand-in is not running; failed when MAILGATE_REQUIRE_INTEGRATION=1.
    /// Listener ports 27200-27219.
    @Suite("Journal audit end to end: against the server, checkpoints, time-stamps, export", .serialized)
    struct JournalAuditEndToEndTests {
        static let alice = "alice@contoso.test"

        /// After three sends by alice through `serve` with checkpoints every 2 entries and the TSA on, serve
        /// stopped: the state copied aside, the Message-IDs, and serve's log.
        struct Golden: Sendable {
            var stateDirectory: String
            var messageIDs: [String]
            var serveLog: String
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

        /// `[journal]` for the stand-in's TSA.
        static func journalSection(_ standIn: StandIn, every: Int = 2) -> String {
            """

            [journal]
            checkpoint_every_entries = \(every)
            tsa_url = "\(standIn["TSA_URL"])"
            tsa_ca_file = "\(standIn.caFile)"
            """
        }

        private static func makeGolden(_ standIn: StandIn) async throws -> Golden {
            let installation = try MailGateInstallation(standIn, smtpPort: 27200)
            try appendJournalSection(installation, standIn)
            try installation.addAndConnect(alice, password: EndToEnd.password)
            try installation.startServe()
            var ids: [String] = []
            for index in 0..<3 {
                let id = EndToEnd.uniqueID("audit-\(index)")
                ids.append(id)
                let bytes = EndToEnd.message(
                    from: alice, to: ["bob@contoso.test", "hans@contoso.test"], subject: "audit \(index)", id: id,
                    extraBody: "Message \(index) of the audit test.\r\n")
                let file = try EndToEnd.write(bytes, named: "audit-\(index).eml", in: installation.directory)
                let sent = try EndToEnd.sendWithPython(
                    port: installation.smtpPort, user: alice, from: alice, to: ["bob@contoso.test", "hans@contoso.test"],
                    file: file)
                guard sent.status == 0 else { throw StandInError("send \(index) failed: \(sent.error.suffix(600))") }
                let copy = try await EndToEnd.settledCopyState(installation, messageID: id)
                guard copy == .made else { throw StandInError("sent copy of \(index) is \(String(describing: copy))") }
                if index == 1 {
                    // The checkpoint of 2 entries is written by serve's poll within a second or two.
                    let written = await eventually(15) {
                        installation.serveOutput.contains("journal checkpoint 2 ")
                            && FileManager.default.fileExists(atPath: tokenPath(installation.stateDirectory, 2))
                    }
                    guard written else { throw StandInError("no checkpoint 2: \(installation.serveOutput.suffix(1500))") }
                }
            }
            installation.stopServe()
            let log = installation.serveOutput
            let entries = try EndToEnd.journal(installation)
            let keep = NSTemporaryDirectory() + "mailgate-e2e-audit-golden-\(getpid())"
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: installation.stateDirectory, toPath: keep)
            atexit {
                try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "mailgate-e2e-audit-golden-\(getpid())")
            }
            return Golden(stateDirectory: keep, messageIDs: ids, serveLog: log, entries: entries)
        }

        /// The installation's config gets `[journal]` after its `[server]` table (a table cannot be appended
        /// through `extraServer`, whose lines land inside `[server.standin]`).
        static func appendJournalSection(_ installation: MailGateInstallation, _ standIn: StandIn, every: Int = 2) throws {
            let text = try String(contentsOfFile: installation.configPath, encoding: .utf8)
            try (text + journalSection(standIn, every: every) + "\n").write(
                toFile: installation.configPath, atomically: true, encoding: .utf8)
        }

        static func tokenPath(_ state: String, _ sequence: Int64) -> String {
            JournalCheckpointFile.tokenPath(directory: JournalCheckpointFile.directory(stateDirectory: state), sequence: sequence)
        }

        /// A fresh installation (never served) with alice's account and a copy of the golden state.
        static func copyOfGolden(_ standIn: StandIn, _ golden: Golden, port: Int) throws -> MailGateInstallation {
            let installation = try MailGateInstallation(standIn, smtpPort: port)
            try appendJournalSection(installation, standIn)
            try FileManager.default.copyItem(atPath: golden.stateDirectory, toPath: installation.stateDirectory)
            return installation
        }

        /// `sh -c script` with arguments $1…
        @discardableResult
        static func shell(_ script: String, _ arguments: [String], in directory: String? = nil) throws -> CommandRun {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", script, "sh"] + arguments
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let out = output.fileHandleForReading.readAllRetryingInterrupts()
            let err = errors.fileHandleForReading.readAllRetryingInterrupts()
            process.waitUntilExit()
            return CommandRun(
                status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self))
        }

        /// doveadm on the stand-in's Dovecot, as alice's mailbox owner would never be allowed to through MailGate.
        static func doveadm(_ standIn: StandIn, _ arguments: [String]) throws -> CommandRun {
            try shell(#"conf="$1"; shift; exec doveadm -c "$conf" "$@""#, [standIn["DOVECOT_CONF"]] + arguments)
        }

        @Test("verify --against-server: green after the sends; a message moved into a child of Sent stays green")
        func againstServerGreen() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            #expect(golden.entries.map(\.sequence) == [1, 2, 3])
            let installation = try Self.copyOfGolden(standIn, golden, port: 27201)
            let verify = try installation.run(["journal", "verify", "--against-server", "--account", Self.alice])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.contains("server: all 3 sent messages of alice@contoso.test are in \"Sent Items\""), "\(verify.stdout)")
            #expect(verify.stdout.contains("summary: OK: chain of 3 entries intact, 3 of 3 sent messages found on the server"), "\(verify.stdout)")

            // The lock allows moving within Sent's hierarchy; the audit searches the children too.
            let child = "Sent Items/Kept \(UInt32.random(in: 0...UInt32.max))"
            let made = try Self.doveadm(standIn, ["mailbox", "create", "-u", Self.alice, child])
            #expect(made.status == 0, "\(made.stderr)")
            let moved = try Self.doveadm(
                standIn, ["move", "-u", Self.alice, child, "mailbox", "Sent Items", "header", "Message-ID", golden.messageIDs[0]])
            #expect(moved.status == 0, "\(moved.stderr)")
            let again = try installation.run(["journal", "verify", "--against-server"])
            #expect(again.status == 0, "\(again.stdout) \(again.stderr)")
            #expect(again.stdout.contains("\"\(child)\""), "\(again.stdout)")
            // Put it back for the other tests.
            _ = try Self.doveadm(
                standIn, ["move", "-u", Self.alice, "Sent Items", "mailbox", child, "header", "Message-ID", golden.messageIDs[0]])
            _ = try Self.doveadm(standIn, ["mailbox", "delete", "-u", Self.alice, child])
        }

        @Test("a sent message deleted directly in Dovecot: verify --against-server exits 1 naming that row")
        func againstServerMissing() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let installation = try Self.copyOfGolden(standIn, golden, port: 27202)
            let id = golden.messageIDs[1]
            let deleted = try Self.doveadm(
                standIn, ["expunge", "-u", Self.alice, "mailbox", "Sent Items", "header", "Message-ID", id])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            let verify = try installation.run(["journal", "verify", "--against-server"])
            #expect(verify.status == 1, "\(verify.stdout) \(verify.stderr)")
            let row = golden.entries[1]
            #expect(
                verify.stdout.contains(
                    "MISSING FROM SENT: entry 2, sent \(UTCTimestamp.format(row.createdAt)) by alice@contoso.test to "
                        + "bob@contoso.test, hans@contoso.test, Message-ID \(id): not in \"Sent Items\""),
                "\(verify.stdout)")
            #expect(!verify.stdout.contains("MISSING FROM SENT: entry 1"))
            #expect(!verify.stdout.contains("MISSING FROM SENT: entry 3"))
            #expect(verify.stdout.contains("summary: FAILED (1 problems)"), "\(verify.stdout)")
            #expect(verify.stderr.contains("journal verify: 1 problem"), "\(verify.stderr)")
            // Put the original back (doveadm save), so that the other tests find alice's Sent Items whole.
            let original = JournalVerifier.archivePath(sha256: row.sha256, directory: installation.stateDirectory + "/archive")
            let restored = try Self.shell(
                #"doveadm -c "$1" save -u "$2" -m "Sent Items" < "$3""#, [standIn["DOVECOT_CONF"], Self.alice, original])
            #expect(restored.status == 0, "\(restored.stderr)")
            let green = try installation.run(["journal", "verify", "--against-server"])
            #expect(green.status == 0, "\(green.stdout)")
        }

        @Test("serve wrote checkpoints 2 and 3 (log and file) with TSA tokens that verify and openssl accepts")
        func checkpointsAndTokens() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let file = JournalCheckpointFile.path(stateDirectory: golden.stateDirectory)
            let checkpoints = try JournalCheckpointFile.read(path: file)
            #expect(checkpoints.map(\.sequence) == [2, 3])
            #expect(checkpoints.map(\.entryHash) == [golden.entries[1].entryHash, golden.entries[2].entryHash])
            for checkpoint in checkpoints {
                #expect(golden.serveLog.contains(checkpoint.logLine), "\(golden.serveLog.suffix(2000))")
                #expect(golden.serveLog.contains("journal checkpoint \(checkpoint.sequence) time-stamped by"))
                let openssl = try Self.shell(
                    #"openssl ts -verify -digest "$1" -in "$2" -CAfile "$3""#,
                    [checkpoint.entryHash, Self.tokenPath(golden.stateDirectory, checkpoint.sequence), standIn.caFile])
                #expect(openssl.status == 0 && openssl.stdout.contains("Verification: OK"), "\(openssl.stdout) \(openssl.stderr)")
            }
            let installation = try Self.copyOfGolden(standIn, golden, port: 27203)
            let verify = try installation.run(
                ["journal", "verify", "--checkpoints", JournalCheckpointFile.path(stateDirectory: installation.stateDirectory)])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.contains("time-stamp of checkpoint 2: verified"), "\(verify.stdout)")
            #expect(verify.stdout.contains("time-stamp of checkpoint 3: verified"), "\(verify.stdout)")
            #expect(verify.stdout.contains("summary: OK: chain of 3 entries intact, 2 checkpoints contained, 2 time-stamps verified, 0 missing"), "\(verify.stdout)")
            let byHand = try installation.run(["journal", "verify", "--checkpoint", checkpoints[0].argument])
            #expect(byHand.status == 0, "\(byHand.stdout) \(byHand.stderr)")
        }

        @Test("rows rebuilt consistently in SQLite: plain verify green, --checkpoints and --checkpoint red")
        func rebuiltChain() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let installation = try Self.copyOfGolden(standIn, golden, port: 27204)
            // A forger with write access changes entry 2's recipients and recomputes every hash from there on.
            var rebuilt = golden.entries
            rebuilt[1].rcptTo = ["mallory@example.net"]
            for index in 1..<rebuilt.count {
                rebuilt[index].previousHash = rebuilt[index - 1].entryHash
                rebuilt[index].entryHash = rebuilt[index].computeHash(previousHash: rebuilt[index].previousHash)
            }
            var statements = [#"UPDATE journalEntry SET rcptTo = '["mallory@example.net"]' WHERE sequence = 2"#]
            for entry in rebuilt.dropFirst() {
                statements.append(
                    "UPDATE journalEntry SET previousHash = '\(entry.previousHash)', entryHash = '\(entry.entryHash)' "
                        + "WHERE sequence = \(entry.sequence)")
            }
            try JournalEndToEndTests.sql(installation, statements)
            let plain = try installation.run(["journal", "verify"])
            #expect(plain.status == 0, "\(plain.stdout) \(plain.stderr)")
            #expect(plain.stdout.hasPrefix("OK: 3 entries; head 3 \(rebuilt[2].entryHash)"), "\(plain.stdout)")
            let file = JournalCheckpointFile.path(stateDirectory: installation.stateDirectory)
            let checked = try installation.run(["journal", "verify", "--checkpoints", file])
            #expect(checked.status == 1, "\(checked.stdout) \(checked.stderr)")
            #expect(checked.stdout.contains("CHECKPOINT MISSING (\(file)): checkpoint 2:"), "\(checked.stdout)")
            #expect(checked.stdout.contains("entry 2 now has hash"), "\(checked.stdout)")
            #expect(checked.stdout.contains("entry 3 now has hash"), "\(checked.stdout)")
            let byHand = try installation.run(
                ["journal", "verify", "--checkpoint", "2:\(golden.entries[1].entryHash)"])
            #expect(byHand.status == 1, "\(byHand.stdout)")
            // Truncation after the checkpoint shows too.
            try JournalEndToEndTests.sql(installation, ["DELETE FROM journalEntry WHERE sequence = 3"])
            let truncated = try installation.run(["journal", "verify", "--checkpoint", "3:\(golden.entries[2].entryHash)"])
            #expect(truncated.status == 1)
            #expect(truncated.stdout.contains("the journal has no entry 3 any more"), "\(truncated.stdout)")
        }

        enum TokenDamage: String, CaseIterable, Sendable, CustomTestStringConvertible {
            case alteredToken, swappedTokens, reorderedLines
            var testDescription: String { rawValue }
        }

        @Test("an altered token, swapped tokens or re-ordered checkpoint lines: verify --checkpoints red", arguments: TokenDamage.allCases)
        func tokenDamage(_ damage: TokenDamage) async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let installation = try Self.copyOfGolden(
                standIn, golden, port: 27205 + TokenDamage.allCases.firstIndex(of: damage)!)
            let state = installation.stateDirectory
            let file = JournalCheckpointFile.path(stateDirectory: state)
            let expected: String
            switch damage {
            case .alteredToken:
                let path = Self.tokenPath(state, 3)
                var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                // Inside the signed TSTInfo: the genTime's digits (GeneralizedTime "YYYYMMDDhhmmssZ").
                let year = Array(String(Calendar(identifier: .gregorian).component(.year, from: Date())).utf8)
                let index = try #require(bytes.firstRange(of: [0x18, 0x0F] + year)?.lowerBound)
                bytes[index + 14] = bytes[index + 14] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                expected = "TIME-STAMP INVALID: checkpoint 3:"
            case .swappedTokens:
                let two = Self.tokenPath(state, 2)
                let three = Self.tokenPath(state, 3)
                #expect(rename(two, three + ".x") == 0 && rename(three, two) == 0 && rename(three + ".x", three) == 0)
                expected = "TIME-STAMP INVALID: checkpoint 2:"
            case .reorderedLines:
                var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                lines.swapAt(1, 2)
                try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
                expected = "CHECKPOINT FILE DAMAGED"
            }
            let verify = try installation.run(["journal", "verify", "--checkpoints", file])
            #expect(verify.status == 1, "\(damage): \(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.contains(expected), "\(damage): \(verify.stdout)")
        }

        @Test("journal export of a range: sha256sum -c and openssl ts -verify pass in the export alone; damage shows")
        func export() async throws {
            guard let standIn = StandIn.load() else { return }
            let golden = try await Self.goldenState(standIn)
            let installation = try Self.copyOfGolden(standIn, golden, port: 27208)
            let target = installation.directory + "/export"
            // From entry 2's time on: entries 2 and 3 (entry 1 is earlier, or at the same millisecond at worst).
            let since = UTCTimestamp.format(golden.entries[1].createdAt)
            let run = try installation.run(["journal", "export", "--since", since, "--account", Self.alice, target])
            #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: target + "/messages").sorted()
            #expect(files == ["2.eml", "3.eml"], "\(files)")
            let sums = try Self.shell("sha256sum -c SHA256SUMS", [], in: target)
            #expect(sums.status == 0, "\(sums.stdout) \(sums.stderr)")
            for name in ["messages/2.eml", "messages/3.eml", "manifest.csv", "manifest.json", "verification-report.txt",
                "checkpoints/checkpoints.txt", "checkpoints/2.tsr", "checkpoints/3.tsr", "checkpoints/tsa-ca.pem"]
            {
                #expect(sums.stdout.contains("\(name): OK"), "\(name): \(sums.stdout)")
            }
            for entry in golden.entries.dropFirst() {
                let openssl = try Self.shell(
                    #"openssl ts -verify -digest "$1" -in "checkpoints/$2.tsr" -CAfile checkpoints/tsa-ca.pem"#,
                    [entry.entryHash, String(entry.sequence)], in: target)
                #expect(openssl.status == 0 && openssl.stdout.contains("Verification: OK"), "\(openssl.stdout) \(openssl.stderr)")
                let original = try Data(contentsOf: URL(fileURLWithPath: JournalVerifier.archivePath(
                    sha256: entry.sha256, directory: installation.stateDirectory + "/archive")))
                #expect(try Data(contentsOf: URL(fileURLWithPath: target + "/messages/\(entry.sequence).eml")) == original)
            }
            let csv = try String(contentsOfFile: target + "/manifest.csv", encoding: .utf8)
            let rows = csv.split(separator: "\r\n")
            #expect(rows.count == 3, "\(csv)")
            #expect(rows.first?.hasPrefix("sequence,status,createdAt,completedAt,accountEmail") == true)
            #expect(rows.dropFirst().first?.contains(golden.entries[1].entryHash) == true)
            #expect(rows.dropFirst().first?.contains("\"bob@contoso.test hans@contoso.test\"") == true, "\(csv)")
            struct Manifest: Decodable {
                struct Row: Decodable {
                    var sequence: Int64
                    var sha256: String
                    var fileSHA256: String?
                    var messageID: String
                }
                var entries: [Row]
            }
            let manifest = try JSONDecoder().decode(
                Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: target + "/manifest.json")))
            #expect(manifest.entries.map(\.sequence) == [2, 3])
            #expect(manifest.entries.allSatisfy { $0.sha256 == $0.fileSHA256 })
            let json = try String(contentsOfFile: target + "/manifest.json", encoding: .utf8)
            for field in ExportFields.all { #expect(json.contains("\"\(field)\" :"), "manifest.json lacks \(field)") }
            #expect(manifest.entries.map(\.messageID) == Array(golden.messageIDs.dropFirst()))
            let report = try String(contentsOfFile: target + "/verification-report.txt", encoding: .utf8)
            #expect(report.contains("summary: OK"), "\(report)")

            // The auditor's check is not a formality: one changed byte in an exported message fails it.
            let path = target + "/messages/3.eml"
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[bytes.count - 3] ^= 0x20
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let damaged = try Self.shell("sha256sum -c SHA256SUMS", [], in: target)
            #expect(damaged.status != 0)
            #expect(damaged.stdout.contains("messages/3.eml: FAILED"), "\(damaged.stdout)")
            // A second export into the same, now non-empty directory is refused.
            let again = try installation.run(["journal", "export", "--since", "2000-01-01", target])
            #expect(again.status == 1)
        }

        /// Sets the stand-in TSA's answer mode (`ok`, `http-error`, `garbage`).
        static func tsaMode(_ standIn: StandIn, _ mode: String) throws {
            let result = try shell(
                #"curl -sf --cacert "$1" --data-binary "$2" -H 'Content-Type: text/plain' "$3/mode""#,
                [standIn.caFile, mode, standIn["TSA_CONTROL_URL"]])
            guard result.status == 0 else { throw StandInError("TSA mode \(mode): \(result.stderr)") }
        }

        @Test("a TSA answering garbage or HTTP 503: serve logs it, the checkpoint stays without a token, verify warns")
        func failingTSA() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try MailGateInstallation(standIn, smtpPort: 27209)
            try Self.appendJournalSection(installation, standIn, every: 1)
            try installation.addAndConnect(Self.alice, password: EndToEnd.password)
            try installation.startServe()
            defer { try? Self.tsaMode(standIn, "ok") }
            for (index, mode) in ["garbage", "http-error"].enumerated() {
                try Self.tsaMode(standIn, mode)
                let id = EndToEnd.uniqueID("tsa-\(mode)")
                let file = try EndToEnd.write(
                    EndToEnd.message(from: Self.alice, to: ["bob@contoso.test"], subject: "tsa \(mode)", id: id),
                    named: "tsa-\(index).eml", in: installation.directory)
                let sent = try EndToEnd.sendWithPython(
                    port: installation.smtpPort, user: Self.alice, from: Self.alice, to: ["bob@contoso.test"], file: file)
                #expect(sent.status == 0, "\(sent.error)")
                let logged = await eventually(15) {
                    installation.serveOutput.contains("journal checkpoint \(index + 1): time-stamping at")
                }
                #expect(logged, "\(installation.serveOutput.suffix(1500))")
            }
            try Self.tsaMode(standIn, "ok")
            installation.stopServe()
            let log = installation.serveOutput
            #expect(log.contains("journal checkpoint 1: time-stamping at \(standIn["TSA_URL"].dropLast()) failed: The data is not an RFC 3161"), "\(log.suffix(1500))")
            #expect(log.contains("journal checkpoint 2: time-stamping at \(standIn["TSA_URL"].dropLast()) failed: The time-stamping authority refused the request (status 503"), "\(log.suffix(1500))")
            let state = installation.stateDirectory
            #expect(!FileManager.default.fileExists(atPath: Self.tokenPath(state, 1)))
            #expect(!FileManager.default.fileExists(atPath: Self.tokenPath(state, 2)))
            let verify = try installation.run(["journal", "verify", "--checkpoints", JournalCheckpointFile.path(stateDirectory: state)])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stdout.contains("warning: checkpoint 1: its time-stamp token"), "\(verify.stdout)")
            #expect(verify.stdout.contains("0 time-stamps verified, 2 missing"), "\(verify.stdout)")
        }
    }
}
