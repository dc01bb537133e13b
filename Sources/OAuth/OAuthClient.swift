// OAuth: the token grants (authorization code, refresh, client credentials) as single requests, no retries.
public import MailCore

/// Talks to one provider's token endpoint; stateless, so one value can be shared by every queue.
///
/// Retries, caching and persistence belong to `TokenService`; this type only shapes requests and reads answers.
public struct OAuthClient: Sendable {
    /// Where and as whom we ask.
    public let settings: OAuthProviderSettings
    /// How requests travel (HTTPS in production, a fake in tests).
    public let endpoint: any TokenEndpoint

    /// A client for `settings` over `endpoint`.
    public init(settings: OAuthProviderSettings, endpoint: any TokenEndpoint) {
        self.settings = settings
        self.endpoint = endpoint
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3 + RFC 7636 §4.5); `redirectURI` must equal the one in the URL.
    public func exchangeCode(code: Redacted<String>, verifier: String, redirectURI: String) async throws(OAuthError)
        -> TokenResponse
    {
        try await requestToken([
            ("grant_type", "authorization_code"),
            ("code", code.revealed),
            ("redirect_uri", redirectURI),
            ("code_verifier", verifier),
            ("scope", settings.scopes.joined(separator: " ")),
        ])
    }

    /// Trades a refresh token for new tokens (RFC 6749 §6); Microsoft returns a new refresh token to store.
    public func refresh(refreshToken: Redacted<String>) async throws(OAuthError) -> TokenResponse {
        try await requestToken([
            ("grant_type", "refresh_token"),
            ("refresh_token", refreshToken.revealed),
            ("scope", settings.scopes.joined(separator: " ")),
        ])
    }

    /// App-only token (RFC 6749 §4.4); needs a client secret and a specific tenant, yields no refresh token.
    public func clientCredentials() async throws(OAuthError) -> TokenResponse {
        guard settings.clientSecret != nil else {
            throw .invalidSettings(reason: "flow client_credentials needs client_secret")
        }
        return try await requestToken([
            ("grant_type", "client_credentials"),
            ("scope", settings.scopes.joined(separator: " ")),
        ])
    }

    /// POSTs a grant to the token endpoint with `client_id` (and `client_secret` for confidential clients).
    func requestToken(_ grant: [(String, String)]) async throws(OAuthError) -> TokenResponse {
        let response = try await postToken(grant)
        guard (200..<300).contains(response.status) else {
            throw scrubbed(TokenResponseParser.error(for: response), grant: grant)
        }
        return try TokenResponseParser.parseSuccess(response.body)
    }

    /// Removes any secret we sent from remote error text, in case a server ever echoes the request back.
    func scrubbed(_ error: OAuthError, grant: [(String, String)]) -> OAuthError {
        guard case .tokenEndpoint(let name, var description, let codes, let status) = error else { return error }
        let secretKeys: Set<String> = ["code", "refresh_token", "code_verifier", "device_code", "client_secret"]
        var secrets = grant.filter { secretKeys.contains($0.0) }.map(\.1)
        if let secret = settings.clientSecret { secrets.append(secret.revealed) }
        for secret in secrets where secret.count >= 4 {
            description = description.replacing(secret, with: "<redacted>")
        }
        return .tokenEndpoint(error: name, description: description, codes: codes, status: status)
    }

    /// The raw token-endpoint exchange, shared with the device flow (which must look at error codes itself).
    func postToken(_ grant: [(String, String)]) async throws(OAuthError) -> HTTPResponse {
        try settings.validate()
        var form = [("client_id", settings.clientID)]
        form += grant
        if let secret = settings.clientSecret {
            form.append(("client_secret", secret.revealed))
        }
        return try await endpoint.post(url: settings.tokenURL, form: form)
    }
}
