// StoreTests: the checkpoint file: its format, damage at every byte, truncation, re-ordering, appending, and the
// check of a chain against checkpoints (truncated, rebuilt).
import Crypto
import Foundation
import Store
import Testing

@Suite("Journal checkpoints")
struct JournalCheckpointTests {
    static let hashes = (1...3).map { SHA256.hex(Array("entry \($0)".utf8)) }

    /// A file with three checkpoints, as `serve` writes it.
    static func sampleFile() throws -> (text: String, checkpoints: [JournalCheckpoint]) {
        let checkpoints = [
            JournalCheckpoint(sequence: 2, entryHash: hashes[0], time: Date(timeIntervalSince1970: 1_796_000_000.123)),
            JournalCheckpoint(sequence: 17, entryHash: hashes[1], time: Date(timeIntervalSince1970: 1_796_003_600)),
            JournalCheckpoint(sequence: 120, entryHash: hashes[2], time: Date(timeIntervalSince1970: 1_796_007_200.5)),
        ]
        return (JournalCheckpointFile.header + "\n" + checkpoints.map(\.line).joined(), checkpoints)
    }

    @Test("the documented line format: SEQ HASH TIME CHECK, CHECK = first 16 hex of SHA-256 of the first three")
    func lineFormat() throws {
        let checkpoint = JournalCheckpoint(
            sequence: 42, entryHash: Self.hashes[0], time: Date(timeIntervalSince1970: 1_796_000_000.25))
        let fields = "42 \(Self.hashes[0]) 2026-11-30T00:53:20.250Z"
        #expect(checkpoint.line == fields + " " + SHA256.hex(Array(fields.utf8)).prefix(16) + "\n")
        #expect(checkpoint.logLine == "journal checkpoint " + fields)
        #expect(checkpoint.argument == "42:\(Self.hashes[0])")
        #expect(JournalCheckpoint.parseArgument("42:\(Self.hashes[0])")! == (42, Self.hashes[0]))
        for bad in ["42 \(Self.hashes[0])", "042:\(Self.hashes[0])", "-1:\(Self.hashes[0])", "42:\(Self.hashes[0].uppercased())",
            "42:\(Self.hashes[0].dropLast())", ":", "42:\(Self.hashes[0]):1"]
        {
            #expect(JournalCheckpoint.parseArgument(bad) == nil, "\(bad)")
        }
    }

    @Test("a written file parses back to the same checkpoints")
    func roundTrip() throws {
        let (text, checkpoints) = try Self.sampleFile()
        #expect(try JournalCheckpointFile.parse(Array(text.utf8)) == checkpoints)
        #expect(try JournalCheckpointFile.parse(Array((JournalCheckpointFile.header + "\n").utf8)) == [])
    }

