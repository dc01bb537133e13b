// OAuthTests: the refresh observer that serve's statistics count token.refresh.ok / .failed with.
import Foundation
import MailCore
import Synchronization
import Testing

@testable import OAuth

@Suite("TokenService refresh observer")
struct TokenServiceObserverTests {
    let account = "alice@contoso.com"

    final class Outcomes: Sendable {
        let list = Mutex<[Bool]>([])
        func append(_ value: Bool) { list.withLock { $0.append(value) } }
        var all: [Bool] { list.withLock { $0 } }
    }

    @Test("one call per refresh: true when it worked, false when it failed; a cached token calls nothing")
    func observed() async throws {
        let clock = TestClock()
        let store = InMemoryTokenStore([account: .fake(expiresIn: 0, from: clock.now)])
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2),
            FakeTokenEndpoint.oauthError(400, "invalid_grant", codes: [70008]),
        ])
        let service = TokenService(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), store: store, now: clock.function,
            sleep: SleepRecorder().function)
        let outcomes = Outcomes()
        await service.observeRefreshes { who, succeeded in
            #expect(who == "alice@contoso.com")
            outcomes.append(succeeded)
        }
        #expect(try await service.accessToken(for: account).revealed == FakeSecrets.access2)
        #expect(outcomes.all == [true])
        _ = try await service.accessToken(for: account)
        #expect(outcomes.all == [true], "the fresh token came from the cache: no refresh, no call")
        clock.advance(3_500)
        await #expect(throws: OAuthError.needsReconnect(account: account)) {
            try await service.accessToken(for: account)
        }
        #expect(outcomes.all == [true, false])
    }
}
