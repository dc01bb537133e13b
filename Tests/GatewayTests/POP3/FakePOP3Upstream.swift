// GatewayTests/POP3: an Exchange-shaped POP3 server in-process (two-step AUTH XOAUTH2, its CAPA), for the relay.
import Foundation
import MailCore
import Synchronization
import Testing
import Transport

@testable import Gateway

final class FakePOP3Upstream: Sendable {
    struct Record: Sendable {
        var connections = 0
        var tokens: [String] = []
        var emptyLinesAfterChallenge = 0
        /// Commands after login, per connection.
        var commands: [(connection: Int, line: String)] = []
        var closedWithoutQuit = 0
    }

    let listener: AsyncListener
    let acceptedTokens: Mutex<Set<String>>
    let messages: [[UInt8]]
    private let record = Mutex(Record())

    init(acceptedTokens: Set<String>, messages: [[UInt8]]) throws {
        listener = try AsyncListener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil)
        self.acceptedTokens = Mutex(acceptedTokens)
        self.messages = messages
        let listener = self.listener
        Task { [self] in
            while let connection = try? await listener.accept() {
                Task { await self.serve(connection) }
            }
        }
    }

    var address: HostPort { listener.boundAddress }
    var snapshot: Record { record.withLock { $0 } }
    func stop() { listener.close() }

    private func send(_ connection: AsyncConnection, _ text: String) async throws {
        try await connection.write(Array((text + "\r\n").utf8))
    }

    private func serve(_ connection: AsyncConnection) async {
        let number = record.withLock { record -> Int in
            record.connections += 1
            return record.connections
        }
        defer { connection.close() }
        let reader = PeerReader(connection)
        var loggedIn = false
        do {
            try await send(connection, "+OK The Microsoft Exchange POP3 service is ready. [TQBSADEA]")
            while true {
                let line = try await reader.line()
                let upper = line.uppercased()
                if !loggedIn {
                    guard upper == "AUTH XOAUTH2" else {
                        try await send(connection, "-ERR Command is not valid in this state.")
                        continue
                    }
                    try await send(connection, "+ ")
                    let response = try await reader.line()
                    let decoded = String(decoding: Base64Codec.standard.decode(response, padding: .optional) ?? [], as: UTF8.self)
                    let token = decoded.components(separatedBy: "auth=Bearer ").last?.replacingOccurrences(of: "\u{1}", with: "") ?? ""
                    record.withLock { $0.tokens.append(token) }
                    if acceptedTokens.withLock({ $0.contains(token) }) {
                        loggedIn = true
                        try await send(connection, "+OK User successfully authenticated.")
                    } else {
                        try await send(connection, "+ eyJzdGF0dXMiOiI0MDEifQ==")
                        if try await reader.line().isEmpty { record.withLock { $0.emptyLinesAfterChallenge += 1 } }
                        try await send(connection, "-ERR Authentication failure: unknown user name or bad password.")
                    }
                    continue
                }
                record.withLock { $0.commands.append((number, line)) }
                let words = upper.split(separator: " ")
                switch words.first {
                case "CAPA":
                    try await send(connection, "+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n.")
                case "STAT":
                    try await send(connection, "+OK \(messages.count) \(messages.reduce(0) { $0 + $1.count })")
                case "RETR":
                    let index = (words.count > 1 ? Int(words[1]) ?? 0 : 0) - 1
                    guard messages.indices.contains(index) else {
                        try await send(connection, "-ERR No such message")
                        continue
                    }
                    var stuffed: [UInt8] = Array("+OK \(messages[index].count) octets\r\n".utf8)
                    var atStart = true
                    for byte in messages[index] {
                        if atStart && byte == UInt8(ascii: ".") { stuffed.append(byte) }
                        stuffed.append(byte)
                        atStart = byte == 0x0A
                    }
                    try await connection.write(stuffed + Array(".\r\n".utf8))
                case "QUIT":
                    try await send(connection, "+OK Microsoft Exchange Server POP3 server signing off.")
                    return
                default:
                    try await send(connection, "+OK")
                }
            }
        } catch {
            record.withLock { $0.closedWithoutQuit += 1 }
        }
    }
}

