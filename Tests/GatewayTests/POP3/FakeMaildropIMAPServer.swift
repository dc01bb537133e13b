// GatewayTests/POP3: a small IMAP server holding an INBOX, for the POP3-over-IMAP maildrop: SELECT, the list FETCH,
// UID FETCH of BODY.PEEK[] / [HEADER] / partial windows, UID STORE, UID EXPUNGE / EXPUNGE, with or without UIDPLUS.
import Foundation
import MailCore
import POP3
import Synchronization
import Testing
import Transport

@testable import Gateway

final class FakeMaildropIMAPServer: Sendable {
    struct Message: Sendable {
        var uid: UInt64
        var bytes: [UInt8]
        var deleted = false
    }

    let listener: AsyncListener
    let uidPlus: Bool
    let uidValidity: UInt64 = 1_700_000_001
    let inbox: Mutex<[Message]>
    let commands = Mutex<[String]>([])

    init(messages: [[UInt8]], uidPlus: Bool) throws {
        listener = try AsyncListener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil)
        self.uidPlus = uidPlus
        inbox = Mutex(messages.enumerated().map { Message(uid: UInt64(10 + 2 * $0.offset), bytes: $0.element) })
        let listener = self.listener
        Task { [self] in
            while let connection = try? await listener.accept() {
                Task { await self.serve(connection) }
            }
        }
    }

    var address: HostPort { listener.boundAddress }
    func stop() { listener.close() }
    var uids: [UInt64] { inbox.withLock { $0.map(\.uid) } }

    private func send(_ connection: AsyncConnection, _ text: String) async throws {
        try await connection.write(Array((text + "\r\n").utf8))
    }

    private func serve(_ connection: AsyncConnection) async {
        defer { connection.close() }
        let reader = PeerReader(connection)
        do {
            try await send(connection, "* OK IMAP ready")
            while true {
                let line = try await reader.line()
                let words = line.split(separator: " ").map(String.init)
                guard words.count >= 2 else { continue }
                let tag = words[0]
                let command = words.dropFirst().joined(separator: " ")
                commands.withLock { $0.append(command.hasPrefix("AUTHENTICATE") ? "AUTHENTICATE" : command) }
                let upper = command.uppercased()
                if upper == "CAPABILITY" {
                    try await send(connection, "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 IDLE\(uidPlus ? " UIDPLUS" : "")")
                    try await send(connection, "\(tag) OK CAPABILITY completed")
                } else if upper.hasPrefix("AUTHENTICATE XOAUTH2") {
                    try await send(connection, "\(tag) OK AUTHENTICATE completed")
                } else if upper == "SELECT INBOX" {
                    let count = inbox.withLock { $0.count }
                    try await send(connection, "* \(count) EXISTS")
                    try await send(connection, "* OK [UIDVALIDITY \(uidValidity)] UIDs valid")
                    try await send(connection, "\(tag) OK [READ-WRITE] SELECT completed")
                } else if upper == "FETCH 1:* (UID RFC822.SIZE)" {
                    let list = inbox.withLock { $0 }
                    for (index, message) in list.enumerated().reversed() {  // any order: the maildrop sorts by number
                        try await send(connection, "* \(index + 1) FETCH (RFC822.SIZE \(message.bytes.count) UID \(message.uid))")
                    }
                    try await send(connection, "\(tag) OK FETCH completed")
                } else if upper.hasPrefix("UID FETCH ") {
                    let uid = UInt64(words[3]) ?? 0
                    let item = words.dropFirst(4).joined(separator: " ")
                    let found = inbox.withLock { $0.enumerated().first { $0.element.uid == uid } }
                    guard let (index, message) = found else {
                        try await send(connection, "\(tag) OK FETCH completed")
                        continue
                    }
                    var data = message.bytes
                    var name = "BODY[]"
                    if item.contains("HEADER") {
                        var filter = POP3TopFilter(bodyLines: 0)
                        data = filter.filter(data)
                        name = "BODY[HEADER]"
                    } else if let open = item.firstIndex(of: "<"), let close = item.firstIndex(of: ">") {
                        let numbers = item[item.index(after: open)..<close].split(separator: ".").compactMap { Int($0) }
                        let start = min(numbers[0], data.count)
                        data = Array(data[start..<min(start + numbers[1], data.count)])
                        name = "BODY[]<\(numbers[0])>"
                    }
                    try await connection.write(Array("* \(index + 1) FETCH (UID \(uid) \(name) {\(data.count)}\r\n".utf8) + data + Array(")\r\n".utf8))
                    try await send(connection, "\(tag) OK FETCH completed")
                } else if upper.hasPrefix("UID STORE ") {
                    let set = Set(words[3].split(separator: ",").compactMap { UInt64($0) })
                    inbox.withLock { inbox in for i in inbox.indices where set.contains(inbox[i].uid) { inbox[i].deleted = true } }
                    try await send(connection, "\(tag) OK STORE completed")
                } else if upper.hasPrefix("UID EXPUNGE ") {
                    let set = Set(words[3].split(separator: ",").compactMap { UInt64($0) })
                    inbox.withLock { $0.removeAll { $0.deleted && set.contains($0.uid) } }
                    try await send(connection, "\(tag) OK EXPUNGE completed")
                } else if upper == "EXPUNGE" {
                    inbox.withLock { $0.removeAll { $0.deleted } }
                    try await send(connection, "\(tag) OK EXPUNGE completed")
                } else if upper == "LOGOUT" {
                    try await send(connection, "* BYE logging out")
                    try await send(connection, "\(tag) OK LOGOUT completed")
                    return
                } else {
                    try await send(connection, "\(tag) BAD unknown")
                }
            }
        } catch {}
    }
}

