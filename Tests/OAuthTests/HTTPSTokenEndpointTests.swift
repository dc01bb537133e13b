// OAuthTests: the token HTTP client against real sockets on 127.0.0.1 (plain with the test flag, and TLS).
import Foundation
import MailCore
import MailGateTesting
import TLS
import Testing
import Transport

@testable import OAuth

@Suite("HTTPS token endpoint over loopback")
struct HTTPSTokenEndpointTests {
    let form = [("client_id", "id-1"), ("grant_type", "refresh_token"), ("refresh_token", "r t&=")]

    func endpoint(timeout: Double = 10, caFile: String? = nil) throws -> HTTPSTokenEndpoint {
        try HTTPSTokenEndpoint(caFile: caFile, timeout: timeout, allowInsecureLoopbackForTesting: true)
    }

    @Test("sends a well-formed POST and reads a Content-Length response")
    func contentLength() async throws {
        let server = try FakeHTTPServer(
            response:
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"access_token\":\"A\",\"x\":1}"
        )
        defer { server.close() }
        let response = try await endpoint().post(url: server.url, form: form)
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "{\"access_token\":\"A\",\"x\":1}")
        let request = try #require(server.request)
        let body = "client_id=id-1&grant_type=refresh_token&refresh_token=r%20t%26%3D"
        #expect(
            request
                == "POST /contoso.com/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Accept: application/json\r\nUser-Agent: MailGate\r\nConnection: close\r\n\r\n\(body)")
    }

    @Test("reads a chunked response that arrives in small pieces")
    func chunked() async throws {
        let server = try FakeHTTPServer(
            response:
                "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"er\r\n13\r\nror\":\"invalid_grant\r\n2\r\n\"}\r\n0\r\n\r\n",
            pieceSize: 3)
        defer { server.close() }
        let response = try await endpoint().post(url: server.url, form: form)
        #expect(response.status == 400)
        #expect(TokenResponseParser.parseError(response.body)?.error == "invalid_grant")
    }

    @Test("reads a response delimited by the end of the connection")
    func readToEOF() async throws {
        let server = try FakeHTTPServer(response: "HTTP/1.0 200 OK\r\n\r\n{\"access_token\":\"B\"}", pieceSize: 5)
        defer { server.close() }
        let response = try await endpoint().post(url: server.url, form: form)
        #expect(try TokenResponseParser.parseSuccess(response.body).accessToken.revealed == "B")
    }

    @Test("oversized headers and a malformed status line are errors")
    func badResponses() async throws {
        let big = try FakeHTTPServer(
            response: "HTTP/1.1 200 OK\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n", pieceSize: 4_096)
        defer { big.close() }
        await #expect(throws: OAuthError.responseTooLarge(what: "headers", limit: 16_384)) {
            try await endpoint().post(url: big.url, form: form)
        }
        let malformed = try FakeHTTPServer(response: "HTTP/1.1 OK 200\r\n\r\n")
        defer { malformed.close() }
        await #expect(throws: OAuthError.invalidResponse(reason: "malformed status line")) {
            try await endpoint().post(url: malformed.url, form: form)
        }
    }

    @Test("plain http is refused by default, and to non-loopback hosts even with the test flag")
    func insecureRefused() async throws {
        let strict = try HTTPSTokenEndpoint(caFile: nil)
        await #expect(throws: OAuthError.insecureEndpoint(url: "http://127.0.0.1:9/t")) {
            try await strict.post(url: "http://127.0.0.1:9/t", form: form)
        }
        await #expect(throws: OAuthError.insecureEndpoint(url: "http://login.example/t")) {
            try await endpoint().post(url: "http://login.example/t", form: form)
        }
    }

    @Test("a refused connection and a silent server become network errors")
    func networkErrors() async throws {
        // Bind and close to find a port nobody listens on.
        let probe = try AsyncListener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil)
        let port = probe.boundAddress.port
        probe.close()
        await #expect(throws: OAuthError.self) {
            try await endpoint().post(url: "http://127.0.0.1:\(port)/t", form: form)
        }
        let silent = try FakeHTTPServer(response: nil)
        defer { silent.close() }
        let started = Date()
        await #expect(throws: OAuthError.network(reason: "no answer within 1 seconds")) {
            try await endpoint(timeout: 1).post(url: silent.url, form: form)
        }
        // A hang guard, not a speed test (the server never answers; a loaded CI machine is slow).
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("https: the test CA verifies; without it, or for the wrong host name, verification fails")
    func tlsVerification() async throws {
        let certificates = try TestCertificates.make()
        let good = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        let body = "{\"access_token\":\"C\"}"
        let response = "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"

        let trusted = try FakeHTTPServer(tls: good, response: response)
        defer { trusted.close() }
        let secure = try HTTPSTokenEndpoint(caFile: certificates.caFile, timeout: 10)
        let answer = try await secure.post(url: "https://localhost:\(trusted.port)/t/oauth2/v2.0/token", form: form)
        #expect(answer.status == 200)
        #expect(
            trusted.request?.hasPrefix("POST /t/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost:\(trusted.port)\r\n")
                == true)

        let untrusted = try FakeHTTPServer(tls: good, response: response)
        defer { untrusted.close() }
        let systemOnly = try HTTPSTokenEndpoint(caFile: nil, timeout: 10)
        await #expect(throws: OAuthError.self) {
            try await systemOnly.post(url: "https://localhost:\(untrusted.port)/t", form: form)
        }
        #expect(untrusted.request == nil || untrusted.request == "")

        let wrongHost = try TLSContext.server(
            certificateChainFile: certificates.wrongHostChainFile, privateKeyFile: certificates.wrongHostKeyFile)
        let mismatched = try FakeHTTPServer(tls: wrongHost, response: response)
        defer { mismatched.close() }
        await #expect(throws: OAuthError.self) {
            try await secure.post(url: "https://localhost:\(mismatched.port)/t", form: form)
        }
    }
}
