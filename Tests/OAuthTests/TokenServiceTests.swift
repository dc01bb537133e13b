// OAuthTests: the token service's caching, single-flight, rotation, reconnect and retry rules.
import Foundation
import MailCore
import Testing

@testable import OAuth

@Suite("TokenService")
struct TokenServiceTests {
    let account = "alice@contoso.com"

    func makeService(
        endpoint: FakeTokenEndpoint, store: InMemoryTokenStore, clock: TestClock,
        sleeper: SleepRecorder = SleepRecorder(),
        settings: OAuthProviderSettings = .testDelegated
    ) -> TokenService {
        TokenService(
            client: OAuthClient(settings: settings, endpoint: endpoint), store: store, now: clock.function,
            sleep: sleeper.function)
    }

    @Test("a token valid beyond the margin is reused without any request")
    func cachedTokenReused() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 3_000, from: clock.now)])
        let endpoint = FakeTokenEndpoint([])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let first = try await service.accessToken(for: account)
        clock.advance(60)
        let second = try await service.accessToken(for: account)
        #expect(first.revealed == FakeSecrets.access1)
        #expect(second.revealed == FakeSecrets.access1)
        #expect(await endpoint.requestCount == 0)
        // The second call was served from memory: the store was read once.
        #expect(await store.events == [.load(account)])
    }

    @Test("a token inside the margin is refreshed and the rotated refresh token is stored")
    func refreshWithinMargin() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 299, from: clock.now)])
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let token = try await service.accessToken(for: account)
        #expect(token.revealed == FakeSecrets.access2)
        let requests = await endpoint.requests
        #expect(requests.count == 1)
        #expect(requests.first?.value("grant_type") == "refresh_token")
        #expect(requests.first?.value("refresh_token") == FakeSecrets.refresh1)
        #expect(requests.first?.url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        let saved = try #require(await store.tokens[account])
        #expect(saved.refreshToken?.revealed == FakeSecrets.refresh2)
        #expect(saved.expiresAt == clock.now.addingTimeInterval(3_599))
        #expect(saved.issuedAt == clock.now)
    }

    @Test("the margin is honoured exactly: 301 s left is cached, after 2 s more it refreshes")
    func marginBoundary() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 301, from: clock.now)])
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        #expect(try await service.accessToken(for: account).revealed == FakeSecrets.access1)
        clock.advance(2)
        #expect(try await service.accessToken(for: account).revealed == FakeSecrets.access2)
        #expect(await endpoint.requestCount == 1)
    }

    @Test("50 concurrent callers cause exactly one token request and all get the new token")
    func singleFlight() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: -10, from: clock.now)])
        let endpoint = FakeTokenEndpoint(
            [FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)], delay: 0.05)
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<50 {
                group.addTask { try await service.accessToken(for: account).revealed }
            }
            var collected: [String] = []
            for try await token in group { collected.append(token) }
            return collected
        }
        #expect(tokens.count == 50)
        #expect(Set(tokens) == [FakeSecrets.access2])
        #expect(await endpoint.requestCount == 1)
    }

    @Test("the rotated refresh token is in the store before the caller receives the access token")
    func rotationSavedBeforeReturn() async throws {
        let clock = TestClock()
        // A slow store: an implementation that saved in the background would return before this completes.
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)], saveDelay: 0.1)
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let token = try await service.accessToken(for: account)
        let storedAtReturn = await store.tokens[account]?.refreshToken?.revealed
        #expect(token.revealed == FakeSecrets.access2)
        #expect(storedAtReturn == FakeSecrets.refresh2)
        #expect(await store.events.last == .save(account, refreshToken: FakeSecrets.refresh2))
    }

    @Test("a failing save is reported and the token is not handed out")
    func failingSave() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        await store.setFailSaves(true)
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        await #expect(throws: OAuthError.tokenStoreFailed(account: account, reason: "The test store refused to save."))
        {
            try await service.accessToken(for: account)
        }
    }

    @Test("a response without a refresh token keeps the previous one")
    func missingRefreshTokenKeepsOld() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: nil)])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        _ = try await service.accessToken(for: account)
        #expect(await store.tokens[account]?.refreshToken?.revealed == FakeSecrets.refresh1)
    }

    @Test(
        "invalid_grant and its AADSTS relatives mark the account and every waiter gets needsReconnect",
        arguments: [
            ("invalid_grant", [70008]), ("invalid_grant", [50173]), ("invalid_request", [700082]),
            ("interaction_required", [50076]),
        ])
    func invalidGrant(error: String, codes: [Int]) async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.oauthError(400, error, codes: codes)], delay: 0.05)
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let results = await withTaskGroup(of: Result<String, OAuthError>.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do throws(OAuthError) {
                        return .success(try await service.accessToken(for: account).revealed)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var collected: [Result<String, OAuthError>] = []
            for await result in group { collected.append(result) }
            return collected
        }
        #expect(results.count == 10)
        for result in results {
            #expect(throws: OAuthError.needsReconnect(account: account)) { try result.get() }
        }
        #expect(await endpoint.requestCount == 1)
        let marks = await store.events.filter { if case .mark = $0 { true } else { false } }
        #expect(marks.count == 1)
        #expect(await store.tokens[account]?.needsReconnect == true)
        #expect(
            OAuthError.needsReconnect(account: account).description
                == "The Microsoft 365 sign-in for alice@contoso.com has expired or was revoked: run `mailgate account connect alice@contoso.com`."
        )
        // Once marked, no further request is made.
        await #expect(throws: OAuthError.needsReconnect(account: account)) {
            try await service.accessToken(for: account)
        }
        #expect(await endpoint.requestCount == 1)
    }

    @Test("a configuration error (invalid_client) is reported as such and does not mark the account")
    func invalidClientNotReconnect() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.oauthError(401, "invalid_client", codes: [7_000_215])])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        do {
            _ = try await service.accessToken(for: account)
            Issue.record("expected an error")
        } catch {
            guard case .tokenEndpoint(let name, _, let codes, let status) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(name == "invalid_client")
            #expect(codes == [7_000_215])
            #expect(status == 401)
        }
        #expect(await store.tokens[account]?.needsReconnect == false)
    }

    @Test("5xx and network errors are retried with back-off, then succeed")
    func retriedThenSuccess() async throws {
        let clock = TestClock()
        let sleeper = SleepRecorder()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.oauthError(503, "temporarily_unavailable"),
            .failure(.network(reason: "connection reset")),
            FakeTokenEndpoint.json(429, "<html>slow down</html>"),
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2),
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock, sleeper: sleeper)
        let token = try await service.accessToken(for: account)
        #expect(token.revealed == FakeSecrets.access2)
        #expect(await endpoint.requestCount == 4)
        #expect(sleeper.sleeps == [0.5, 1, 2])
    }

    @Test("retries are bounded and end in a typed temporary error")
    func retriesBounded() async throws {
        let clock = TestClock()
        let sleeper = SleepRecorder()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([], repeating: FakeTokenEndpoint.oauthError(500, "server_error"))
        let service = makeService(endpoint: endpoint, store: store, clock: clock, sleeper: sleeper)
        await #expect(throws: OAuthError.temporarilyUnavailable(attempts: 4, lastReason: "HTTP 500 server_error")) {
            try await service.accessToken(for: account)
        }
        #expect(await endpoint.requestCount == 4)
        #expect(sleeper.sleeps == [0.5, 1, 2])
        #expect(await store.tokens[account]?.needsReconnect == false)
    }

    @Test("forceRefresh refreshes once even though the cached token looks valid")
    func forceRefreshOnce() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 3_000, from: clock.now)])
        let endpoint = FakeTokenEndpoint(
            [
                FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2),
                FakeTokenEndpoint.token(access: FakeSecrets.access3, refresh: FakeSecrets.refresh1),
            ], delay: 0.05)
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let rejected = try await service.accessToken(for: account)
        #expect(await endpoint.requestCount == 0)
        // Several sessions see the same rejection at once: still one request.
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<5 {
                group.addTask { try await service.forceRefresh(for: account, rejectedToken: rejected).revealed }
            }
            var collected: [String] = []
            for try await token in group { collected.append(token) }
            return collected
        }
        #expect(Set(tokens) == [FakeSecrets.access2])
        #expect(await endpoint.requestCount == 1)
        // A late caller with the old rejected token gets the newer one without another request.
        let late = try await service.forceRefresh(for: account, rejectedToken: rejected)
        #expect(late.revealed == FakeSecrets.access2)
        #expect(await endpoint.requestCount == 1)
        // Rejecting the new token refreshes again.
        let third = try await service.forceRefresh(for: account, rejectedToken: late)
        #expect(third.revealed == FakeSecrets.access3)
        #expect(await endpoint.requestCount == 2)
    }

    @Test("forceRefresh picks up a token another process already stored")
    func forceRefreshSeesStoreUpdate() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 3_000, from: clock.now)])
        let endpoint = FakeTokenEndpoint([])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        let rejected = try await service.accessToken(for: account)
        await store.put(account, .fake(access: FakeSecrets.access2, expiresIn: 3_000, from: clock.now))
        let token = try await service.forceRefresh(for: account, rejectedToken: rejected)
        #expect(token.revealed == FakeSecrets.access2)
        #expect(await endpoint.requestCount == 0)
    }

    @Test("an account without a stored token is notConnected; one without a refresh token needs reconnect")
    func notConnectedAndNoRefreshToken() async throws {
        let clock = TestClock()
        let bob = "bob@contoso.com"
        let store = InMemoryTokenStore([bob: .fake(refresh: nil, expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([])
        let service = makeService(endpoint: endpoint, store: store, clock: clock)
        await #expect(throws: OAuthError.notConnected(account: account)) { try await service.accessToken(for: account) }
        await #expect(throws: OAuthError.needsReconnect(account: bob)) { try await service.accessToken(for: bob) }
        #expect(await endpoint.requestCount == 0)
    }

    @Test("client-credentials accounts re-request on expiry with the secret and .default scope")
    func clientCredentials() async throws {
        let clock = TestClock()
        let mailbox = "scanner@contoso.com"
        let store = InMemoryTokenStore([mailbox: .fake(refresh: nil, expiresIn: 100, from: clock.now)])
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: nil, expiresIn: "\"3599\"")
        ])
        let service = makeService(endpoint: endpoint, store: store, clock: clock, settings: .testConfidential)
        let token = try await service.accessToken(for: mailbox)
        #expect(token.revealed == FakeSecrets.access2)
        let request = try #require(await endpoint.requests.first)
        #expect(request.value("grant_type") == "client_credentials")
        #expect(request.value("client_secret") == FakeSecrets.secret)
        #expect(request.value("scope") == "https://outlook.office365.com/.default")
        #expect(request.value("refresh_token") == nil)
        let saved = try #require(await store.tokens[mailbox])
        #expect(saved.refreshToken == nil)
        #expect(saved.expiresAt == clock.now.addingTimeInterval(3_599))
    }
}
