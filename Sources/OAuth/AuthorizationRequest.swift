// OAuth: the browser URL that starts an authorization-code sign-in with PKCE.

/// Builds the `/authorize` URL a person opens to sign in (MS doc `v2-oauth2-auth-code-flow`, RFC 6749 §4.1.1).
public enum AuthorizationRequest {
    /// `{authorize}?client_id=…&response_type=code&redirect_uri=…&response_mode=query&scope=…&state=…`
    /// `&code_challenge=…&code_challenge_method=S256[&login_hint=…]`, every value percent-encoded.
    ///
    /// `redirectURI` must be what the token request later repeats (`LoopbackRedirectReceiver.redirectURI`).
    /// `loginHint` pre-fills the account (the mailbox or its delegate), saving the user a step.
    public static func url(
        settings: OAuthProviderSettings, redirectURI: String, pkce: PKCEPair, state: String, loginHint: String? = nil
    ) -> String {
        let pairs = parameters(
            settings: settings, redirectURI: redirectURI, pkce: pkce, state: state, loginHint: loginHint)
        return "\(settings.authorizeURL)?\(FormEncoding.encode(pairs))"
    }

    /// The query parameters of `url(…)`, in order, before encoding.
    public static func parameters(
        settings: OAuthProviderSettings, redirectURI: String, pkce: PKCEPair, state: String, loginHint: String? = nil
    ) -> [(String, String)] {
        var pairs: [(String, String)] = [
            ("client_id", settings.clientID),
            ("response_type", "code"),
            ("redirect_uri", redirectURI),
            ("response_mode", "query"),
            ("scope", settings.scopes.joined(separator: " ")),
            ("state", state),
            ("code_challenge", pkce.challenge),
            ("code_challenge_method", "S256"),
        ]
        if let loginHint, !loginHint.isEmpty {
            pairs.append(("login_hint", loginHint))
        }
        return pairs
    }
}
