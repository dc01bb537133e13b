// Crypto: base64url for PKCE verifiers, challenges and state values.
import MailCore

/// Base64 with the URL and file name safe alphabet (RFC 4648 §5), written without padding:
/// PKCE verifiers and challenges (RFC 7636), JWT segments, state parameters.
public enum Base64URL {
    /// Encodes `bytes` with `-` and `_`, and no `=` padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        Base64Codec.url.encodeString(bytes, padding: .optional)
    }

    /// Decodes unpadded (or correctly padded) base64url; `nil` for any other character, an impossible
    /// length, or non-zero leftover bits, so one value has exactly one accepted spelling.
    public static func decode(_ text: String) -> [UInt8]? {
        Base64Codec.url.decode(text, padding: .optional)
    }
}