    @Test("damage at every byte, to every other printable byte class, is refused with the line named")
    func damageAtEveryByte() throws {
        let bytes = Array(try Self.sampleFile().text.utf8)
        for index in bytes.indices {
            for replacement: UInt8 in [0x30, 0x31, 0x61, 0x20, 0x0A, 0x3A, 0x7A, 0x00, 0xC3] where replacement != bytes[index] {
                var damaged = bytes
                damaged[index] = replacement
                #expect(throws: CheckpointFileError.self, "byte \(index) → \(replacement)") {
                    try JournalCheckpointFile.parse(damaged)
                }
            }
            var removed = bytes
            removed.remove(at: index)
            #expect(throws: CheckpointFileError.self, "byte \(index) removed") { try JournalCheckpointFile.parse(removed) }
        }
    }

    @Test("a file cut off anywhere is refused, except after a whole line, which gives the checkpoints before it")
    func truncation() throws {
        let (text, checkpoints) = try Self.sampleFile()
        let bytes = Array(text.utf8)
        let lineEnds = Set(bytes.indices.filter { bytes[$0] == 0x0A }.map { $0 + 1 })
        for length in 0..<bytes.count {
            let cut = Array(bytes.prefix(length))
            if lineEnds.contains(length) {
                let parsed = try JournalCheckpointFile.parse(cut)
                #expect(parsed == Array(checkpoints.prefix(parsed.count)))
            } else {
                #expect(throws: CheckpointFileError.self, "cut at \(length)") { try JournalCheckpointFile.parse(cut) }
            }
        }
    }

    @Test("lines swapped are refused: sequences and times only grow down the file")
    func reordered() throws {
        let (_, checkpoints) = try Self.sampleFile()
        let swapped = JournalCheckpointFile.header + "\n" + checkpoints[0].line + checkpoints[2].line + checkpoints[1].line
        #expect {
            try JournalCheckpointFile.parse(Array(swapped.utf8))
        } throws: { error in
            (error as? CheckpointFileError)?.line == 4 && "\(error)".contains("re-ordered")
        }
        let sameSequence = JournalCheckpointFile.header + "\n" + checkpoints[0].line + checkpoints[0].line
        #expect(throws: CheckpointFileError.self) { try JournalCheckpointFile.parse(Array(sameSequence.utf8)) }
        var earlier = checkpoints[1]
        earlier.time = checkpoints[0].time.addingTimeInterval(-1)
        let timeBack = JournalCheckpointFile.header + "\n" + checkpoints[0].line + earlier.line
        #expect(throws: CheckpointFileError.self) { try JournalCheckpointFile.parse(Array(timeBack.utf8)) }
    }

    @Test("append writes the header once, then one line per checkpoint, mode 0600; never a smaller sequence")
    func append() throws {
        let temp = try TemporaryDirectory()
        let (_, checkpoints) = try Self.sampleFile()
        for checkpoint in checkpoints { try JournalCheckpointFile.append(checkpoint, stateDirectory: temp.path) }
        let path = JournalCheckpointFile.path(stateDirectory: temp.path)
        #expect(try JournalCheckpointFile.read(path: path) == checkpoints)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == (try Self.sampleFile().text))
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(throws: StoreError.self) { try JournalCheckpointFile.append(checkpoints[1], stateDirectory: temp.path) }
        // A damaged file is not appended to (a checkpoint after garbage could not be trusted either).
        try Data((text + "garbage").utf8).write(to: URL(fileURLWithPath: path))
        let later = JournalCheckpoint(sequence: 500, entryHash: Self.hashes[0], time: Date())
        #expect(throws: StoreError.self) { try JournalCheckpointFile.append(later, stateDirectory: temp.path) }
        #expect(throws: CheckpointFileError.self) { try JournalCheckpointFile.read(path: temp.path + "/missing") }
    }

    @Test("a chain that still holds every checkpoint passes; a truncated or rebuilt one is named per checkpoint")
    func checkAgainstChain() throws {
        let db = try MailGateDatabase.inMemory()
        for index in 1...4 {
            let sequence = try journal(db, message: "check \(index)")
            try db.completeJournalEntry(sequence: sequence, status: .sent, upstreamReply: "250 ok")
        }
        let entries = try db.journalEntries()
        let kept = [(Int64(2), entries[1].entryHash), (Int64(4), entries[3].entryHash)]
        #expect(JournalCheckpointCheck.problems(entries: entries, checkpoints: kept).isEmpty)
        // Truncated: entries 3 and 4 gone.
        let truncated = JournalCheckpointCheck.problems(entries: Array(entries.prefix(2)), checkpoints: kept)
        #expect(truncated.count == 1)
        #expect(truncated.first?.contains("no entry 4 any more") == true)
        // Rebuilt from entry 2 on: a changed recipient, every later hash recomputed consistently.
        var rebuilt = entries
        rebuilt[1].rcptTo = ["mallory@example.net"]
        for index in 1..<rebuilt.count {
            rebuilt[index].previousHash = rebuilt[index - 1].entryHash
            rebuilt[index].entryHash = rebuilt[index].computeHash(previousHash: rebuilt[index].previousHash)
        }
        #expect(JournalVerifier.verify(entries: rebuilt, archiveDirectory: nil).isOK)
        let problems = JournalCheckpointCheck.problems(entries: rebuilt, checkpoints: kept)
        #expect(problems.count == 2)
        #expect(problems.allSatisfy { $0.contains("was rebuilt after the checkpoint was taken") })
    }
}
