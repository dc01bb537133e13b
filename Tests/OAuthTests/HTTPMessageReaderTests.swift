// OAuthTests: the bounded HTTP/1.1 reader, fed from memory (whole, and one byte at a time).
import Synchronization
import Testing

@testable import OAuth

/// Serves a byte array in chunks of a fixed size, then end of stream.
final class ChunkSource: Sendable {
    private let state: Mutex<(bytes: [UInt8], offset: Int)>
    private let chunkSize: Int

    init(_ text: String, chunkSize: Int = 1 << 20) {
        state = Mutex((Array(text.utf8), 0))
        self.chunkSize = chunkSize
    }

    init(bytes: [UInt8], chunkSize: Int = 1 << 20) {
        state = Mutex((bytes, 0))
        self.chunkSize = chunkSize
    }

    func next() -> [UInt8]? {
        state.withLock { state in
            guard state.offset < state.bytes.count else { return nil }
            let end = min(state.offset + chunkSize, state.bytes.count)
            defer { state.offset = end }
            return Array(state.bytes[state.offset..<end])
        }
    }
}

@Suite("HTTP message reader")
struct HTTPMessageReaderTests {
    func read(_ text: String, chunkSize: Int = 1 << 20, limits: HTTPLimits = .tokenResponse) async throws(OAuthError)
        -> HTTPResponse
    {
        let source = ChunkSource(text, chunkSize: chunkSize)
        var reader = HTTPMessageReader(limits: limits) { () async throws(OAuthError) -> [UInt8]? in source.next() }
        return try await reader.readResponse()
    }

    @Test("Content-Length body, whole and drip-fed", arguments: [1 << 20, 1, 7])
    func contentLength(chunkSize: Int) async throws {
        let response = try await read(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bc\"}\nEXTRA",
            chunkSize: chunkSize)
        #expect(response.status == 200)
        #expect(response.header("content-type") == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self) == "{\"a\":\"bc\"}\n")
    }

    @Test("chunked body with extensions and trailers, drip-fed", arguments: [1 << 20, 1, 3])
    func chunked(chunkSize: Int) async throws {
        let response = try await read(
            "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;name=x\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: yes\r\n\r\n",
            chunkSize: chunkSize)
        #expect(response.status == 400)
        #expect(String(decoding: response.body, as: UTF8.self) == "hello, world!!!")
    }

    @Test("no length: the body runs to end of stream; 1xx interim responses are skipped; bare LF tolerated")
    func readToEOF() async throws {
        let response = try await read(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Service Unavailable\nServer: x\n\nbusy", chunkSize: 2)
        #expect(response.status == 503)
        #expect(response.body == Array("busy".utf8))
    }

    @Test("204 has no body; an empty reason phrase is allowed")
    func noContent() async throws {
        let response = try await read("HTTP/1.1 204\r\n\r\n")
        #expect(response.status == 204)
        #expect(response.body.isEmpty)
    }

    @Test(
        "malformed responses are errors",
        arguments: [
            "", "HTTP/1.1 200 OK", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 20x OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", "SMTP/1.1 200 OK\r\n\r\n", "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\u{1}b\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ])
    func malformed(text: String) async {
        await #expect(throws: OAuthError.self) { try await read(text, chunkSize: 5) }
    }

    @Test("oversized headers, too many header lines and oversized bodies are refused")
    func bounds() async throws {
        let bigHeader = "HTTP/1.1 200 OK\r\nX-Big: \(String(repeating: "a", count: 16_400))\r\n\r\n"
        await #expect(throws: OAuthError.responseTooLarge(what: "headers", limit: 16_384)) {
            try await read(bigHeader, chunkSize: 1_000)
        }
        let endless = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "b", count: 100_000)
        await #expect(throws: OAuthError.responseTooLarge(what: "headers", limit: 16_384)) {
            try await read(endless, chunkSize: 4_096)
        }
        let manyLines = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 101) + "\r\n"
        await #expect(throws: OAuthError.responseTooLarge(what: "number of header lines", limit: 100)) {
            try await read(manyLines)
        }
        let hundred = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 100) + "Content-Length: 0\r\n\r\n"
        await #expect(throws: OAuthError.self) { try await read(hundred) }
        let ninetyNine = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 99) + "Content-Length: 0\r\n\r\n"
        #expect(try await read(ninetyNine).status == 200)
        await #expect(throws: OAuthError.responseTooLarge(what: "response body", limit: 65_536)) {
            try await read("HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n")
        }
        let eofBody = "HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "z", count: 65_537)
        await #expect(throws: OAuthError.responseTooLarge(what: "response body", limit: 65_536)) {
            try await read(eofBody, chunkSize: 8_192)
        }
        let chunks =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(repeating: "8000\r\n" + String(repeating: "c", count: 0x8000) + "\r\n", count: 3) + "0\r\n\r\n"
        await #expect(throws: OAuthError.responseTooLarge(what: "response body", limit: 65_536)) {
            try await read(chunks, chunkSize: 8_192)
        }
        let exactly = "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + String(repeating: "q", count: 65_536)
        #expect(try await read(exactly, chunkSize: 10_000).body.count == 65_536)
    }

    @Test("request heads: method, path, query; malformed request lines refused")
    func requestHead() async throws {
        let source = ChunkSource("GET /?code=abc&state=xyz HTTP/1.1\r\nHost: localhost:5000\r\n\r\n", chunkSize: 3)
        var reader = HTTPMessageReader(limits: .redirectRequest) { () async throws(OAuthError) -> [UInt8]? in
            source.next()
        }
        let head = try #require(try await reader.readRequestHead())
        #expect(head.method == "GET")
        #expect(head.path == "/")
        #expect(head.query == "code=abc&state=xyz")
        for bad in [
            "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "get / HTTP/1.1\r\n\r\n", "GET http://x/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n", "\r\n\r\n\r\n", "GET /a\u{7F} HTTP/1.1\r\n\r\n",
            "GET /\(String(repeating: "a", count: 9_000)) HTTP/1.1\r\n\r\n",
        ] {
            let source = ChunkSource(bad)
            var reader = HTTPMessageReader(limits: .redirectRequest) { () async throws(OAuthError) -> [UInt8]? in
                source.next()
            }
            await #expect(throws: OAuthError.self, "\(bad.prefix(40))") { try await reader.readRequestHead() }
        }
    }
}