@Suite("POP3 over IMAP against a small IMAP server", .serialized)
struct POP3IMAPMaildropCommandTests {
    static let messages: [[UInt8]] = [
        Array("Subject: one\r\n\r\nfirst\r\n.dotted\r\n".utf8),
        Array(("Subject: two\r\n\r\n" + (0..<3000).map { "line \($0) " + String(repeating: "y", count: 40) + "\r\n" }.joined()).utf8),
        Array("Subject: three\r\n\r\nthird\r\n".utf8),
    ]

    static func harness(uidPlus: Bool) throws -> (POP3GatewayHarness, FakeMaildropIMAPServer) {
        let server = try FakeMaildropIMAPServer(messages: messages, uidPlus: uidPlus)
        let address = server.address
        let harness = try POP3GatewayHarness(provider: nil) { _ in
            POP3AccountSettings(source: .imap(UpstreamEndpoint(address: address, security: .none, caFile: nil, allowInsecure: true)))
        }
        return (harness, server)
    }

    @Test("UIDL is UIDVALIDITY.UID, sizes RFC822.SIZE; RETR exact; TOP over several 64 KiB windows exact")
    func listingAndRetrieval() async throws {
        let (harness, server) = try Self.harness(uidPlus: true)
        defer { harness.stop(); server.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login()?.hasPrefix("+OK Logged in; 3 messages") == true)
        try await client.send("UIDL\r\nLIST\r\n")
        _ = try await client.line()
        #expect(try await client.multiline() == ["1 1700000001.10", "2 1700000001.12", "3 1700000001.14"])
        _ = try await client.line()
        #expect(try await client.multiline() == Self.messages.enumerated().map { "\($0.offset + 1) \($0.element.count)" })
        for number in 1...3 {
            try await client.send("RETR \(number)\r\n")
            #expect(try await client.line() == "+OK \(Self.messages[number - 1].count) octets")
            #expect(Array(try await client.multiline().map { $0 + "\r\n" }.joined().utf8) == Self.messages[number - 1])
        }
        // 2000 lines of ~52 octets (~104 KB): two 64 KiB windows; the rest of the 156 KB message is never fetched.
        try await client.send("TOP 2 2000\r\n")
        _ = try await client.line()
        let top = try await client.multiline()
        #expect(top.count == 2 + 2000 && top.last?.hasPrefix("line 1999 ") == true)
        let fetches = server.commands.withLock { $0 }.filter { $0.hasPrefix("UID FETCH 12 ") }
        #expect(fetches.suffix(2) == ["UID FETCH 12 (BODY.PEEK[]<0.65536>)", "UID FETCH 12 (BODY.PEEK[]<65536.65536>)"], "\(fetches)")
        try await client.send("TOP 1 0\r\n")
        _ = try await client.line()
        #expect(try await client.multiline() == ["Subject: one", ""])
        #expect(server.commands.withLock { $0.last } == "UID FETCH 10 (BODY.PEEK[HEADER])")
    }

    @Test(arguments: [true, false])
    func deleAndQuitExpunges(uidPlus: Bool) async throws {
        let (harness, server) = try Self.harness(uidPlus: uidPlus)
        defer { harness.stop(); server.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("DELE 1\r\nDELE 3\r\nQUIT\r\n")
        _ = try await client.line()
        _ = try await client.line()
        #expect(try await client.line() == "+OK MailGate POP3 signing off (2 messages deleted)")
        let commands = server.commands.withLock { $0 }
        #expect(commands.contains("UID STORE 10,14 +FLAGS.SILENT (\\Deleted)"), "\(commands)")
        #expect(commands.contains(uidPlus ? "UID EXPUNGE 10,14" : "EXPUNGE"), "\(commands)")
        #expect(server.uids == [12])
    }

    @Test("DELE then a dropped connection: no STORE, no EXPUNGE, everything still there")
    func dropDeletesNothing() async throws {
        let (harness, server) = try Self.harness(uidPlus: true)
        defer { harness.stop(); server.stop() }
        let client = try await harness.client()
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("DELE 1\r\n")
        _ = try await client.line()
        client.close()
        #expect(try await harness.wait { server.commands.withLock { $0.last } == "LOGOUT" })
        #expect(!server.commands.withLock { $0 }.contains { $0.contains("STORE") || $0.contains("EXPUNGE") })
        #expect(server.uids == [10, 12, 14])
    }
}
