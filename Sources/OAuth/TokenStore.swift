// OAuth: what the token service persists per account, and the protocol the Store module implements for it.
public import Foundation
public import MailCore

/// The tokens of one account (keyed by the mailbox address, also for a shared mailbox reached with a delegate).
public struct StoredToken: Sendable, Equatable {
    /// The bearer token for XOAUTH2.
    public var accessToken: Redacted<String>
    /// Absent for client-credentials accounts; replaced on every refresh (Microsoft rotates it).
    public var refreshToken: Redacted<String>?
    /// When `accessToken` stops working (from `expires_in` at the time it was issued).
    public var expiresAt: Date
    /// Scopes granted, space-separated, as Microsoft reported them.
    public var scope: String?
    /// Set when a refresh came back `invalid_grant`: no request is made until someone connects again.
    public var needsReconnect: Bool
    /// When this token set (and so its refresh token) was obtained; drives the keep-alive refresh.
    ///
    /// `nil` when the store does not know (older rows); `BackgroundRefresher` then estimates from `expiresAt`.
    public var issuedAt: Date?

    /// A token set from its parts.
    public init(
        accessToken: Redacted<String>, refreshToken: Redacted<String>?, expiresAt: Date, scope: String?,
        needsReconnect: Bool = false, issuedAt: Date? = nil
    ) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.scope = scope
        self.needsReconnect = needsReconnect
        self.issuedAt = issuedAt
    }
}

/// Persistent, encrypted token storage; the Store module implements it, tests use an in-memory one.
///
/// `save` must be durable when it returns: the token service awaits it before handing out a rotated token.
/// Errors thrown here should be `MailGateError`s without secrets; their descriptions reach the log.
public protocol TokenStore: Sendable {
    /// The account's tokens, or nil if it was never connected.
    func load(account: String) async throws -> StoredToken?
    /// Replaces the account's tokens (and clears a needs-reconnect mark).
    func save(account: String, token: StoredToken) async throws
    /// Marks the account so that no refresh is attempted until `mailgate account connect` runs again.
    func markNeedsReconnect(account: String, reason: String) async throws
}