@Suite("POP3 gateway relaying to a fake Exchange POP3 server", .serialized)
struct POP3RelayGatewayTests {
    static let message = Array("Subject: relay\r\n\r\n.leading dot\r\n.\r\nend\r\n".utf8)

    static func harness(tokens: Set<String>) throws -> (POP3GatewayHarness, FakePOP3Upstream) {
        let upstream = try FakePOP3Upstream(acceptedTokens: tokens, messages: [message])
        let address = upstream.address
        let harness = try POP3GatewayHarness(provider: nil) { _ in
            POP3AccountSettings(source: .pop3(UpstreamEndpoint(address: address, security: .none, caFile: nil, allowInsecure: true)))
        }
        return (harness, upstream)
    }

    @Test("first token refused: the error challenge is answered, one forced refresh; then CAPA rewritten, RETR relayed, QUIT upstream")
    func relay() async throws {
        let (harness, upstream) = try Self.harness(tokens: ["token-2"])
        defer { harness.stop(); upstream.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        #expect(try await client.pop3Login() == "+OK Logged in")
        #expect(upstream.snapshot.tokens == ["token-1", "token-2"])
        #expect(upstream.snapshot.emptyLinesAfterChallenge == 1)
        try await client.send("CAPA\r\nUSER bob\r\nRETR 1\r\nSTAT\r\n")
        #expect(try await client.line() == "+OK")
        #expect(try await client.multiline() == ["TOP", "UIDL"])
        #expect(try await client.line() == "-ERR Already logged in")
        #expect(try await client.line() == "+OK \(Self.message.count) octets")
        let body = try await client.multiline().map { $0 + "\r\n" }.joined()
        #expect(Array(body.utf8) == Self.message)
        #expect(try await client.line() == "+OK 1 \(Self.message.count)")
        try await client.send("QUIT\r\n")
        #expect(try await client.line() == "+OK Microsoft Exchange Server POP3 server signing off.")
        #expect(try await client.line(within: 5) == nil, "the session ends with the upstream's")
        #expect(upstream.snapshot.commands.map(\.line) == ["CAPA", "RETR 1", "STAT", "QUIT"])
        #expect(try await harness.wait { harness.counters.value("pop3.retr") == 1 })
        // Relayed octets are counted as the server sent them: two stuffed dots more than the message.
        #expect(try await harness.wait { harness.counters.value("pop3.retr.bytes") == Self.message.count + 2 })
    }

    @Test("a dropped client connection never sends QUIT upstream (so nothing is deleted there)")
    func dropSendsNoQuit() async throws {
        let (harness, upstream) = try Self.harness(tokens: ["token-1"])
        defer { harness.stop(); upstream.stop() }
        let client = try await harness.client()
        _ = try await client.line()
        _ = try await client.pop3Login()
        try await client.send("DELE 1\r\n")
        #expect(try await client.line() == "+OK")
        client.close()
        #expect(try await harness.wait { upstream.snapshot.closedWithoutQuit == 1 })
        #expect(!upstream.snapshot.commands.contains { $0.line == "QUIT" })
    }

    @Test("both tokens refused: -ERR [AUTH] … run mailgate account connect")
    func refusedTwice() async throws {
        let (harness, upstream) = try Self.harness(tokens: [])
        defer { harness.stop(); upstream.stop() }
        let client = try await harness.client()
        defer { client.close() }
        _ = try await client.line()
        let answer = try await client.pop3Login()
        #expect(answer?.hasPrefix("-ERR [AUTH] The Microsoft 365 sign-in of alice@contoso.com must be renewed") == true, "\(answer ?? "nil")")
        #expect(upstream.snapshot.connections == 2)
    }
}
