// OAuth: hands out access tokens per account, refreshing them once for all callers and persisting rotation.
public import Foundation
public import Logging
public import MailCore

/// How eagerly tokens are refreshed and how failures are retried.
public struct RefreshPolicy: Sendable, Equatable {
    /// A cached access token is used only while it stays valid for at least this long (seconds).
    public var expiryMargin: TimeInterval
    /// Waits between attempts after a network error, 5xx or 429; attempts = delays + 1.
    public var retryDelays: [Double]

    /// A policy from its parts.
    public init(expiryMargin: TimeInterval = 300, retryDelays: [Double] = [0.5, 1, 2]) {
        self.expiryMargin = expiryMargin
        self.retryDelays = retryDelays
    }

    /// Five minutes of margin, three retries with exponential back-off (0.5 s, 1 s, 2 s).
    public static let standard = RefreshPolicy()
}

/// The one place sessions get Microsoft 365 access tokens from; safe to call from any queue or task.
///
/// - A cached token is returned while it is valid beyond `policy.expiryMargin`; otherwise it is refreshed.
/// - Refreshes are single-flight per account: any number of concurrent callers cause one token request.
/// - A rotated refresh token is saved in the store (awaited) before the new access token is returned.
/// - `invalid_grant` and its relatives mark the account needs-reconnect; every waiter gets `.needsReconnect`.
/// - Network errors, 5xx and 429 are retried with back-off, then reported as `.temporarilyUnavailable` — unless
///   the token in hand is still valid for more than `lastUsableSeconds`: it is handed out until it expires.
///
/// One service serves the accounts of one provider (`[oauth.NAME]`). Keys are mailbox addresses; for a shared
/// mailbox the caller stores the delegate's token under the shared mailbox's address.
public actor TokenService {
    /// The grants used for refreshing.
    public nonisolated let client: OAuthClient
    /// Where tokens persist.
    public nonisolated let store: any TokenStore
    /// Margins and retries.
    public nonisolated let policy: RefreshPolicy
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let sleep: @Sendable (Double) async -> Void

    private enum Mode: Sendable {
        /// Return the stored token if fresh, else refresh.
        case ensureFresh
        /// Refresh unless the stored token is fresh and differs from this rejected one.
        case replace(Redacted<String>)
        /// Refresh now (keep-alive of a refresh token).
        case always
    }

    private struct Flight {
        var id: UInt64
        var task: Task<Result<Redacted<String>, OAuthError>, Never>
    }

    private var cache: [String: StoredToken] = [:]
    private var flights: [String: Flight] = [:]
    private var nextFlightID: UInt64 = 0
    private var lastUse: [String: Date] = [:]
    /// Told of every refresh's outcome (account, succeeded), for the statistics; nil outside `serve`.
    private var onRefresh: (@Sendable (String, Bool) -> Void)?

    /// Sets the refresh observer (serve counts `token.refresh.ok` / `token.refresh.failed` with it).
    public func observeRefreshes(_ observer: @escaping @Sendable (String, Bool) -> Void) {
        onRefresh = observer
    }

    /// A service over `client` and `store`; `now` and `sleep` are injected so tests control time.
    public init(
        client: OAuthClient,
        store: any TokenStore,
        policy: RefreshPolicy = .standard,
        logger: Logger = Logger(label: "mailgate.oauth"),
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Double) async -> Void = { seconds in
            try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1_000_000_000))
        }
    ) {
        self.client = client
        self.store = store
        self.policy = policy
        self.logger = logger
        self.now = now
        self.sleep = sleep
    }

    // MARK: - API

    /// A valid access token for `account` (the mailbox address), refreshed if needed.
    public func accessToken(for account: String) async throws(OAuthError) -> Redacted<String> {
        lastUse[account] = now()
        if let flight = flights[account] { return try await flight.task.value.get() }
        if let cached = cache[account], isFresh(cached) { return cached.accessToken }
        return try await fly(account: account, mode: .ensureFresh)
    }

    /// A new access token after the upstream rejected `rejectedToken` (refreshes even if it looked valid).
    ///
    /// If another caller already replaced that exact token, the newer one is returned without another request.
    public func forceRefresh(for account: String, rejectedToken: Redacted<String>) async throws(OAuthError)
        -> Redacted<String>
    {
        lastUse[account] = now()
        // A flight already under way may bring the replacement; if it only re-read the rejected token, fly again.
        for _ in 0..<3 {
            guard let flight = flights[account] else { break }
            let token = try await flight.task.value.get()
            if token != rejectedToken { return token }
        }
        if let cached = cache[account], cached.accessToken != rejectedToken, isFresh(cached) {
            return cached.accessToken
        }
        return try await fly(account: account, mode: .replace(rejectedToken))
    }

    /// Refreshes now even if the token is fresh (keeps an idle account's refresh token alive); single-flight.
    public func refreshNow(for account: String) async throws(OAuthError) {
        if let flight = flights[account] {
            _ = try await flight.task.value.get()
            return
        }
        _ = try await fly(account: account, mode: .always)
    }

    /// The stored tokens (never refreshed by this call) and when a session last asked for a token.
    public func snapshot(for account: String) async throws(OAuthError) -> (token: StoredToken?, lastUsed: Date?) {
        let token = try await load(account: account)
        return (token, lastUse[account])
    }

    /// Drops the in-memory copy, so the next call reads the store (after `account connect` in this process).
    public func forget(account: String) {
        cache[account] = nil
    }

    // MARK: - Single flight

    private func fly(account: String, mode: Mode) async throws(OAuthError) -> Redacted<String> {
        nextFlightID &+= 1
        let id = nextFlightID
        // The task inherits this actor; it cannot start before `flights` holds it, since we do not suspend first.
        let task = Task { () -> Result<Redacted<String>, OAuthError> in
            let result: Result<Redacted<String>, OAuthError>
            do throws(OAuthError) {
                result = .success(try await self.resolve(account: account, mode: mode))
            } catch {
                result = .failure(error)
            }
            if self.flights[account]?.id == id { self.flights[account] = nil }
            return result
        }
        flights[account] = Flight(id: id, task: task)
        return try await task.value.get()
    }

    private func resolve(account: String, mode: Mode) async throws(OAuthError) -> Redacted<String> {
        guard let stored = try await load(account: account) else {
            cache[account] = nil
            throw .notConnected(account: account)
        }
        if stored.needsReconnect {
            cache[account] = nil
            throw .needsReconnect(account: account)
        }
        switch mode {
        case .ensureFresh where isFresh(stored):
            cache[account] = stored
            return stored.accessToken
        case .replace(let rejected) where stored.accessToken != rejected && isFresh(stored):
            cache[account] = stored
            return stored.accessToken
        default:
            do {
                return try await refresh(account: account, stored: stored)
            } catch {
                // The identity platform is down (retries spent) but the token in hand has not expired: use it
                // until it does (issue 13). Only when the caller did not see it refused, and with a margin so it
                // does not expire during the login it is for.
                guard case .ensureFresh = mode, case .temporarilyUnavailable = error,
                    stored.expiresAt.timeIntervalSince(now()) > Self.lastUsableSeconds
                else { throw error }
                logger.warning(
                    "identity platform unavailable; using the cached access token until it expires",
                    metadata: [
                        "account": "\(sanitizeForLog(account))",
                        "seconds_left": "\(Int(stored.expiresAt.timeIntervalSince(now())))",
                    ])
                cache[account] = stored
                return stored.accessToken
            }
        }
    }

    /// A cached token with less than this many seconds left is not handed out when a refresh failed: the
    /// login or message it is for could outlast it.
    static let lastUsableSeconds: TimeInterval = 30

    private func refresh(account: String, stored: StoredToken) async throws(OAuthError) -> Redacted<String> {
        let response: TokenResponse
        let clientCredentials = client.settings.flow == .clientCredentials
        do {
            if clientCredentials {
                response = try await withRetries { () async throws(OAuthError) -> TokenResponse in
                    try await self.client.clientCredentials()
                }
            } else {
                guard let refreshToken = stored.refreshToken else {
                    try await giveUp(account: account, reason: "no refresh token is stored")
                }
                response = try await withRetries { () async throws(OAuthError) -> TokenResponse in
                    try await self.client.refresh(refreshToken: refreshToken)
                }
            }
        } catch {
            onRefresh?(account, false)
            if !clientCredentials, let reason = Self.reconnectReason(error) {
                try await giveUp(account: account, reason: reason)
            }
            logger.error(
                "token refresh failed", metadata: ["account": "\(sanitizeForLog(account))", "error": "\(error)"])
            throw error
        }
        let renewed = response.storedToken(issuedAt: now(), previousRefreshToken: stored.refreshToken)
        do {
            try await store.save(account: account, token: renewed)
        } catch {
            cache[account] = nil
            throw .tokenStoreFailed(account: account, reason: Self.describe(error))
        }
        cache[account] = renewed
        onRefresh?(account, true)
        logger.info(
            "token refreshed",
            metadata: ["account": "\(sanitizeForLog(account))", "expires_in": "\(response.expiresIn)"])
        return renewed.accessToken
    }

    /// Marks the account and throws `.needsReconnect`; a failing mark is logged, the error stays the same.
    private func giveUp(account: String, reason: String) async throws(OAuthError) -> Never {
        cache[account] = nil
        do {
            try await store.markNeedsReconnect(account: account, reason: reason)
        } catch {
            logger.error(
                "could not mark the account as needing reconnect",
                metadata: ["account": "\(sanitizeForLog(account))", "error": "\(Self.describe(error))"])
        }
        logger.warning(
            "sign-in expired or revoked; run `mailgate account connect`",
            metadata: ["account": "\(sanitizeForLog(account))", "reason": "\(reason)"])
        throw .needsReconnect(account: account)
    }

    /// Runs `operation`, retrying temporary failures after each of `policy.retryDelays`.
    private func withRetries(_ operation: () async throws(OAuthError) -> TokenResponse) async throws(OAuthError)
        -> TokenResponse
    {
        var attempt = 0
        while true {
            do {
                return try await operation()
            } catch  where error.isTemporary {
                guard attempt < policy.retryDelays.count else {
                    throw .temporarilyUnavailable(attempts: attempt + 1, lastReason: Self.shortReason(error))
                }
                logger.notice(
                    "token endpoint unavailable, retrying", metadata: ["reason": "\(Self.shortReason(error))"])
                await sleep(policy.retryDelays[attempt])
                attempt += 1
            }
        }
    }

    // MARK: - Helpers

    private func isFresh(_ token: StoredToken) -> Bool {
        !token.needsReconnect && token.expiresAt.timeIntervalSince(now()) > policy.expiryMargin
    }

    private func load(account: String) async throws(OAuthError) -> StoredToken? {
        do {
            return try await store.load(account: account)
        } catch {
            throw .tokenStoreFailed(account: account, reason: Self.describe(error))
        }
    }

    /// AADSTS numbers that mean "a person must sign in again": 50173 (grant revoked), 70008 and 700082 (refresh
    /// token expired / inactive), 70043 (sign-in frequency), 50076/50078/50079 (MFA), 65001 (consent).
    static let reconnectCodes: Set<Int> = [50173, 70008, 700082, 70043, 50076, 50078, 50079, 65001]

    /// Why a refresh failure needs a person, or nil if it does not.
    static func reconnectReason(_ error: OAuthError) -> String? {
        guard case .tokenEndpoint(let name, _, let codes, _) = error else { return nil }
        let matchedCodes = codes.filter { reconnectCodes.contains($0) }
        if ["invalid_grant", "interaction_required", "consent_required"].contains(name) || !matchedCodes.isEmpty {
            let codeText = codes.prefix(4).map { " AADSTS\($0)" }.joined()
            return "\(sanitizeForLog(name, maximumLength: 40))\(codeText)"
        }
        return nil
    }

    /// A few words for logs and `temporarilyUnavailable(lastReason:)`.
    static func shortReason(_ error: OAuthError) -> String {
        switch error {
        case .network(let reason), .invalidResponse(let reason): return reason
        case .tokenEndpoint(let name, _, _, let status): return "HTTP \(status) \(name)"
        case .responseTooLarge(let what, _): return "oversized \(what)"
        default: return "\(error)"
        }
    }

    /// Store errors are MailGateErrors (no secrets); anything else is reduced to its type name.
    static func describe(_ error: any Error) -> String {
        if let error = error as? any MailGateError { return error.description }
        return "\(type(of: error))"
    }
}
