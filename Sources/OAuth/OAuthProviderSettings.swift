// OAuth: who we ask for tokens (authority, tenant, app registration) and for what (flow, scopes).
public import MailCore

/// The identity-platform settings of one `[oauth.NAME]` section, already mapped from the configuration by the caller.
///
/// Endpoints follow Microsoft's v2.0 layout: `{authority}/{tenant}/oauth2/v2.0/{authorize|token|devicecode}`.
public struct OAuthProviderSettings: Sendable {
    /// How tokens are obtained for accounts of this provider.
    public enum Flow: String, Sendable, CaseIterable {
        /// Browser sign-in with authorization code + PKCE and a loopback redirect (delegated, refresh token).
        case authorizationCode = "authorization_code"
        /// Device authorization grant (RFC 8628): a code typed on another device (delegated, refresh token).
        case device
        /// App-only client credentials: no user, no refresh token, a new request whenever the token expires.
        case clientCredentials = "client_credentials"
    }

    /// Microsoft's public cloud login host; tests point this at a stand-in.
    public static let defaultAuthority = "https://login.microsoftonline.com"
    /// Work and school accounts only: the right default for Exchange Online mailboxes.
    public static let defaultTenant = "organizations"
    /// Delegated scopes for IMAP, POP and SMTP AUTH, plus `offline_access` so that a refresh token is issued.
    public static let microsoft365DelegatedScopes = [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/POP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ]
    /// The only scope Microsoft accepts for app-only access to Exchange Online (no refresh token is issued).
    public static let microsoft365AppOnlyScopes = ["https://outlook.office365.com/.default"]

    /// Base URL of the identity platform, without a trailing slash needed.
    public var authority: String
    /// `organizations`, `common`, a tenant GUID or a verified domain (client credentials need one of the last two).
    public var tenant: String
    /// The site's own Entra ID app registration.
    public var clientID: String
    /// Present only for confidential clients; sent on token requests, never logged.
    public var clientSecret: Redacted<String>?
    /// How tokens are obtained.
    public var flow: Flow
    /// Scopes requested; all from one resource (Outlook), space-joined on the wire.
    public var scopes: [String]
    /// Extra trust anchors for the token endpoint's certificate; verification itself is never off.
    public var caFile: String?

    /// Settings with every field given; prefer `microsoft365(clientID:…)`, which fills Microsoft's defaults.
    public init(
        authority: String = OAuthProviderSettings.defaultAuthority,
        tenant: String = OAuthProviderSettings.defaultTenant,
        clientID: String,
        clientSecret: Redacted<String>? = nil,
        flow: Flow = .authorizationCode,
        scopes: [String],
        caFile: String? = nil
    ) {
        self.authority = authority
        self.tenant = tenant
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.flow = flow
        self.scopes = scopes
        self.caFile = caFile
    }

    /// Microsoft 365 ("use default settings"): delegated IMAP/POP/SMTP scopes, or `.default` for client credentials.
    ///
    /// `scopes` overrides the defaults when given (the `scopes = [...]` configuration key).
    public static func microsoft365(
        clientID: String,
        tenant: String = OAuthProviderSettings.defaultTenant,
        clientSecret: Redacted<String>? = nil,
        flow: Flow = .authorizationCode,
        authority: String = OAuthProviderSettings.defaultAuthority,
        scopes: [String]? = nil,
        caFile: String? = nil
    ) -> OAuthProviderSettings {
        let defaults = flow == .clientCredentials ? microsoft365AppOnlyScopes : microsoft365DelegatedScopes
        return OAuthProviderSettings(
            authority: authority, tenant: tenant, clientID: clientID, clientSecret: clientSecret, flow: flow,
            scopes: scopes ?? defaults, caFile: caFile)
    }

    /// Whether this flow yields refresh tokens (client credentials do not; they simply ask again).
    public var issuesRefreshTokens: Bool { flow != .clientCredentials }

    /// `{authority}/{tenant}/oauth2/v2.0/authorize`
    public var authorizeURL: String { endpoint("authorize") }
    /// `{authority}/{tenant}/oauth2/v2.0/token`
    public var tokenURL: String { endpoint("token") }
    /// `{authority}/{tenant}/oauth2/v2.0/devicecode`
    public var deviceCodeURL: String { endpoint("devicecode") }

    private func endpoint(_ name: String) -> String {
        var base = authority
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)/\(tenant)/oauth2/v2.0/\(name)"
    }

    /// Checks what would otherwise fail later at Microsoft with a less helpful message.
    ///
    /// Called by `OAuthClient` before every request; the configuration checker may call it too.
    public func validate() throws(OAuthError) {
        if clientID.isEmpty {
            throw .invalidSettings(reason: "client_id is empty; set it to your Entra ID app registration's id")
        }
        let tenantAllowed =
            !tenant.isEmpty
            && tenant.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            }
        if !tenantAllowed {
            throw .invalidSettings(reason: "tenant must be organizations, common, consumers, a tenant id or a domain")
        }
        if scopes.isEmpty {
            throw .invalidSettings(reason: "no scopes are configured")
        }
        if flow == .clientCredentials {
            if clientSecret == nil {
                throw .invalidSettings(reason: "flow client_credentials needs client_secret")
            }
            if ["common", "organizations", "consumers"].contains(tenant.lowercased()) {
                throw .invalidSettings(
                    reason: "flow client_credentials needs a specific tenant (its id or domain), not \(tenant)")
            }
        }
        _ = try EndpointURL(parsing: tokenURL, allowInsecureLoopback: true)
    }
}
