// OAuth: refreshes tokens ahead of need and keeps idle accounts' refresh tokens alive.
public import Foundation
public import Logging
import MailCore

/// When the background refresher acts.
public struct BackgroundRefreshPolicy: Sendable, Equatable {
    /// Pre-warm an access token that expires within this many seconds…
    public var expiryWindow: TimeInterval
    /// …but only for accounts a session used within this many seconds (idle accounts refresh on demand).
    public var activeWithin: TimeInterval
    /// Refresh a refresh token older than this even if nobody used the account (Microsoft's last 90 days idle).
    public var refreshTokenMaxAge: TimeInterval
    /// Seconds between passes.
    public var passInterval: TimeInterval

    /// A policy from its parts.
    public init(
        expiryWindow: TimeInterval = 600, activeWithin: TimeInterval = 3_600,
        refreshTokenMaxAge: TimeInterval = 7 * 86_400, passInterval: TimeInterval = 300
    ) {
        self.expiryWindow = expiryWindow
        self.activeWithin = activeWithin
        self.refreshTokenMaxAge = refreshTokenMaxAge
        self.passInterval = passInterval
    }

    /// 10-minute pre-warm window for accounts used in the last hour, weekly keep-alive, a pass every 5 minutes.
    public static let standard = BackgroundRefreshPolicy()
}

/// What one pass decided (and did) for one account.
public enum RefreshDecision: Sendable, Equatable {
    /// The token is fine, or the account is idle and its refresh token young enough.
    case nothing
    /// An active account's access token expires within the window: refreshed ahead of the next login.
    case refreshExpiring
    /// The refresh token is older than the maximum age: refreshed to keep it alive.
    case keepAlive
    /// The account needs `mailgate account connect`; nothing is requested.
    case needsReconnect
    /// No token is stored for the account.
    case notConnected

    /// The pure scheduling rule, testable with any clock.
    ///
    /// The refresh token's age is `issuedAt`, or, when the store does not know it, estimated as one hour
    /// before `expiresAt` (Microsoft's access tokens live 60–90 minutes).
    public static func decide(
        token: StoredToken?, lastUsed: Date?, now: Date, policy: BackgroundRefreshPolicy
    ) -> RefreshDecision {
        guard let token else { return .notConnected }
        if token.needsReconnect { return .needsReconnect }
        let issued = token.issuedAt ?? token.expiresAt.addingTimeInterval(-3_600)
        if token.refreshToken != nil && now.timeIntervalSince(issued) >= policy.refreshTokenMaxAge {
            return .keepAlive
        }
        if let lastUsed, now.timeIntervalSince(lastUsed) <= policy.activeWithin,
            token.expiresAt.timeIntervalSince(now) <= policy.expiryWindow
        {
            return .refreshExpiring
        }
        return .nothing
    }
}

/// Runs `RefreshDecision.decide` over the accounts every `passInterval`, inside `mailgate serve`.
///
/// Logs a warning once per account that needs reconnecting (again only after it was reconnected and lost again);
/// never logs a token.
public actor BackgroundRefresher {
    private let service: TokenService
    private let accounts: @Sendable () async -> [String]
    private let policy: BackgroundRefreshPolicy
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let sleep: @Sendable (Double) async -> Void
    private var warned: Set<String> = []

    /// A refresher over `service` for the accounts `accounts()` lists at each pass.
    public init(
        service: TokenService,
        accounts: @escaping @Sendable () async -> [String],
        policy: BackgroundRefreshPolicy = .standard,
        logger: Logger = Logger(label: "mailgate.oauth.refresher"),
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Double) async -> Void = { seconds in
            try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1_000_000_000))
        }
    ) {
        self.service = service
        self.accounts = accounts
        self.policy = policy
        self.logger = logger
        self.now = now
        self.sleep = sleep
    }

    /// One pass over every account; returns what was decided, and for refreshes whether they failed.
    @discardableResult
    public func runPass() async -> [String: (decision: RefreshDecision, error: OAuthError?)] {
        var outcome: [String: (decision: RefreshDecision, error: OAuthError?)] = [:]
        for account in await accounts() {
            let decision: RefreshDecision
            do throws(OAuthError) {
                let snapshot = try await service.snapshot(for: account)
                decision = RefreshDecision.decide(
                    token: snapshot.token, lastUsed: snapshot.lastUsed, now: now(), policy: policy)
            } catch {
                logger.error(
                    "could not read the token state",
                    metadata: ["account": "\(sanitizeForLog(account))", "error": "\(error)"])
                outcome[account] = (.nothing, error)
                continue
            }
            var failure: OAuthError?
            switch decision {
            case .refreshExpiring, .keepAlive:
                do throws(OAuthError) {
                    try await service.refreshNow(for: account)
                } catch {
                    failure = error
                    if case .needsReconnect = error {
                        warnOnce(account)
                    } else {
                        logger.warning(
                            "background token refresh failed",
                            metadata: ["account": "\(sanitizeForLog(account))", "error": "\(error)"])
                    }
                }
            case .needsReconnect:
                warnOnce(account)
            case .nothing, .notConnected:
                break
            }
            if decision != .needsReconnect && failure == nil { warned.remove(account) }
            outcome[account] = (decision, failure)
        }
        return outcome
    }

    /// Passes until the surrounding task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            await runPass()
            await sleep(policy.passInterval)
        }
    }

    /// Accounts currently warned about (for `account list` and tests).
    public var accountsNeedingReconnect: Set<String> { warned }

    private func warnOnce(_ account: String) {
        guard warned.insert(account).inserted else { return }
        logger.warning(
            "\(OAuthError.needsReconnect(account: account).description)",
            metadata: ["account": "\(sanitizeForLog(account))"])
    }
}
