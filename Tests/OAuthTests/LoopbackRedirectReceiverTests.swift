// OAuthTests: the loopback redirect listener, driven by real HTTP requests over sockets on 127.0.0.1.
import Foundation
import MailCore
import Testing
import Transport

@testable import OAuth

@Suite("Loopback redirect receiver")
struct LoopbackRedirectReceiverTests {
    /// Sends one raw request to the receiver and returns the whole response.
    func send(_ request: String, to port: Int) async throws -> String {
        let connection = try await AsyncConnection.connect(
            to: HostPort(host: "127.0.0.1", port: port)!, tls: nil, serverName: nil, timeout: 5)
        defer { connection.close() }
        try await connection.write(Array(request.utf8))
        var response: [UInt8] = []
        while response.count < 65_536, let bytes = try await connection.readAvailable() { response += bytes }
        return String(decoding: response, as: UTF8.self)
    }

    func get(_ target: String, port: Int) async throws -> String {
        try await send("GET \(target) HTTP/1.1\r\nHost: localhost:\(port)\r\nUser-Agent: test\r\n\r\n", to: port)
    }

    @Test("a favicon request gets 404, then the redirect with the right state yields the code")
    func success() async throws {
        let receiver = try LoopbackRedirectReceiver()
        #expect(receiver.redirectURI == "http://localhost:\(receiver.port)/")
        #expect(receiver.port > 0)
        let result = Task { try await receiver.waitForRedirect(expectedState: "st-1", timeout: 10) }
        let notFound = try await get("/favicon.ico", port: receiver.port)
        #expect(notFound.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let page = try await get("/?code=\(FakeSecrets.code)&state=st-1&session_state=abc", port: receiver.port)
        #expect(page.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(page.contains("MailGate: sign-in complete. You can close this window."))
        #expect(page.contains("Connection: close"))
        #expect(!page.contains(FakeSecrets.code))
        let redirect = try await result.value
        #expect(redirect.code.revealed == FakeSecrets.code)
        #expect(redirect.state == "st-1")
    }

    @Test("an idle pre-connected socket does not block the redirect on another connection")
    func idlePreconnect() async throws {
        let receiver = try LoopbackRedirectReceiver()
        let result = Task { try await receiver.waitForRedirect(expectedState: "st-2", timeout: 10) }
        let idle = try await AsyncConnection.connect(
            to: HostPort(host: "127.0.0.1", port: receiver.port)!, tls: nil, serverName: nil, timeout: 5)
        defer { idle.close() }
        _ = try await get("/?code=abc&state=st-2", port: receiver.port)
        #expect(try await result.value.code.revealed == "abc")
    }

    @Test("a wrong state is a state mismatch and the browser is told so")
    func stateMismatch() async throws {
        let receiver = try LoopbackRedirectReceiver()
        let result = Task { try await receiver.waitForRedirect(expectedState: "expected", timeout: 10) }
        let page = try await get("/?code=abc&state=forged", port: receiver.port)
        #expect(page.contains("does not belong to this sign-in"))
        await #expect(throws: OAuthError.stateMismatch) { try await result.value }
    }

    @Test("an error redirect becomes authorizationDenied")
    func errorRedirect() async throws {
        let receiver = try LoopbackRedirectReceiver()
        let result = Task { try await receiver.waitForRedirect(expectedState: "s", timeout: 10) }
        let page = try await get(
            "/?error=access_denied&error_description=the+user+said+%3Cno%3E&state=s", port: receiver.port)
        #expect(page.contains("sign-in failed: access_denied: the user said &lt;no&gt;"))
        await #expect(throws: OAuthError.authorizationDenied(error: "access_denied", description: "the user said <no>"))
        {
            try await result.value
        }
    }

    @Test("no redirect within the timeout is timedOut")
    func timeout() async throws {
        let receiver = try LoopbackRedirectReceiver()
        let started = Date()
        await #expect(throws: OAuthError.timedOut(seconds: 0.3)) {
            try await receiver.waitForRedirect(expectedState: "s", timeout: 0.3)
        }
        // A hang guard, not a speed test: the default wait is 300 s, and a loaded 2-core CI machine is slow.
        #expect(Date().timeIntervalSince(started) < 60)
    }

    @Test("useless requests are bounded; oversized and malformed requests are answered 400")
    func bounded() async throws {
        let receiver = try LoopbackRedirectReceiver()
        let result = Task { try await receiver.waitForRedirect(expectedState: "s", timeout: 10, maximumRequests: 3) }
        let huge = try await get("/?pad=\(String(repeating: "x", count: 9_000))", port: receiver.port)
        #expect(huge.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        let malformed = try await send("NONSENSE\r\n\r\n", to: receiver.port)
        #expect(malformed.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        _ = try await get("/robots.txt", port: receiver.port)
        await #expect(throws: OAuthError.loopbackFailed(reason: "3 requests arrived without a sign-in response")) {
            try await result.value
        }
    }
}
