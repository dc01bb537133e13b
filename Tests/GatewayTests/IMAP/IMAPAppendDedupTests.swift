// GatewayTests/IMAP: a client's APPEND to Sent of a message the journal knows (issue 8 point 6), in-process against
// the fake Exchange: APPENDUID of the copy found in Sent (searched on a side session), the queued copy cancelled.
import Foundation
import MailCore
import MailGateTesting
import Policy
import Synchronization
import Testing
import Transport

@testable import Gateway

/// A journal that answers one Message-ID with a fixed (changeable) `JournaledSend`.
final class FakeSentJournal: IMAPSentJournalDetail, @unchecked Sendable {
    // @unchecked Sendable: `state` is behind a Mutex.
    let state: Mutex<[String: JournaledSend]>
    init(_ entries: [String: JournaledSend]) { state = Mutex(entries) }

    func detailedSend(account: String, messageID: String, since: Date) -> JournaledSend? {
        state.withLock { $0[messageID] }
    }

    func copyState(account: String, messageID: String, since: Date) -> IMAPJournalCopyState {
        switch state.withLock({ $0[messageID] })?.copy {
        case nil: .unknown
        case .queued?: .queued
        default: .filed
        }
    }
}

/// Records cancellations; answers with `result`.
final class FakeCanceller: SentCopyCancelling, @unchecked Sendable {
    let calls = Mutex<[String]>([])
    let result: Bool
    init(result: Bool) { self.result = result }
    func cancelQueuedCopy(accountEmail: String, messageID: String) -> Bool {
        calls.withLock { $0.append("\(accountEmail) \(messageID)") }
        return result
    }
}

@Suite("IMAP APPEND to Sent de-duplicated with AppendDedup (fake Exchange)", .serialized)
struct IMAPAppendDedupTests {
    static let messageID = "<dedup-1@contoso.com>"
    static let message = Array(
        "From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: dedup\r\nMessage-ID: \(messageID)\r\n\r\nHello Bob.\r\n".utf8)

    static func append(_ client: RawIMAPClient, tag: String = "A1", mailbox: String = "Sent") async throws -> [String] {
        try await client.send("\(tag) APPEND \(mailbox) (\\Seen) {\(message.count)+}\r\n")
        try await client.send(bytes: message + [13, 10])
        return try await client.until(tag)
    }

    static func harness(
        _ send: JournaledSend?, mode: SentCopyMode = .auto, found: [UInt32] = [], canceller: FakeCanceller? = nil
    ) throws -> IMAPGatewayHarness {
        var script = FakeIMAPUpstream.Script()
        script.searchResults = [messageID: found]
        let journal = FakeSentJournal(send.map { [messageID: $0] } ?? [:])
        return try IMAPGatewayHarness(
            script: script, settings: { $0.sentCopy = mode }, journal: journal, sentCopyCanceller: canceller)
    }

    @Test("copy made (no UID known): Sent is searched on a side session; OK [APPENDUID 14 9] and nothing stored")
    func madeCopyAnsweredWithAppendUID() async throws {
        let harness = try Self.harness(.init(status: .sent, sentAt: Date(), copy: .made(nil)), found: [4, 9])
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 SELECT INBOX\r\n")
        _ = try await client.until("S1")
        let answer = try await Self.append(client)
        #expect(answer.last == "A1 OK [APPENDUID 14 9] APPEND completed (MailGate: this message is already in Sent)", "\(answer)")
        let record = harness.upstream.snapshot
        #expect(record.appended.isEmpty, "not stored again")
        #expect(record.connections == 2, "one side session")
        let side = record.lines.filter { $0.connection == 2 }.map(\.line)
        #expect(side.contains { $0.hasSuffix("EXAMINE \"Sent Items\"") }, "\(side)")
        #expect(side.contains { $0.contains("UID SEARCH HEADER Message-ID \"\(Self.messageID)\"") }, "\(side)")
        #expect(!record.lines.contains { $0.connection == 1 && $0.line.contains("EXAMINE") }, "the client's session is not disturbed")
        #expect(try await harness.wait { _ in harness.cap.inUse("alice@contoso.com") == 1 }, "the side session's slot is given back")
        try await client.send("N1 NOOP\r\n")
        #expect(try await client.until("N1").last == "N1 OK NOOP completed.")
    }

