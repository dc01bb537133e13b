// GatewayTests/EndToEnd: SentFolderAudit against the stand-in's Dovecot with a journal of 95 messages: several
// OR batches, a German Sent folder found by name, duplicates that must not hide a missing message, progress.

import Foundation
import Store
import Synchronization
import Testing

@testable import Gateway

extension StandInTests {
    @Suite("Sent-folder audit against Dovecot: batches, duplicates, German names")
    struct SentFolderAuditEndToEndTests {
        static let hans = "hans@contoso.test"

        /// A journal entry as `serve` would have written it for a message `id` hans sent.
        static func entry(_ sequence: Int64, _ id: String, status: JournalStatus = .sent) -> JournalEntry {
            JournalEntry(
                sequence: sequence, status: status, createdAt: Date(timeIntervalSince1970: 1_796_000_000 + Double(sequence)),
                accountEmail: hans, listener: "smtp", mailFrom: hans, rcptTo: ["bob@contoso.test"], messageID: id,
                size: 10, sha256: String(repeating: "a", count: 64))
        }

        @Test("95 journaled messages: exactly the 3 absent ones reported; a duplicate or a look-alike hides nothing")
        func batchesAndDuplicates() async throws {
            guard let standIn = StandIn.load() else { return }
            let run = UInt64.random(in: 0...UInt64.max)
            let ids = (1...95).map { "<audit-batch-\(run)-\($0)@contoso.test>" }
            let absent: Set<Int> = [7, 41, 95]  // in the first, second and last batch
            // Files the present ones in "Gesendete Elemente" (hans's Sent, found by its German name), one of them
            // twice, and a message whose Message-ID field merely contains an absent one's.
            var script = "set -e\nconf=\"$1\"\n"
            var arguments = [standIn["DOVECOT_CONF"]]
            for (index, id) in ids.enumerated() where !absent.contains(index + 1) {
                let copies = index == 5 ? 2 : 1
                for _ in 0..<copies {
                    arguments.append("Message-ID: \(id)\r\nSubject: audit \(index + 1)\r\n\r\nbody\r\n")
                    script += "printf '%s' \"${\(arguments.count)}\" | doveadm -c \"$conf\" save -u \(Self.hans) -m 'Gesendete Elemente'\n"
                }
            }
            // The server's HEADER search matches substrings: this one is found by the search for message 41 and
            // must be told apart by the fetched Message-ID.
            arguments.append("Message-ID: <look-alike-\(run)@contoso.test> (was \(ids[40]))\r\nSubject: look-alike\r\n\r\nbody\r\n")
            script += "printf '%s' \"${\(arguments.count)}\" | doveadm -c \"$conf\" save -u \(Self.hans) -m 'Gesendete Elemente'\n"
            let saved = try JournalAuditEndToEndTests.shell(script, arguments)
            #expect(saved.status == 0, "\(saved.stderr)")

            var entries = ids.enumerated().map { Self.entry(Int64($0.offset + 1), $0.element) }
            entries.append(Self.entry(96, "<never-sent-\(run)@contoso.test>", status: .failed))
            let audit = SentFolderAudit(
                endpoint: standIn.endpoint(), sentFolder: nil, credentials: StandInCredentials(standIn), timeout: 30)
            let progress = Mutex<[Int]>([])
            let report = try await audit.run(account: Self.hans, entries: entries) { done, total in
                #expect(total == 95)
                progress.withLock { $0.append(done) }
            }
            #expect(report.folders.first == "Gesendete Elemente")
            #expect(report.checked == 95)
            #expect(report.missing.map(\.sequence) == [7, 41, 95])
            let steps = progress.withLock { $0 }
            #expect(steps.count == 3, "one progress report per batch of \(SentFolderAudit.batchSize): \(steps)")
            #expect(steps.last == 92)
            #expect(steps == steps.sorted())
        }
    }
}
