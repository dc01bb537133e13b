// Crypto: random bytes from OpenSSL's CSPRNG and a constant-time comparison.

internal import COpenSSL

/// Cryptographically secure random bytes (RAND_bytes): salts, nonces, keys, state tokens.
public enum SecureRandom {
    /// `count` random bytes. Traps only if OpenSSL's generator itself fails (never silently weaker).
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "SecureRandom.bytes needs a non-negative count")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var offset = 0
            while offset < count {
                let chunk = min(count - offset, 1 << 20)
                ERR_clear_error()
                guard RAND_bytes(buffer.baseAddress! + offset, Int32(chunk)) == 1 else {
                    fatalError("OpenSSL RAND_bytes failed: \(drainOpenSSLErrors(fallback: "no reason given"))")
                }
                offset += chunk
            }
            initialized = count
        }
    }
}

/// Compares two byte arrays in time that depends only on their length (CRYPTO_memcmp), so that comparing a
/// secret (hash, tag, token) leaks nothing about where it differs. Arrays of different lengths are unequal.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            CRYPTO_memcmp(left.baseAddress!, right.baseAddress!, a.count) == 0
        }
    }
}
