// TLSTests: garbage and tampering from the network end in a TLSError, never a crash or a hang.

import MailGateTesting
import TLS
import Testing

@Suite struct TLSHostileInputTests {
    static let garbage: [[UInt8]] = [
        Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8),
        Array("EHLO example.com\r\n".utf8),
        [0x16, 0x03, 0x01, 0xFF, 0xFF] + [UInt8](repeating: 0x41, count: 64),  // record longer than allowed
        [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],  // truncated ClientHello body
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],  // fatal alert instead of a hello
        (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) },
        [UInt8](repeating: 0, count: 100),
    ]

    @Test(arguments: garbage)
    func garbageToAServerFailsTheHandshake(bytes: [UInt8]) throws {
        let (_, server) = try connectedPair()
        server.receiveFromNetwork(bytes)
        #expect(
            performing: { _ = try server.handshake() }, throws: { ($0 as? TLSError).map(\.isHandshakeFailure) == true })
        // The failure sticks; more input does not revive the session.
        server.receiveFromNetwork(bytes)
        #expect(throws: TLSError.self) { try server.handshake() }
        #expect(throws: TLSError.self) { try server.readPlaintext(maximumCount: 10) }
        #expect(throws: TLSError.self) { try server.writePlaintext([1]) }
        _ = server.takeNetworkOutput()  // an alert may be queued; taking it must be safe
    }

    @Test(arguments: garbage)
    func garbageToAClientFailsTheHandshake(bytes: [UInt8]) throws {
        let (client, _) = try connectedPair()
        #expect(try client.handshake() == .needMoreInput)
        _ = client.takeNetworkOutput()
        client.receiveFromNetwork(bytes)
        #expect(
            performing: { _ = try client.handshake() }, throws: { ($0 as? TLSError).map(\.isHandshakeFailure) == true })
    }

    @Test func tamperedRecordAfterHandshakeIsAProtocolError() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        try client.writePlaintext(Array("RCPT TO:<a@example.com>\r\n".utf8))
        var record = client.takeNetworkOutput()
        record[record.count - 3] ^= 0x20
        server.receiveFromNetwork(record)
        #expect(
            performing: { _ = try server.readPlaintext(maximumCount: 1024) },
            throws: { ($0 as? TLSError).map(\.isProtocolError) == true })
        #expect(throws: TLSError.self) { try server.readPlaintext(maximumCount: 1024) }
    }

    @Test func dataBeforeAnErrorIsDeliveredFirst() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        try client.writePlaintext(Array("good".utf8))
        let good = client.takeNetworkOutput()
        try client.writePlaintext(Array("evil".utf8))
        var bad = client.takeNetworkOutput()
        bad[bad.count - 1] ^= 0x01
        server.receiveFromNetwork(good + bad)
        #expect(try server.readPlaintext(maximumCount: 1024) == .data(Array("good".utf8)))
        #expect(throws: TLSError.self) { try server.readPlaintext(maximumCount: 1024) }
    }
}
