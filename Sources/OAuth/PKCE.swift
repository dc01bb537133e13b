// OAuth: Proof Key for Code Exchange (RFC 7636, S256) and the anti-forgery `state` value.

/// A PKCE verifier and its S256 challenge; the verifier stays local until the code is redeemed.
public struct PKCEPair: Sendable, Equatable {
    /// 43 characters of base64url from 32 random bytes (RFC 7636 §4.1); sent only to the token endpoint.
    public let verifier: String
    /// `base64url(SHA-256(verifier))` without padding (RFC 7636 §4.2); sent in the browser URL.
    public let challenge: String

    /// A pair from its parts (tests, or a verifier restored from elsewhere).
    public init(verifier: String, challenge: String) {
        self.verifier = verifier
        self.challenge = challenge
    }
}
