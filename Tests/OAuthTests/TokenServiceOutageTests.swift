// OAuthTests: the identity platform down while a token is refreshed (issue 13 point 3): the token in hand is used
// until it expires, then the caller gets the typed temporary error.
import Foundation
import MailCore
import Testing

@testable import OAuth

@Suite("TokenService: identity platform down during a refresh")
struct TokenServiceOutageTests {
    let account = "alice@contoso.com"

    @Test("inside the margin with the endpoint down: the cached token is used until it expires, then temporarilyUnavailable")
    func cachedTokenUntilExpiry() async throws {
        let clock = TestClock()
        let sleeper = SleepRecorder()
        // 120 s left: inside the 300 s margin, so every call tries a refresh first.
        let store = InMemoryTokenStore([account: .fake(expiresIn: 120, from: clock.now)])
        let endpoint = FakeTokenEndpoint([], repeating: .failure(.network(reason: "connection refused")))
        let service = TokenService(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), store: store, now: clock.function,
            sleep: sleeper.function)
        #expect(try await service.accessToken(for: account).revealed == FakeSecrets.access1)
        #expect(await endpoint.requestCount == 4, "the refresh was tried (with its retries) first")
        clock.advance(80)  // 40 s left: still usable
        #expect(try await service.accessToken(for: account).revealed == FakeSecrets.access1)
        clock.advance(15)  // 25 s left: below lastUsableSeconds (30 s)
        await #expect(throws: OAuthError.temporarilyUnavailable(attempts: 4, lastReason: "connection refused")) {
            try await service.accessToken(for: account)
        }
        // An outage is not a revoked sign-in: the account is not marked.
        #expect(await store.tokens[account]?.needsReconnect == false)
    }

    @Test("a token the upstream refused is not handed out again when the endpoint is down")
    func rejectedTokenNotReused() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 3_000, from: clock.now)])
        let endpoint = FakeTokenEndpoint([], repeating: .failure(.network(reason: "connection refused")))
        let service = TokenService(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), store: store, now: clock.function,
            sleep: SleepRecorder().function)
        let token = try await service.accessToken(for: account)
        await #expect(throws: OAuthError.temporarilyUnavailable(attempts: 4, lastReason: "connection refused")) {
            try await service.forceRefresh(for: account, rejectedToken: token)
        }
    }
}
