// TLSTests: an idle TLS session keeps no big buffers (issue 8: memory per idle IMAP session pair): OpenSSL's
// record buffers are released (SSL_MODE_RELEASE_BUFFERS) and a drained memory BIO that grew is replaced.

import MailGateTesting
import Testing

@testable import TLS

@Suite struct TLSIdleMemoryTests {
    @Test func bothContextsReleaseRecordBuffersWhenIdle() throws {
        let certificates = try TestCertificates.make()
        #expect(try TLSContext.client(caFile: certificates.caFile).releasesBuffersWhenIdle)
        #expect(try TLSContext.sharedClient(caFile: certificates.caFile).releasesBuffersWhenIdle)
        let server = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        #expect(server.releasesBuffersWhenIdle)
    }

    @Test func aBigTransferLeavesNoBigBIOBehindAndDataStillFlows() throws {
        let (client, server) = try connectedPair()
        let outcome = runHandshake(client: client, server: server)
        try #require(outcome.clientComplete && outcome.serverComplete)
        _ = try transfer(from: server, to: client)  // session tickets
        #expect(client.allocatedNetworkBufferBytes <= TLSConnection.retainedBIOBound)

        // 300 KiB in one piece: both BIOs grow to hold it whole.
        let big = (0..<(300 * 1_024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try server.writePlaintext(big)
        let ciphertext = server.takeNetworkOutput()
        #expect(ciphertext.count > big.count)
        #expect(server.allocatedNetworkBufferBytes <= TLSConnection.retainedBIOBound, "the drained output BIO is dropped")
        client.receiveFromNetwork(ciphertext)
        #expect(client.allocatedNetworkBufferBytes > 300 * 1_024, "holding the records")
        var received: [UInt8] = []
        while case .data(let bytes) = try client.readPlaintext(maximumCount: 65_536) { received += bytes }
        #expect(received == big)
        #expect(client.allocatedNetworkBufferBytes <= TLSConnection.retainedBIOBound, "the drained input BIO is dropped")

        // The fresh BIOs work: both directions, split records included.
        try client.writePlaintext(Array("A1 NOOP\r\n".utf8))
        #expect(try transfer(from: client, to: server) == Array("A1 NOOP\r\n".utf8))
        try server.writePlaintext(Array("A1 OK done\r\n".utf8))
        let reply = server.takeNetworkOutput()
        client.receiveFromNetwork(Array(reply.prefix(7)))
        #expect(try client.readPlaintext(maximumCount: 100) == .needMoreInput)
        client.receiveFromNetwork(Array(reply.dropFirst(7)))
        #expect(try client.readPlaintext(maximumCount: 100) == .data(Array("A1 OK done\r\n".utf8)))
    }

    /// A full handshake, then the server's tickets read, as an upstream session does after login.
    static func connect(_ clientContext: TLSContext, _ serverContext: TLSContext, name: String = "localhost") throws
        -> TLSConnection
    {
        let client = try TLSConnection(context: clientContext, serverName: name)
        let server = try TLSConnection(context: serverContext, serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        try #require(outcome.clientError == nil && outcome.serverError == nil, "\(outcome)")
        try server.writePlaintext(Array("* OK ready\r\n".utf8))
        #expect(try transfer(from: server, to: client) == Array("* OK ready\r\n".utf8))
        return client
    }

    @Test func aSecondConnectionToTheSameNameResumesTheVerifiedSession() throws {
        let certificates = try TestCertificates.make()
        let clientContext = try TLSContext.client(caFile: certificates.caFile)
        let serverContext = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        let first = try Self.connect(clientContext, serverContext)
        #expect(!first.isResumed)
        let second = try Self.connect(clientContext, serverContext)
        #expect(second.isResumed, "the remembered session is offered and taken")
        #expect(second.protocolVersion == "TLSv1.3")
        // Another name never gets it (it was verified for localhost only): a full handshake, verified for that name.
        let byAddress = try Self.connect(clientContext, serverContext, name: "127.0.0.1")
        #expect(!byAddress.isResumed)
        // A fresh client context (another trust configuration) has nothing to offer.
        let fresh = try Self.connect(try TLSContext.client(caFile: certificates.caFile), serverContext)
        #expect(!fresh.isResumed)
    }

    @Test func aServerThatCannotResumeGetsAFullVerifiedHandshake() throws {
        let certificates = try TestCertificates.make()
        let clientContext = try TLSContext.client(caFile: certificates.caFile)
        let serverContext = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        _ = try Self.connect(clientContext, serverContext)
        // Another server (other ticket keys) under the same name: the offered session is declined, the handshake
        // is a full one, and its certificate is checked: an expired one fails as it would without the cache.
        let stranger = try TLSContext.server(
            certificateChainFile: certificates.expiredChainFile, privateKeyFile: certificates.expiredKeyFile)
        let client = try TLSConnection(context: clientContext, serverName: "localhost")
        let server = try TLSConnection(context: stranger, serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError?.isVerificationFailure == true, "\(outcome)")
        #expect(!client.isResumed)
    }
}
