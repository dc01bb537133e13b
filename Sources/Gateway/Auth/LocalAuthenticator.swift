// Gateway: checks local passwords (slow scrypt, off the session queue) with a short success cache and a per-address
// failure delay.
public import Dispatch
import Crypto
public import MailCore
import Synchronization

/// Where the authenticator finds an account's stored password hash (the Store's `account(email:)`).
public protocol PasswordHashLookup: Sendable {
    /// The encoded scrypt/PBKDF2 hash of the local account `email` (lower-case), or nil if there is no such account.
    func passwordHash(forEmail email: String) throws -> String?
}

/// Verifies the local passwords of SMTP, IMAP and POP3 clients.
///
/// The slow hash (~100 ms) runs on a bounded set of worker threads, never on a session queue; the answer comes
/// back on the caller's queue. A successful verification is remembered for `cacheLifetime` seconds under
/// HMAC-SHA256(process-random key, email NUL password NUL stored hash), as Dovecot's auth cache does, so a client that logs in
/// every minute does not pay the hash every time; the cache never holds a password. Failed logins are answered
/// after a delay that doubles per failure from the same address (`initialFailureDelay` … `maximumFailureDelay`)
/// and resets on success. An unknown account and a wrong password look the same: same work, same delay, same answer.
public final class LocalAuthenticator: Sendable {
    /// Bounds and delays; the defaults suit a site gateway.
    public struct Settings: Sendable {
        /// Seconds a successful verification is reused.
        public var cacheLifetime: Double = 60
        /// Cached verifications kept at most (the oldest goes first).
        public var maximumCacheEntries: Int = 10_000
        /// Delay before the answer to an address's first failed login.
        public var initialFailureDelay: Double = 0.5
        /// The delay stops doubling here.
        public var maximumFailureDelay: Double = 8
        /// Seconds without a failure after which an address starts again at `initialFailureDelay`.
        public var failureMemory: Double = 900
        /// Addresses whose failures are remembered at most (the oldest goes first).
        public var maximumTrackedAddresses: Int = 10_000
        /// Slow hashes computed at the same time at most (each scrypt takes 32 MiB).
        public var maximumConcurrentVerifications: Int = 4
        /// Verifications waiting for a worker at most (`[limits]` `password_hash_queue`); one more is answered
        /// `.busy` at once, so a login flood costs a bounded queue instead of unbounded memory and latency.
        public var maximumWaitingVerifications: Int = Limits.standard.passwordHashQueue

        public init() {}
    }

    /// The verdict on a login.
    public enum Outcome: Sendable, Equatable {
        /// The password is right; `account` is the local account (lower-case email).
        case accepted(account: String)
        /// Unknown account or wrong password (deliberately not told apart).
        case rejected
        /// Not checked: too many logins are waiting for the slow hash; the client should retry later (SMTP
        /// `454 4.7.0`). Counts as no failure of the address.
        case busy
    }

    private struct CacheEntry {
        var email: String
        var expires: Double
        var order: UInt64
    }

    private struct FailureEntry {
        var failures: Int
        var last: Double
    }

    private struct State {
        var cache: [[UInt8]: CacheEntry] = [:]
        var nextOrder: UInt64 = 0
        var failures: [String: FailureEntry] = [:]
        var running = 0
        var waiting: [@Sendable () -> Void] = []
        /// Slow hash computations so far (tests check that the cache spares them).
        var slowVerifications = 0
        /// Logins answered `.busy` because the queue was full.
        var refusedBusy = 0
    }

    private let lookup: any PasswordHashLookup
    private let settings: Settings
    private let cacheKey: [UInt8]
    private let clock: @Sendable () -> Double
    private let state = Mutex(State())
    private let workers = DispatchQueue(label: "mailgate.local-auth", qos: .userInitiated, attributes: .concurrent)
    /// A hash no password matches, verified for unknown accounts so they cost the same as known ones.
    private let decoyHash: String?

    /// - Parameters:
    ///   - lookup: the account store.
    ///   - clock: monotonic seconds (injected by tests).
    public init(
        lookup: any PasswordHashLookup, settings: Settings = Settings(),
        clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    ) {
        self.lookup = lookup
        self.settings = settings
        self.clock = clock
        self.cacheKey = SecureRandom.bytes(32)
        // No scrypt at start-up (it took 32 MiB of RSS when nobody ever logs in): the decoy costs its scrypt
        // only when an unknown account is tried, exactly like a real verification.
        self.decoyHash = PasswordHash.decoy()
    }

