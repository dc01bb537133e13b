// OAuthTests: the device authorization grant's start and polling rules (RFC 8628).
import Foundation
import MailCore
import Testing

@testable import OAuth

@Suite("Device code flow")
struct DeviceCodeFlowTests {
    static let startBody =
        #"{"user_code":"ABCD-EFGH","device_code":"\#(FakeSecrets.deviceCode)","verification_uri":"https://microsoft.com/devicelogin","expires_in":"900","interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}"#

    func authorization(expiresIn: Int = 900, interval: Int = 5) -> DeviceAuthorization {
        DeviceAuthorization(
            deviceCode: Redacted(FakeSecrets.deviceCode), userCode: "ABCD-EFGH",
            verificationURI: "https://microsoft.com/devicelogin", expiresIn: expiresIn, interval: interval, message: "m"
        )
    }

    @Test("start reads Microsoft's device code response and posts client_id and scope")
    func start() async throws {
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.json(200, Self.startBody)])
        let flow = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: endpoint))
        let started = try await flow.start()
        #expect(started.deviceCode.revealed == FakeSecrets.deviceCode)
        #expect(started.userCode == "ABCD-EFGH")
        #expect(started.verificationURI == "https://microsoft.com/devicelogin")
        #expect(started.expiresIn == 900)
        #expect(started.interval == 5)
        #expect(started.message.contains("ABCD-EFGH"))
        let request = try #require(await endpoint.requests.first)
        #expect(request.url.hasSuffix("/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"))
        #expect(request.form.map(\.0) == ["client_id", "scope"])
    }

    @Test("start refuses incomplete responses and reports endpoint errors")
    func startErrors() async {
        for body in [
            #"{"user_code":"A","verification_uri":"u","expires_in":900}"#,
            #"{"device_code":"d","user_code":"A","verification_uri":"u"}"#, "[]",
        ] {
            let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.json(200, body)])
            let flow = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: endpoint))
            await #expect(throws: OAuthError.self) { try await flow.start() }
        }
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.oauthError(400, "unauthorized_client", codes: [7_000_218])])
        let flow = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: endpoint))
        await #expect(throws: OAuthError.self) { try await flow.start() }
    }

    @Test("pending, slow_down (interval grows by 5 s and stays grown), then success")
    func pendingSlowDownSuccess() async throws {
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.oauthError(400, "authorization_pending", codes: [70016]),
            FakeTokenEndpoint.oauthError(400, "slow_down"),
            FakeTokenEndpoint.oauthError(400, "authorization_pending", codes: [70016]),
            FakeTokenEndpoint.oauthError(400, "slow_down"),
            FakeTokenEndpoint.token(access: FakeSecrets.access1, refresh: FakeSecrets.refresh1),
        ])
        let clock = TestClock()
        let sleeper = SleepRecorder(advancing: clock)
        let flow = DeviceCodeFlow(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), now: clock.function)
        let token = try await flow.poll(authorization(), sleep: sleeper.function)
        #expect(token.accessToken.revealed == FakeSecrets.access1)
        #expect(sleeper.sleeps == [5, 5, 10, 10, 15])
        let requests = await endpoint.requests
        #expect(requests.count == 5)
        #expect(requests.allSatisfy { $0.value("grant_type") == "urn:ietf:params:oauth:grant-type:device_code" })
        #expect(requests.allSatisfy { $0.value("device_code") == FakeSecrets.deviceCode })
    }

    @Test(
        "terminal poll errors become typed errors",
        arguments: [
            ("expired_token", OAuthError.deviceCodeExpired), ("authorization_declined", .deviceAuthorizationDeclined),
            ("access_denied", .deviceAuthorizationDeclined), ("bad_verification_code", .badVerificationCode),
        ])
    func terminalErrors(error: String, expected: OAuthError) async {
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.oauthError(400, "authorization_pending"), FakeTokenEndpoint.oauthError(400, error),
        ])
        let flow = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: endpoint))
        await #expect(throws: expected) { try await flow.poll(authorization(), sleep: SleepRecorder().function) }
        #expect(await endpoint.requestCount == 2)
    }

    @Test("polling stops when expires_in has passed, by the clock")
    func boundedByExpiry() async {
        let endpoint = FakeTokenEndpoint([], repeating: FakeTokenEndpoint.oauthError(400, "authorization_pending"))
        let clock = TestClock()
        let sleeper = SleepRecorder(advancing: clock)
        let flow = DeviceCodeFlow(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), now: clock.function)
        await #expect(throws: OAuthError.deviceCodeExpired) {
            try await flow.poll(authorization(expiresIn: 60, interval: 5), sleep: sleeper.function)
        }
        // Polls at 5, 10, …, 55 s; the 60 s wake-up is past the deadline.
        #expect(await endpoint.requestCount == 11)
    }

    @Test("polling stops by count even when the clock never moves")
    func boundedByCount() async {
        let endpoint = FakeTokenEndpoint([], repeating: FakeTokenEndpoint.oauthError(400, "authorization_pending"))
        let clock = TestClock()
        let flow = DeviceCodeFlow(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), now: clock.function)
        await #expect(throws: OAuthError.deviceCodeExpired) {
            try await flow.poll(authorization(expiresIn: 60, interval: 5), sleep: SleepRecorder().function)
        }
        #expect(await endpoint.requestCount == 14)
    }

    @Test("a network blip is tolerated while polling; repeated ones are not")
    func networkFailures() async throws {
        let recovering = FakeTokenEndpoint([
            .failure(.network(reason: "reset")), FakeTokenEndpoint.token(access: FakeSecrets.access1, refresh: nil),
        ])
        let flow = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: recovering))
        _ = try await flow.poll(authorization(), sleep: SleepRecorder().function)
        let failing = FakeTokenEndpoint([], repeating: .failure(.network(reason: "reset")))
        let doomed = DeviceCodeFlow(client: OAuthClient(settings: .testDelegated, endpoint: failing))
        await #expect(throws: OAuthError.network(reason: "reset")) {
            try await doomed.poll(authorization(), sleep: SleepRecorder().function)
        }
        #expect(await failing.requestCount == 3)
    }
}
