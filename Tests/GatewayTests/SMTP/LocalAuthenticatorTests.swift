// GatewayTests: LocalAuthenticator's verdicts, success cache, invalidation and per-address failure delay.
import Crypto
import Dispatch
import MailCore
import Synchronization
import Testing

@testable import Gateway

@Suite("Local authenticator")
struct LocalAuthenticatorTests {
    final class ManualClock: Sendable {
        let now = Mutex(1_000.0)
        func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
    }

    static let queue = DispatchQueue(label: "test.local-auth")

    func verify(
        _ authenticator: LocalAuthenticator, _ email: String, _ password: String, from address: String? = "192.0.2.1"
    ) async -> LocalAuthenticator.Outcome {
        await withCheckedContinuation { continuation in
            authenticator.verify(email: email, password: Redacted(password), remoteAddress: address, on: Self.queue) {
                continuation.resume(returning: $0)
            }
        }
    }

    func make(
        _ passwords: InMemoryPasswords, clock: ManualClock = ManualClock(), _ adjust: (inout LocalAuthenticator.Settings) -> Void = { _ in }
    ) -> LocalAuthenticator {
        var settings = LocalAuthenticator.Settings()
        settings.initialFailureDelay = 0.01
        settings.maximumFailureDelay = 0.08
        adjust(&settings)
        return LocalAuthenticator(lookup: passwords, settings: settings, clock: { clock.now.withLock { $0 } })
    }

    @Test("the right password is accepted (email compared lower-case); wrong password and unknown account look alike")
    func verdicts() async {
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        let authenticator = make(passwords)
        #expect(await verify(authenticator, "Alice@Contoso.COM", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(await verify(authenticator, "alice@contoso.com", "Secret") == .rejected)
        #expect(await verify(authenticator, "nobody@contoso.com", "secret") == .rejected)
        #expect(await verify(authenticator, "", "") == .rejected)
        #expect(await verify(authenticator, "alice@contoso.com\u{0}", "secret") == .rejected)
    }

    @Test("a success is cached (no second slow hash) until the lifetime ends or the account is invalidated")
    func cache() async {
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        let clock = ManualClock()
        let authenticator = make(passwords, clock: clock)
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(authenticator.slowVerificationCount == 1)
        #expect(await verify(authenticator, "ALICE@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(authenticator.slowVerificationCount == 1)
        // A different password is never answered from the cache.
        #expect(await verify(authenticator, "alice@contoso.com", "other") == .rejected)
        #expect(authenticator.slowVerificationCount == 2)
        clock.advance(61)
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(authenticator.slowVerificationCount == 3)
        // Invalidation empties the cache.
        authenticator.invalidate(email: "Alice@contoso.com")
        #expect(authenticator.cachedEntryCount == 0)
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(authenticator.slowVerificationCount == 4)
    }

    @Test("a password changed or an account removed elsewhere takes effect at once, despite a cached success")
    func storeChangesBeatTheCache() async throws {
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        let authenticator = make(passwords)
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        // `mailgate account password` in another process: only the stored hash changes, nobody invalidates.
        passwords.set("alice@contoso.com", hash: try PasswordHash.hash("new secret"))
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .rejected)
        #expect(await verify(authenticator, "alice@contoso.com", "new secret") == .accepted(account: "alice@contoso.com"))
        // `mailgate account remove`.
        passwords.set("alice@contoso.com", hash: nil)
        #expect(await verify(authenticator, "alice@contoso.com", "new secret") == .rejected)
    }

    @Test("the cache holds at most its bound, dropping the oldest")
    func cacheBound() async throws {
        let hash = InMemoryPasswords.secretHash
        let passwords = InMemoryPasswords(["a@x.test": hash, "b@x.test": hash, "c@x.test": hash])
        let authenticator = make(passwords) { $0.maximumCacheEntries = 2 }
        for email in ["a@x.test", "b@x.test", "c@x.test"] {
            #expect(await verify(authenticator, email, "secret") == .accepted(account: email))
        }
        #expect(authenticator.cachedEntryCount == 2)
        _ = await verify(authenticator, "a@x.test", "secret")
        #expect(passwords.lookupCount == 4)  // the oldest (a) was evicted
    }

    @Test("failures from one address double the delay up to the cap; success resets it; other addresses unaffected")
    func failureDelay() async {
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        let clock = ManualClock()
        let authenticator = make(passwords, clock: clock)
        #expect(authenticator.failureDelay(for: "192.0.2.1") == 0.01)
        var delays: [Double] = []
        for _ in 0..<5 {
            _ = await verify(authenticator, "alice@contoso.com", "bad")
            delays.append(authenticator.failureDelay(for: "192.0.2.1"))
        }
        #expect(delays == [0.02, 0.04, 0.08, 0.08, 0.08])
        #expect(authenticator.failureDelay(for: "192.0.2.99") == 0.01)
        let started = DispatchTime.now().uptimeNanoseconds
        _ = await verify(authenticator, "nobody@contoso.com", "bad")
        #expect(DispatchTime.now().uptimeNanoseconds - started >= 80_000_000)
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
        #expect(authenticator.failureDelay(for: "192.0.2.1") == 0.01)
        // Failures are forgotten after a quiet period.
        _ = await verify(authenticator, "alice@contoso.com", "bad")
        clock.advance(1_000)
        #expect(authenticator.failureDelay(for: "192.0.2.1") == 0.01)
    }

    @Test("past maximumWaitingVerifications a login is answered .busy at once, not queued; the others are checked")
    func boundedHashQueue() async {
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        let authenticator = make(passwords) {
            $0.maximumConcurrentVerifications = 1
            $0.maximumWaitingVerifications = 1
        }
        // Eight logins at once with different passwords (none cached): one hashes, one waits, the rest are refused.
        let outcomes = await withTaskGroup(of: LocalAuthenticator.Outcome.self) { group in
            for index in 0..<8 {
                group.addTask { await verify(authenticator, "alice@contoso.com", index == 0 ? "secret" : "wrong\(index)") }
            }
            var all: [LocalAuthenticator.Outcome] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let busy = outcomes.filter { $0 == .busy }.count
        #expect(outcomes.count == 8)
        #expect(busy >= 1, "an unbounded queue would have checked all eight")
        #expect(busy <= 6, "the one running and the one waiting are checked")
        #expect(authenticator.busyRefusalCount == busy)
        #expect(authenticator.slowVerificationCount == 8 - busy)
        // Once the queue has drained, logins are checked again.
        #expect(await verify(authenticator, "alice@contoso.com", "secret") == .accepted(account: "alice@contoso.com"))
    }
}
