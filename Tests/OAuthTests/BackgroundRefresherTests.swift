// OAuthTests: the background refresher's scheduling rule and its passes.
import Foundation
import MailCore
import Testing

@testable import OAuth

@Suite("Background refresher")
struct BackgroundRefresherTests {
    let policy = BackgroundRefreshPolicy.standard

    @Test("decide: pre-warm only active accounts, keep idle refresh tokens alive weekly")
    func decide() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let fresh = StoredToken.fake(expiresIn: 3_000, from: now, issuedAt: now.addingTimeInterval(-600))
        let expiring = StoredToken.fake(expiresIn: 500, from: now, issuedAt: now.addingTimeInterval(-3_000))
        let old = StoredToken.fake(expiresIn: -86_400, from: now, issuedAt: now.addingTimeInterval(-7 * 86_400))
        let almostOld = StoredToken.fake(
            expiresIn: -86_400, from: now, issuedAt: now.addingTimeInterval(-7 * 86_400 + 1))
        var reconnect = fresh
        reconnect.needsReconnect = true
        let appOnlyOld = StoredToken.fake(refresh: nil, expiresIn: -86_400 * 30, from: now, issuedAt: nil)
        let unknownAge = StoredToken.fake(expiresIn: -8 * 86_400, from: now, issuedAt: nil)
        let recent = now.addingTimeInterval(-60)
        let longAgo = now.addingTimeInterval(-7_200)

        #expect(RefreshDecision.decide(token: nil, lastUsed: nil, now: now, policy: policy) == .notConnected)
        #expect(RefreshDecision.decide(token: reconnect, lastUsed: recent, now: now, policy: policy) == .needsReconnect)
        #expect(RefreshDecision.decide(token: fresh, lastUsed: recent, now: now, policy: policy) == .nothing)
        #expect(RefreshDecision.decide(token: expiring, lastUsed: recent, now: now, policy: policy) == .refreshExpiring)
        #expect(RefreshDecision.decide(token: expiring, lastUsed: longAgo, now: now, policy: policy) == .nothing)
        #expect(RefreshDecision.decide(token: expiring, lastUsed: nil, now: now, policy: policy) == .nothing)
        #expect(RefreshDecision.decide(token: old, lastUsed: nil, now: now, policy: policy) == .keepAlive)
        #expect(RefreshDecision.decide(token: almostOld, lastUsed: nil, now: now, policy: policy) == .nothing)
        #expect(RefreshDecision.decide(token: appOnlyOld, lastUsed: nil, now: now, policy: policy) == .nothing)
        #expect(RefreshDecision.decide(token: unknownAge, lastUsed: nil, now: now, policy: policy) == .keepAlive)
    }

    @Test("a pass refreshes what is due, leaves the rest, and warns once per account needing reconnect")
    func pass() async throws {
        let clock = TestClock()
        let now = clock.now
        var revoked = StoredToken.fake(expiresIn: 3_000, from: now)
        revoked.needsReconnect = true
        let store = InMemoryTokenStore([
            "idle-old@contoso.com": .fake(expiresIn: -86_400, from: now, issuedAt: now.addingTimeInterval(-8 * 86_400)),
            "idle-young@contoso.com": .fake(expiresIn: -600, from: now, issuedAt: now.addingTimeInterval(-4_200)),
            "revoked@contoso.com": revoked,
        ])
        let endpoint = FakeTokenEndpoint(
            [], repeating: FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2))
        let service = TokenService(
            client: OAuthClient(settings: .testDelegated, endpoint: endpoint), store: store, now: clock.function,
            sleep: SleepRecorder().function)
        let accounts = ["idle-old@contoso.com", "idle-young@contoso.com", "revoked@contoso.com", "nobody@contoso.com"]
        let refresher = BackgroundRefresher(service: service, accounts: { accounts }, now: clock.function)
        let outcome = await refresher.runPass()
        #expect(outcome["idle-old@contoso.com"]?.decision == .keepAlive)
        #expect(outcome["idle-old@contoso.com"]?.error == nil)
        #expect(outcome["idle-young@contoso.com"]?.decision == .nothing)
        #expect(outcome["revoked@contoso.com"]?.decision == .needsReconnect)
        #expect(outcome["nobody@contoso.com"]?.decision == .notConnected)
        #expect(await endpoint.requestCount == 1)
        #expect(await store.tokens["idle-old@contoso.com"]?.issuedAt == now)
        #expect(await refresher.accountsNeedingReconnect == ["revoked@contoso.com"])

        // A session starts using the young account; near expiry the next pass pre-warms it.
        _ = try? await service.snapshot(for: "idle-young@contoso.com")
        await store.put("idle-young@contoso.com", .fake(expiresIn: 3_000, from: now, issuedAt: now))
        _ = try await service.accessToken(for: "idle-young@contoso.com")
        clock.advance(2_500)
        let second = await refresher.runPass()
        #expect(second["idle-young@contoso.com"]?.decision == .refreshExpiring)
        #expect(second["idle-old@contoso.com"]?.decision == .nothing)
        #expect(await endpoint.requestCount == 2)
    }
}
