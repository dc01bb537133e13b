// Crypto: HMAC-SHA-256 (RFC 2104) for keyed hashes such as the login cache key.

internal import COpenSSL

/// HMAC-SHA-256: a keyed hash, so that a cache key derived from credentials reveals nothing without the key.
public enum HMACSHA256 {
    /// The 32-byte HMAC-SHA-256 of `message` under `key` (any key length; long keys are hashed per RFC 2104).
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        precondition(key.count <= Int(Int32.max), "HMAC key too long")
        return withNonNullBytes(key) { (keyPointer, keyCount) -> [UInt8] in
            withNonNullBytes(message) { (messagePointer, messageCount) -> [UInt8] in
                [UInt8](unsafeUninitializedCapacity: Int(EVP_MAX_MD_SIZE)) { buffer, count in
                    var length: UInt32 = 0
                    ERR_clear_error()
                    guard
                        HMAC(
                            EVP_sha256(), keyPointer, Int32(keyCount), messagePointer, messageCount,
                            buffer.baseAddress, &length) != nil
                    else {
                        fatalError("OpenSSL HMAC-SHA-256 failed: \(drainOpenSSLErrors(fallback: "no reason given"))")
                    }
                    count = Int(length)
                }
            }
        }
    }
}
