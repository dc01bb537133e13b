// TLSTests: handshakes in memory: success, data both ways, close_notify, and every refusal.

import MailGateTesting
import Testing

@testable import TLS

@Suite struct TLSHandshakeTests {
    @Test func handshakeCompletesWithTheTestCA() throws {
        let (client, server) = try connectedPair()
        #expect(!client.isHandshakeComplete && client.protocolVersion == nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError == nil && outcome.serverError == nil)
        #expect(outcome.clientComplete && outcome.serverComplete)
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(server.protocolVersion == "TLSv1.3")
        #expect(try client.handshake() == .complete)
    }

    @Test func firstHandshakeStepAsksForInputAndProducesAClientHello() throws {
        let (client, server) = try connectedPair()
        #expect(!client.hasNetworkOutput)
        #expect(try client.handshake() == .needMoreInput)
        #expect(client.hasNetworkOutput)
        let hello = client.takeNetworkOutput()
        #expect(hello.first == 0x16)  // handshake record
        #expect(!client.hasNetworkOutput && client.takeNetworkOutput().isEmpty)
        #expect(try server.handshake() == .needMoreInput)  // nothing received yet
        #expect(!server.hasNetworkOutput)
    }

    @Test func ipLiteralIsVerifiedAgainstTheIPSAN() throws {
        let (client, server) = try connectedPair(serverName: "127.0.0.1")
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError == nil && outcome.clientComplete && outcome.serverComplete)
    }

    @Test func handshakeSurvivesOneByteAtATime() throws {
        let (client, server) = try connectedPair()
        for _ in 0..<10 {
            if !client.isHandshakeComplete { _ = try client.handshake() }
            for byte in client.takeNetworkOutput() {
                server.receiveFromNetwork([byte])
                if !server.isHandshakeComplete { _ = try server.handshake() }
            }
            for byte in server.takeNetworkOutput() {
                client.receiveFromNetwork([byte])
                if !client.isHandshakeComplete { _ = try client.handshake() }
            }
            if client.isHandshakeComplete && server.isHandshakeComplete && !client.hasNetworkOutput { break }
        }
        #expect(client.isHandshakeComplete && server.isHandshakeComplete)
    }

    @Test func dataFlowsBothWays() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        try client.writePlaintext(Array("EHLO client\r\n".utf8))
        #expect(try transfer(from: client, to: server) == Array("EHLO client\r\n".utf8))
        try server.writePlaintext(Array("250 OK\r\n".utf8))
        #expect(try transfer(from: server, to: client) == Array("250 OK\r\n".utf8))
        try client.writePlaintext([])  // nothing to send
        #expect(try transfer(from: client, to: server) == [])
    }

    @Test func fiveMebibytesTravelBothWaysIntact() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        var upload = [UInt8](repeating: 0, count: 5 * 1_048_576)
        for index in upload.indices { upload[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        try client.writePlaintext(upload)
        #expect(try transfer(from: client, to: server) == upload)
        let download = Array(upload.reversed())
        try server.writePlaintext(download)
        #expect(try transfer(from: server, to: client) == download)
    }

    @Test func readRespectsMaximumCount() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        let message = (0..<100).map { UInt8($0) }
        try client.writePlaintext(message)
        server.receiveFromNetwork(client.takeNetworkOutput())
        var received: [UInt8] = []
        while case .data(let bytes) = try server.readPlaintext(maximumCount: 30) {
            #expect(bytes.count <= 30 && !bytes.isEmpty)
            received += bytes
        }
        #expect(received == message)
        #expect(try server.readPlaintext(maximumCount: 30) == .needMoreInput)
    }

    @Test func closeNotifyIsSeenAsClosed() throws {
        let (client, server) = try connectedPair()
        _ = runHandshake(client: client, server: server)
        try client.writePlaintext(Array("last words".utf8))
        client.shutdown()
        server.receiveFromNetwork(client.takeNetworkOutput())
        #expect(try server.readPlaintext(maximumCount: 1024) == .data(Array("last words".utf8)))
        #expect(try server.readPlaintext(maximumCount: 1024) == .closed)
        #expect(try server.readPlaintext(maximumCount: 1024) == .closed)
        server.shutdown()
        client.receiveFromNetwork(server.takeNetworkOutput())
        #expect(try client.readPlaintext(maximumCount: 1024) == .closed)
    }

    @Test func writeBeforeHandshakeIsAProtocolError() throws {
        let (client, _) = try connectedPair()
        #expect(performing: { try client.writePlaintext([1]) }, throws: { ($0 as? TLSError)?.isProtocolError == true })
    }
}