    @Test("copy made but not found in Sent: the client's APPEND goes through (exactly one copy)")
    func madeButNotFound() async throws {
        let harness = try Self.harness(.init(status: .sent, sentAt: Date(), copy: .made(nil)), found: [])
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        let answer = try await Self.append(client)
        #expect(answer.last?.hasPrefix("A1 OK [APPENDUID 14 7] APPEND completed.") == true, "the upstream's own answer: \(answer)")
        #expect(harness.upstream.snapshot.appended == [Self.message])
    }

    @Test("copy queued, sent_copy = always: the queued copy is cancelled and the client's APPEND filed, no search")
    func queuedAlwaysCancels() async throws {
        let canceller = FakeCanceller(result: true)
        let harness = try Self.harness(
            .init(status: .sent, sentAt: Date(), copy: .queued), mode: .always, found: [9], canceller: canceller)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        let answer = try await Self.append(client)
        #expect(answer.last?.hasPrefix("A1 OK [APPENDUID 14 7]") == true, "\(answer)")
        #expect(canceller.calls.withLock { $0 } == ["alice@contoso.com \(Self.messageID)"])
        let record = harness.upstream.snapshot
        #expect(record.appended == [Self.message])
        #expect(record.connections == 1, "no search for sent_copy = always")
    }

    @Test("copy queued, sent_copy = auto, the server filed it already: APPENDUID of the server's copy, queued copy cancelled")
    func queuedAutoFoundCancels() async throws {
        let canceller = FakeCanceller(result: true)
        let harness = try Self.harness(
            .init(status: .sent, sentAt: Date(), copy: .queued), mode: .auto, found: [12], canceller: canceller)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        let answer = try await Self.append(client)
        #expect(answer.last?.hasPrefix("A1 OK [APPENDUID 14 12]") == true, "\(answer)")
        #expect(harness.upstream.snapshot.appended.isEmpty)
        #expect(try await harness.wait { _ in canceller.calls.withLock { $0.count } == 1 }, "the queued copy is cancelled")
    }

    @Test("copy queued, sent_copy = auto, not in Sent: cancelled and the client's APPEND filed")
    func queuedAutoNotFound() async throws {
        let canceller = FakeCanceller(result: true)
        let harness = try Self.harness(
            .init(status: .sent, sentAt: Date(), copy: .queued), mode: .auto, found: [], canceller: canceller)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        let answer = try await Self.append(client)
        #expect(answer.last?.hasPrefix("A1 OK [APPENDUID 14 7]") == true, "\(answer)")
        #expect(canceller.calls.withLock { $0.count } == 1)
        #expect(harness.upstream.snapshot.appended == [Self.message])
    }

    @Test("not in the journal, or to another folder: forwarded at once, Sent not searched")
    func unknownForwarded() async throws {
        let harness = try Self.harness(nil, found: [9])
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        #expect(try await Self.append(client).last?.hasPrefix("A1 OK [APPENDUID 14 7]") == true)
        #expect(try await Self.append(client, tag: "A2", mailbox: "INBOX").last?.hasPrefix("A2 OK [APPENDUID 14 7]") == true)
        let record = harness.upstream.snapshot
        #expect(record.appended.count == 2)
        #expect(record.connections == 1)
    }

    @Test("the answer carries APPENDUID only when UIDPLUS is offered and the copy is known")
    func answerLine() {
        let copy = ExistingCopy(uidValidity: 3, uid: 8)
        #expect(IMAPAppendDedupAnswer.line(tag: "A", existing: copy, uidPlus: true).hasPrefix("A OK [APPENDUID 3 8] APPEND"))
        #expect(IMAPAppendDedupAnswer.line(tag: "A", existing: copy, uidPlus: false).hasPrefix("A OK APPEND"))
        #expect(IMAPAppendDedupAnswer.line(tag: "A", existing: nil, uidPlus: true).hasPrefix("A OK APPEND"))
    }
}
