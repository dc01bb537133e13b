// Gateway: the OAuth token store on MailGate's database, every token sealed by the vault.
import Foundation
import MailCore
public import OAuth
public import Store

/// Persists `OAuth.StoredToken`s in the `token` table, sealed with AES-256-GCM under the vault key.
///
/// The sealed JSON holds the access token, the refresh token, the scope and when the set was issued; the
/// account address is the associated data, so a sealed token copied to another account's row does not open.
public struct VaultTokenStore: TokenStore {
    let database: MailGateDatabase
    let vault: Vault

    public init(database: MailGateDatabase, vault: Vault) {
        self.database = database
        self.vault = vault
    }

    private struct SealedTokens: Codable {
        var accessToken: String
        var refreshToken: String?
        var scope: String?
        var issuedAt: Date?
    }

    public func load(account: String) async throws -> OAuth.StoredToken? {
        guard let row = try database.token(email: account) else { return nil }
        let plain = try vault.open(row.sealed, context: row.accountEmail)
        let tokens = try JSONDecoder().decode(SealedTokens.self, from: Data(plain))
        return OAuth.StoredToken(
            accessToken: Redacted(tokens.accessToken), refreshToken: tokens.refreshToken.map(Redacted.init),
            expiresAt: row.accessExpiresAt, scope: tokens.scope, needsReconnect: row.state == .needsReconnect,
            issuedAt: tokens.issuedAt ?? row.lastRefreshAt)
    }

    public func save(account: String, token: OAuth.StoredToken) async throws {
        let key = account.lowercased()
        let tokens = SealedTokens(
            accessToken: token.accessToken.revealed, refreshToken: token.refreshToken?.revealed, scope: token.scope,
            issuedAt: token.issuedAt)
        let sealed = try vault.seal(Array(try JSONEncoder().encode(tokens)), context: key)
        try database.saveToken(
            email: key, sealed: sealed, accessExpiresAt: token.expiresAt,
            state: token.needsReconnect ? .needsReconnect : .connected, lastRefreshAt: token.issuedAt ?? Date())
    }

    public func markNeedsReconnect(account: String, reason: String) async throws {
        try database.markNeedsReconnect(email: account, reason: reason)
    }
}