@Suite struct TLSVerificationTests {
    @Test func systemTrustStoreAloneRefusesTheTestCA() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(context: try TLSContext.client(), serverName: "localhost")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        let error = try #require(outcome.clientError)
        #expect(error.isVerificationFailure)
        #expect(error.reason.contains("unable to get local issuer") || error.reason.contains("self-signed"))
        #expect(!outcome.clientComplete && !outcome.serverComplete)
        #expect(outcome.serverError != nil)  // the client's alert reached the server
        #expect(throws: TLSError.self) { try client.handshake() }  // the failure sticks
        #expect(throws: TLSError.self) { try client.readPlaintext(maximumCount: 10) }
    }

    @Test(arguments: ["wrong.example", "mail.example.com", "localhost.evil", "127.0.0.2"])
    func hostNameMismatchFailsTheHandshake(serverName: String) throws {
        let (client, server) = try connectedPair(serverName: serverName)
        let outcome = runHandshake(client: client, server: server)
        let error = try #require(outcome.clientError)
        #expect(error.isVerificationFailure)
        // OpenSSL 3.0 says "hostname mismatch" (older releases capitalised it).
        #expect(["hostname mismatch", "ip address mismatch"].contains(error.reason.lowercased()))
        #expect(!outcome.clientComplete)
    }

    @Test func certificateForAnotherHostIsRefused() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(
            context: try .client(caFile: certificates.caFile), serverName: "localhost")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.wrongHostChainFile, privateKeyFile: certificates.wrongHostKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        let error = try #require(outcome.clientError)
        #expect(error.isVerificationFailure && error.reason.lowercased() == "hostname mismatch")
        #expect(error.description.contains(error.reason))
    }

    @Test func theWrongHostCertificateIsFineForItsOwnName() throws {
        // Control for the test above: the mismatch, not the certificate, is what fails.
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(context: try .client(caFile: certificates.caFile), serverName: "wrong.example")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.wrongHostChainFile, privateKeyFile: certificates.wrongHostKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError == nil && outcome.clientComplete && outcome.serverComplete)
    }

    @Test func expiredCertificateIsRefused() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(context: try .client(caFile: certificates.caFile), serverName: "localhost")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.expiredChainFile, privateKeyFile: certificates.expiredKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError == .certificateVerificationFailed("certificate has expired"))
    }

    @Test func clientWithoutServerNameIsRefused() throws {
        let context = try TLSContext.client()
        #expect(
            performing: { try TLSConnection(context: context, serverName: nil) },
            throws: { ($0 as? TLSError)?.isConfiguration == true })
        #expect(
            performing: { try TLSConnection(context: context, serverName: "") },
            throws: { ($0 as? TLSError)?.isConfiguration == true })
        #expect(
            performing: { try TLSConnection(context: context, serverName: "bad host") },
            throws: { ($0 as? TLSError)?.isConfiguration == true })
        #expect(
            performing: { try TLSConnection(context: context, serverName: "a\u{0}b") },
            throws: { ($0 as? TLSError)?.isConfiguration == true })
    }

    @Test func outdatedClientCannotConnect() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(
            context: try TLSContext._clientForTesting(
                caFile: certificates.caFile, minimumVersion: .tls1_0, maximumVersion: .tls1_1,
                securityLevel: 0),
            serverName: "localhost")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(!outcome.clientComplete && !outcome.serverComplete)
        let serverError = try #require(outcome.serverError)
        #expect(serverError.isHandshakeFailure)
        #expect(serverError.reason.contains("unsupported protocol"))
    }
}