    /// Checks `password` for `email` and calls `completion` on `queue` with the verdict (after the failure delay
    /// for `remoteAddress` when it is wrong).
    public func verify(
        email: String, password: Redacted<String>, remoteAddress: String?, on queue: DispatchQueue,
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        let account = email.lowercased()
        // The stored hash is read on every login (a cheap indexed read, off the session queue) and is part of the
        // cache key: a password changed or an account removed by another process (`mailgate account password`,
        // `account remove`) takes effect at once, although `serve` is never told.
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let stored = (try? lookup.passwordHash(forEmail: account)) ?? nil
            let key = stored.map { cacheKey(account: account, password: password, storedHash: $0) }
            let now = clock()
            let cached = state.withLock { state -> Bool in
                guard let key, let entry = state.cache[key] else { return false }
                if entry.expires > now { return true }
                state.cache[key] = nil
                return false
            }
            if cached {
                clearFailures(remoteAddress)
                queue.async { completion(.accepted(account: account)) }
                return
            }
            let admitted = runLimited { [self] in
                var accepted = false
                state.withLock { $0.slowVerifications += 1 }
                if let stored {
                    accepted = PasswordHash.verify(password.revealed, against: stored)
                } else if let decoyHash {
                    _ = PasswordHash.verify(password.revealed, against: decoyHash)
                }
                if accepted, let key {
                    remember(key, email: account)
                    clearFailures(remoteAddress)
                    queue.async { completion(.accepted(account: account)) }
                } else {
                    let delay = recordFailure(remoteAddress)
                    queue.asyncAfter(deadline: .now() + delay) { completion(.rejected) }
                }
            }
            if !admitted {
                state.withLock { $0.refusedBusy += 1 }
                queue.async { completion(.busy) }
            }
        }
    }

    /// HMAC-SHA256 under the process-random key of email, password and the stored hash, NUL-separated.
    private func cacheKey(account: String, password: Redacted<String>, storedHash: String) -> [UInt8] {
        HMACSHA256.authenticate(
            Array(account.utf8) + [0] + Array(password.revealed.utf8) + [0] + Array(storedHash.utf8), key: cacheKey)
    }

    /// Forgets cached verifications of `email` (password changed, account removed).
    public func invalidate(email: String) {
        let account = email.lowercased()
        state.withLock { state in state.cache = state.cache.filter { $0.value.email != account } }
    }

    /// Forgets every cached verification.
    public func invalidateAll() {
        state.withLock { $0.cache = [:] }
    }

    /// Seconds the next failed login from `address` would wait (for tests and diagnostics).
    public func failureDelay(for address: String?) -> Double {
        let now = clock()
        return state.withLock { state in delay(after: liveFailures(address, now: now, state: state)) }
    }

    /// Number of cached verifications (for tests and diagnostics).
    public var cachedEntryCount: Int { state.withLock { $0.cache.count } }

    /// Slow hash computations so far (for tests and diagnostics).
    var slowVerificationCount: Int { state.withLock { $0.slowVerifications } }

    /// Logins answered `.busy` so far (for tests and diagnostics).
    public var busyRefusalCount: Int { state.withLock { $0.refusedBusy } }

    // MARK: - Internals

    private func delay(after failures: Int) -> Double {
        guard failures > 0 else { return settings.initialFailureDelay }
        var value = settings.initialFailureDelay
        for _ in 0..<min(failures, 30) { value *= 2 }
        return min(value, settings.maximumFailureDelay)
    }

    private func liveFailures(_ address: String?, now: Double, state: State) -> Int {
        guard let address, let entry = state.failures[address] else { return 0 }
        return now - entry.last > settings.failureMemory ? 0 : entry.failures
    }

    /// Counts a failure and returns the delay to apply to it.
    private func recordFailure(_ address: String?) -> Double {
        let now = clock()
        return state.withLock { state in
            let previous = liveFailures(address, now: now, state: state)
            guard let address else { return delay(after: previous) }
            state.failures[address] = FailureEntry(failures: previous + 1, last: now)
            if state.failures.count > settings.maximumTrackedAddresses,
                let oldest = state.failures.min(by: { $0.value.last < $1.value.last })?.key
            {
                state.failures[oldest] = nil
            }
            return delay(after: previous)
        }
    }

    private func clearFailures(_ address: String?) {
        guard let address else { return }
        state.withLock { _ = $0.failures.removeValue(forKey: address) }
    }

    private func remember(_ key: [UInt8], email: String) {
        let expires = clock() + settings.cacheLifetime
        state.withLock { state in
            state.nextOrder += 1
            state.cache[key] = CacheEntry(email: email, expires: expires, order: state.nextOrder)
            if state.cache.count > settings.maximumCacheEntries {
                let now = clock()
                state.cache = state.cache.filter { $0.value.expires > now }
                while state.cache.count > settings.maximumCacheEntries,
                    let oldest = state.cache.min(by: { $0.value.order < $1.value.order })?.key
                {
                    state.cache[oldest] = nil
                }
            }
        }
    }

    /// Runs `work` on the worker queue with at most `maximumConcurrentVerifications` at a time and at most
    /// `maximumWaitingVerifications` waiting; returns false (dropping `work`) when the queue is full.
    private func runLimited(_ work: @escaping @Sendable () -> Void) -> Bool {
        enum Admission { case run, queued, full }
        let admission = state.withLock { state -> Admission in
            if state.running < settings.maximumConcurrentVerifications {
                state.running += 1
                return .run
            }
            guard state.waiting.count < settings.maximumWaitingVerifications else { return .full }
            state.waiting.append(work)
            return .queued
        }
        switch admission {
        case .run: workers.async { [self] in runAndContinue(work) }
        case .queued: break
        case .full: return false
        }
        return true
    }

    private func runAndContinue(_ work: @escaping @Sendable () -> Void) {
        var next: (@Sendable () -> Void)? = work
        while let current = next {
            current()
            next = state.withLock { state in
                if state.waiting.isEmpty {
                    state.running -= 1
                    return nil
                }
                return state.waiting.removeFirst()
            }
        }
    }
}
