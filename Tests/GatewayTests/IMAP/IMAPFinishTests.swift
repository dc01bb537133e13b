// GatewayTests/IMAP: the remaining small points of issue 8 against the fake Exchange: STATUS echoes the client's
// own mailbox name, one BYE only when the upstream says BYE, a configured sent_folder the upstream does not LIST is
// still listed, moves into Sent's children.
import Foundation
import MailCore
import MailGateTesting
import Synchronization
import Testing
import Transport

@testable import Gateway

@Suite("IMAP gateway: the small points of issue 8 (fake Exchange)", .serialized)
struct IMAPFinishTests {
    @Test("STATUS answers with the client's own mailbox name (mapped, or the server's name addressed directly)")
    func statusEchoesClientName() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 STATUS Trash (MESSAGES)\r\n")
        let trash = try await client.until("S1")
        #expect(trash.first == "* STATUS \"Trash\" (MESSAGES 3)", "\(trash)")
        #expect(harness.upstream.snapshot.lines.contains { $0.line == "S1 STATUS \"Deleted Items\" (MESSAGES)" })
        // Addressed by the server's own name: the answer must not rename it to "Sent".
        try await client.send("S2 STATUS \"Sent Items\" (MESSAGES)\r\n")
        let sentItems = try await client.until("S2")
        #expect(sentItems.first == "* STATUS \"Sent Items\" (MESSAGES 3)", "\(sentItems)")
        try await client.send("S3 STATUS \"Sent\" (MESSAGES)\r\n")
        let sent = try await client.until("S3")
        #expect(sent.first == "* STATUS \"Sent\" (MESSAGES 3)", "\(sent)")
        #expect(sent.last?.hasPrefix("S3 OK") == true)
    }

    @Test("an upstream BYE other than token expiry reaches the client once, and the connection ends")
    func oneByeOnly() async throws {
        let harness = try IMAPGatewayHarness(script: .init(byeOn: ["FETCH"]))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("F1 FETCH 1 FLAGS\r\n")
        var lines: [String] = []
        while let line = try await client.line(within: 5) { lines.append(line) }
        #expect(lines == ["* BYE Server shutting down for maintenance"], "exactly one BYE, then the end: \(lines)")
    }

    @Test("a configured sent_folder the upstream does not LIST is still listed as Sent (wildcard patterns that match it)")
    func configuredSentNotListed() async throws {
        var script = FakeIMAPUpstream.Script()
        script.folders = [("INBOX", nil), ("Deleted Items", "\\Trash"), ("Junk Email", "\\Junk")]
        let harness = try IMAPGatewayHarness(script: script, settings: { $0.sentFolder = "Gesendet" })
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("L1 LIST \"\" \"*\"\r\n")
        let all = try await client.until("L1")
        #expect(all.filter { $0.hasSuffix(" Sent") || $0.hasSuffix(" \"Sent\"") }.count == 1, "\(all)")
        #expect(all.contains { $0.hasPrefix("* LIST (\\Sent) \"/\" ") && $0.contains("Sent") }, "\(all)")
        #expect(all.last?.hasPrefix("L1 OK") == true)
        try await client.send("L2 LIST \"\" \"T*\"\r\n")
        let trashOnly = try await client.until("L2")
        #expect(!trashOnly.contains { $0.contains("\\Sent") }, "T* does not match Sent: \(trashOnly)")
        #expect(trashOnly.contains { $0.contains("\\Trash") }, "\(trashOnly)")
        try await client.send("L3 LSUB \"\" \"*\"\r\n")
        let lsub = try await client.until("L3")
        #expect(!lsub.contains { $0.contains("\\Sent") }, "LSUB is the server's to say: \(lsub)")
        try await client.send("S1 SELECT Sent\r\n")
        _ = try await client.until("S1")
        #expect(harness.upstream.snapshot.lines.contains { $0.line == "S1 SELECT Gesendet" || $0.line == "S1 SELECT \"Gesendet\"" })
    }

    @Test("lock_after_send: a move into a child of Sent is allowed (decided), and out of it refused")
    func moveIntoSentChild() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 SELECT INBOX\r\n")
        _ = try await client.until("S1")
        try await client.send("M1 UID MOVE 5 \"Sent/2025\"\r\n")
        let into = try await client.until("M1")
        #expect(into.last?.hasPrefix("M1 OK") == true, "\(into)")
        #expect(harness.upstream.snapshot.lines.contains { $0.line == "M1 UID MOVE 5 \"Sent Items/2025\"" })
        try await client.send("S2 SELECT \"Sent/2025\"\r\n")
        _ = try await client.until("S2")
        try await client.send("M2 UID MOVE 5 INBOX\r\n")
        let out = try await client.until("M2")
        #expect(out.last?.hasPrefix("M2 NO [CANNOT]") == true, "\(out)")
    }

    @Test("the lines of one upstream read reach the client in one write (not one small send per line)")
    func oneWritePerUpstreamBurst() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 SELECT INBOX\r\n")
        _ = try await client.until("S1")
        let before = harness.gateway.relayedClientWrites.reduce(0, +)
        await harness.upstream.push("* 4 EXISTS\r\n* 1 RECENT\r\n* 3 FETCH (FLAGS (\\Seen))")
        #expect(try await client.line() == "* 4 EXISTS")
        #expect(try await client.line() == "* 1 RECENT")
        #expect(try await client.line() == "* 3 FETCH (FLAGS (\\Seen))")
        let writes = harness.gateway.relayedClientWrites.reduce(0, +) - before
        #expect(writes == 1, "three lines of one upstream read, \(writes) writes to the client")
    }
}