@Suite struct TLSVersionTests {
    /// Microsoft 365 or an old LAN client may still negotiate TLS 1.2: it must work end to end.
    @Test func tls12OnlyClientConnectsAndExchangesData() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(
            context: try TLSContext._clientForTesting(
                caFile: certificates.caFile, minimumVersion: .tls1_2, maximumVersion: .tls1_2,
                securityLevel: 2),
            serverName: "localhost")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError == nil && outcome.serverError == nil)
        #expect(client.protocolVersion == "TLSv1.2" && server.protocolVersion == "TLSv1.2")
        try server.writePlaintext(Array("+OK POP3 ready\r\n".utf8))
        #expect(try transfer(from: server, to: client) == Array("+OK POP3 ready\r\n".utf8))
    }

    @Test func tls12ClientStillVerifiesTheHostName() throws {
        let certificates = try TestCertificates.make()
        let client = try TLSConnection(
            context: try TLSContext._clientForTesting(
                caFile: certificates.caFile, minimumVersion: .tls1_2, maximumVersion: .tls1_2,
                securityLevel: 2),
            serverName: "wrong.example")
        let server = try TLSConnection(
            context: try .server(
                certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile),
            serverName: nil)
        let outcome = runHandshake(client: client, server: server)
        #expect(outcome.clientError?.isVerificationFailure == true)
        #expect(!outcome.clientComplete)
    }
}

@Suite struct TLSConfigurationTests {
    @Test func missingKeyFileIsNamed() throws {
        let certificates = try TestCertificates.make()
        let missing = certificates.directory + "/no-such.key"
        #expect(
            performing: {
                try TLSContext.server(certificateChainFile: certificates.leafChainFile, privateKeyFile: missing)
            },
            throws: { error in
                guard let error = error as? TLSError, error.isConfiguration else { return false }
                return error.reason.contains(missing) && error.description.contains(missing)
                    && error.reason.contains("No such file or directory")
            })
    }

    @Test func missingChainFileIsNamed() throws {
        let certificates = try TestCertificates.make()
        let missing = certificates.directory + "/no-such.pem"
        #expect(
            performing: {
                try TLSContext.server(certificateChainFile: missing, privateKeyFile: certificates.leafKeyFile)
            },
            throws: {
                ($0 as? TLSError)?.isConfiguration == true && ($0 as? TLSError)?.reason.contains(missing) == true
            })
    }

    @Test func keyThatDoesNotMatchTheCertificateIsRefused() throws {
        let certificates = try TestCertificates.make()
        #expect(
            performing: {
                try TLSContext.server(
                    certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.wrongHostKeyFile)
            },
            throws: { error in
                guard let error = error as? TLSError, error.isConfiguration else { return false }
                return error.reason.contains(certificates.wrongHostKeyFile) && error.reason.contains("mismatch")
            })
    }

    @Test func keyGivenAsCertificateIsRefused() throws {
        let certificates = try TestCertificates.make()
        #expect(
            performing: {
                try TLSContext.server(
                    certificateChainFile: certificates.leafKeyFile, privateKeyFile: certificates.leafKeyFile)
            },
            throws: { ($0 as? TLSError)?.isConfiguration == true })
    }

    @Test func missingCAFileIsNamed() throws {
        let certificates = try TestCertificates.make()
        let missing = certificates.directory + "/no-such-ca.pem"
        #expect(
            performing: { try TLSContext.client(caFile: missing) },
            throws: {
                ($0 as? TLSError)?.isConfiguration == true && ($0 as? TLSError)?.reason.contains(missing) == true
            })
    }
}
