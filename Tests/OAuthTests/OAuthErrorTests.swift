// OAuthTests: error sentences are present for every case and never carry a secret.
import Foundation
import MailCore
import Testing

@testable import OAuth

@Suite("OAuth errors")
struct OAuthErrorTests {
    /// Every case, with remote text that tries to smuggle secrets and control characters in.
    static let samples: [OAuthError] = [
        .stateMismatch, .authorizationDenied(error: "access_denied", description: "The user declined\r\nFAKE: x"),
        .timedOut(seconds: 300), .loopbackFailed(reason: "too many requests"),
        .tokenEndpoint(error: "invalid_grant", description: "AADSTS70008: expired", codes: [70008], status: 400),
        .needsReconnect(account: "a@b.c"), .notConnected(account: "a@b.c"),
        .temporarilyUnavailable(attempts: 4, lastReason: "HTTP 503 x"), .network(reason: "connection refused"),
        .invalidResponse(reason: "malformed status line"), .responseTooLarge(what: "headers", limit: 16_384),
        .insecureEndpoint(url: "http://example.com/token"), .invalidURL(url: "nope"),
        .invalidSettings(reason: "no scopes are configured"), .deviceCodeExpired, .deviceAuthorizationDeclined,
        .badVerificationCode, .tokenStoreFailed(account: "a@b.c", reason: "disk full"),
    ]

    @Test("every case has a sentence that ends with a full stop and has no control characters")
    func sentences() {
        for error in Self.samples {
            let text = error.description
            #expect(text.count > 30, "\(text)")
            #expect(text.hasSuffix("."), "\(text)")
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 }, "\(text)")
        }
    }

    @Test("no error produced by any flow contains a fake token, code, secret or device code")
    func noSecretsInErrors() async {
        var errors = Self.samples
        // Errors produced by real flows that had the fake secrets in hand.
        let clock = TestClock()
        let account = "alice@contoso.com"
        let scripts: [[FakeTokenEndpoint.Reply]] = [
            [FakeTokenEndpoint.oauthError(400, "invalid_grant", codes: [70008])],
            [FakeTokenEndpoint.oauthError(401, "invalid_client", codes: [7_000_215])],
            [
                FakeTokenEndpoint.oauthError(
                    400, "invalid_request", description: "echo \(FakeSecrets.refresh1) and \(FakeSecrets.secret)")
            ],
            [FakeTokenEndpoint.json(200, #"{"access_token":"\#(FakeSecrets.access2)","token_type":"mac"}"#)],
            [
                FakeTokenEndpoint.json(
                    200, #"{"access_token":"\#(FakeSecrets.access2)","expires_in":"\#(FakeSecrets.refresh2)"}"#)
            ],
            [FakeTokenEndpoint.json(200, #"{"access_token":"\#(FakeSecrets.access2)","refresh_token":[1]}"#)],
            Array(repeating: FakeTokenEndpoint.oauthError(503, "temporarily_unavailable"), count: 4),
        ]
        for script in scripts {
            let service = TokenService(
                client: OAuthClient(
                    settings: {
                        var settings = OAuthProviderSettings.testDelegated
                        settings.clientSecret = Redacted(FakeSecrets.secret)
                        return settings
                    }(), endpoint: FakeTokenEndpoint(script)),
                store: InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)]), now: clock.function,
                sleep: SleepRecorder().function)
            do throws(OAuthError) {
                _ = try await service.accessToken(for: account)
                Issue.record("expected an error")
            } catch {
                errors.append(error)
            }
        }
        let client = OAuthClient(
            settings: .testDelegated,
            endpoint: FakeTokenEndpoint([
                FakeTokenEndpoint.oauthError(
                    400, "invalid_grant", description: "AADSTS54005: code \(FakeSecrets.code) already redeemed")
            ]))
        do throws(OAuthError) {
            _ = try await client.exchangeCode(
                code: Redacted(FakeSecrets.code), verifier: "v", redirectURI: "http://localhost/")
        } catch {
            errors.append(error)
        }
        #expect(errors.count == Self.samples.count + scripts.count + 1)
        for error in errors {
            for secret in FakeSecrets.all {
                #expect(!error.description.contains(secret), "\(error.description)")
                #expect(!"\(error)".contains(secret))
                #expect(!String(reflecting: error).contains(secret))
            }
        }
    }

    @Test("secrets inside stored tokens and responses print as <redacted>")
    func redactedPrinting() {
        let token = StoredToken.fake(expiresIn: 10, from: Date())
        let text = "\(token) \(String(reflecting: token))"
        for secret in FakeSecrets.all { #expect(!text.contains(secret)) }
        let response = TokenResponse(
            accessToken: Redacted(FakeSecrets.access1), refreshToken: Redacted(FakeSecrets.refresh1), expiresIn: 1,
            scope: nil)
        #expect(!"\(response)".contains(FakeSecrets.access1))
        #expect(!"\(response)".contains(FakeSecrets.refresh1))
    }
}
