// TransportTests: TLS over loopback: a 50 MiB relay through two TLS hops, STARTTLS, refused certificates.

import Dispatch
import Foundation
import MailCore
import MailGateTesting
import Synchronization
import TLS
import Testing
@testable import Transport

@Suite(.timeLimit(.minutes(2))) struct TLSTransportTests {
    let certificates: TestCertificateSet
    let serverContext: TLSContext
    let clientContext: TLSContext

    init() throws {
        certificates = try TestCertificates.make()
        serverContext = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        clientContext = try TLSContext.client(caFile: certificates.caFile)
    }

    @Test func fiftyMebibytesThroughTwoTLSHopsArriveByteExact() async throws {
        let total = 50 << 20
        let upstream = try AsyncListener(address: loopback(), tls: serverContext)
        defer { upstream.close() }
        let verdict = Task { () throws -> (Int, Bool) in
            let connection = try await upstream.accept()
            var expected = PayloadGenerator(seed: 42)
            var received = 0
            var intact = true
            while let chunk = try await connection.readAvailable() {
                if intact && expected.next(chunk.count) != chunk { intact = false }
                received += chunk.count
            }
            try await connection.write(bytes("OK \(received)\r\n"))
            connection.shutdownWrite()
            return (received, intact)
        }
        let front = try RelayFront(
            upstream: upstream.boundAddress, frontTLS: TLSContextBox(context: serverContext),
            upstreamTLS: TLSContextBox(context: clientContext))
        defer { front.listener.close() }
        let client = try await AsyncConnection.connect(
            to: front.listener.boundAddress, tls: clientContext, serverName: "localhost", timeout: 10)
        defer { client.close() }
        #expect(await client.tlsProtocolVersion != nil)
        var generator = PayloadGenerator(seed: 42)
        var sent = 0
        while sent < total {
            let chunk = generator.next(min(256 << 10, total - sent))
            try await client.write(chunk)
            sent += chunk.count
        }
        client.shutdownWrite()
        #expect(try await client.readLine(maximumLength: 100) == bytes("OK \(total)"))
        let (received, intact) = try await verdict.value
        #expect(received == total)
        #expect(intact)
        try await front.finished.next(within: 10, "the relay to finish")
    }

    @Test func startTLSMidStreamDiscardsInjectedPlaintext() async throws {
        let listener = try AsyncListener(address: loopback(), tls: nil)
        defer { listener.close() }
        let serverContext = self.serverContext
        let serverTask = Task { () throws -> [String] in
            let server = try await listener.accept()
            defer { server.close() }
            var seen: [String] = []
            try await server.write(bytes("220 ready\r\n"))
            seen.append(String(decoding: try await server.readLine(maximumLength: 512), as: UTF8.self))
            try await server.write(bytes("250 hello\r\n"))
            seen.append(String(decoding: try await server.readLine(maximumLength: 512), as: UTF8.self))
            try await server.startServerTLS(context: serverContext, goAhead: bytes("220 go ahead\r\n"))
            seen.append(await server.tlsProtocolVersion ?? "plaintext")
            seen.append(String(decoding: try await server.readLine(maximumLength: 512), as: UTF8.self))
            try await server.write(bytes("250 secure\r\n"))
            return seen
        }
        let client = try await AsyncConnection.connect(to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        #expect(try await client.readLine(maximumLength: 512) == bytes("220 ready"))
        try await client.write(bytes("EHLO client\r\n"))
        #expect(try await client.readLine(maximumLength: 512) == bytes("250 hello"))
        // One write, one segment: the injected command sits in the server's buffer when it switches to TLS.
        try await client.write(bytes("STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n"))
        #expect(try await client.readLine(maximumLength: 512) == bytes("220 go ahead"))
        try await client.startTLS(context: clientContext, serverName: "localhost")
        try await client.write(bytes("EHLO again\r\n"))
        #expect(try await client.readLine(maximumLength: 512) == bytes("250 secure"))
        let seen = try await serverTask.value
        #expect(seen[0] == "EHLO client")
        #expect(seen[1] == "STARTTLS")
        #expect(seen[2].hasPrefix("TLSv1"))
        #expect(seen[3] == "EHLO again")
    }

    @Test func untrustedCertificateIsRefused() async throws {
        let listener = try AsyncListener(address: loopback(), tls: serverContext)
        defer { listener.close() }
        let systemTrustOnly = try TLSContext.client()
        try await expectVerificationFailure {
            _ = try await AsyncConnection.connect(
                to: listener.boundAddress, tls: systemTrustOnly, serverName: "localhost", timeout: 5)
        }
    }

    @Test func wrongHostNameIsRefused() async throws {
        let wrongHost = try TLSContext.server(
            certificateChainFile: certificates.wrongHostChainFile, privateKeyFile: certificates.wrongHostKeyFile)
        let listener = try AsyncListener(address: loopback(), tls: wrongHost)
        defer { listener.close() }
        try await expectVerificationFailure {
            _ = try await AsyncConnection.connect(
                to: listener.boundAddress, tls: clientContext, serverName: "localhost", timeout: 5)
        }
    }

    @Test func expiredCertificateIsRefused() async throws {
        let expired = try TLSContext.server(
            certificateChainFile: certificates.expiredChainFile, privateKeyFile: certificates.expiredKeyFile)
        let listener = try AsyncListener(address: loopback(), tls: expired)
        defer { listener.close() }
        try await expectVerificationFailure {
            _ = try await AsyncConnection.connect(
                to: listener.boundAddress, tls: clientContext, serverName: "localhost", timeout: 5)
        }
    }

    @Test func implicitTLSServerSeesAFailedHandshakeAsTLSError() async throws {
        let listener = try AsyncListener(address: loopback(), tls: serverContext)
        defer { listener.close() }
        let client = try await AsyncConnection.connect(to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        try await client.write(bytes("EHLO this is not a TLS ClientHello\r\n"))
        let server = try await listener.accept()
        do {
            _ = try await server.readLine(maximumLength: 512)
            Issue.record("plaintext was accepted on an implicit-TLS listener")
        } catch {
            guard case .tls = error else {
                Issue.record("expected a TLS error, got \(error)")
                return
            }
        }
    }

    private func expectVerificationFailure(_ body: () async throws -> Void) async throws {
        do {
            try await body()
            Issue.record("the connection was accepted")
        } catch {
            guard case .tls(.certificateVerificationFailed)? = error as? TransportError else {
                Issue.record("expected certificateVerificationFailed, got \(error)")
                return
            }
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct ConnectionSTARTTLSTests {
    @Test func lineModeServerDiscardsPipelinedPlaintextAtStartTLS() async throws {
        let certificates = try TestCertificates.make()
        let serverContext = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        let clientContext = try TLSContext.client(caFile: certificates.caFile)
        let upgraded = Inbox<TransportError?>()
        let server = try RecordingServer(reply: { connection, event in
            guard case .line(let line) = event, line == bytes("STARTTLS") else { return }
            connection.write(bytes("220 go ahead\r\n"))
            connection.startServerTLS(context: serverContext) { upgraded.put($0) }
        })
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let (connection, events) = try await server.accepted.next()
        try await client.write(bytes("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.com>\r\n"))
        #expect(try await events.next() == .line(bytes("STARTTLS")))
        #expect(try await client.readLine(maximumLength: 100) == bytes("220 go ahead"))
        try await client.startTLS(context: clientContext, serverName: "127.0.0.1")
        #expect(try await upgraded.next() == nil)
        #expect(await onQueue(connection) { $0.isTLS && $0.tlsProtocolVersion != nil })
        try await client.write(bytes("EHLO after\r\n"))
        #expect(try await events.next() == .line(bytes("EHLO after")))
        await onQueue(connection) { $0.write(bytes("250 fine\r\n")) }
        #expect(try await client.readLine(maximumLength: 100) == bytes("250 fine"))
    }
}
