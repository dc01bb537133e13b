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
}
