// OAuth: generating PKCE verifiers, S256 challenges and `state` values from the system's CSPRNG.
import Crypto

/// RFC 7636 with the S256 method only (`plain` would put the verifier itself in the browser's URL).
public enum PKCE {
    /// A fresh pair: the verifier is base64url of 32 random bytes (43 characters, RFC 7636 §4.1's recommendation).
    public static func generate() -> PKCEPair {
        let verifier = Base64URL.encode(SecureRandom.bytes(32))
        return PKCEPair(verifier: verifier, challenge: challenge(for: verifier))
    }

    /// `BASE64URL(SHA256(ASCII(verifier)))` without padding (RFC 7636 §4.2).
    public static func challenge(for verifier: String) -> String {
        Base64URL.encode(SHA256.hash(Array(verifier.utf8)))
    }
}

/// The anti-forgery `state` parameter (RFC 6749 §10.12).
public enum OAuthState {
    /// 128 random bits, base64url (22 characters).
    public static func generate() -> String {
        Base64URL.encode(SecureRandom.bytes(16))
    }
}
