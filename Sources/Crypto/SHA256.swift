// Crypto: SHA-256, one-shot and streaming, through OpenSSL's EVP digest interface.

internal import COpenSSL

/// SHA-256 (FIPS 180-4) of a whole byte array: content hashes for the sent journal and keyed cache lookups.
public enum SHA256 {
    /// Length of a SHA-256 digest in bytes.
    public static let digestCount = 32

    /// The 32-byte digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The digest of `bytes` as 64 lowercase hex digits, as the journal stores and prints it.
    public static func hex(_ bytes: [UInt8]) -> String {
        hexString(hash(bytes))
    }

    /// Lowercase hex of any bytes (two digits per byte).
    public static func hexString(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Streaming SHA-256 for data that should not be held in memory at once (messages up to 150 MiB).
///
/// Feed it with `update` in any chunking and call `finalize()` exactly once. Not thread-safe: one owner at a time.
public final class SHA256Hasher {
    /// The EVP_MD_CTX; freed in `deinit`.
    private let context: OpaquePointer
    /// Set once `finalize()` has run, after which the context holds no usable state.
    private var isFinalized = false

    /// Starts a new digest.
    public init() {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("OpenSSL could not allocate a digest context (out of memory)")
        }
        self.context = context
        ERR_clear_error()
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL could not start SHA-256: \(drainOpenSSLErrors(fallback: "no reason given"))")
        }
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Adds `bytes` to the digest.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Adds the bytes of `bytes` to the digest, without copying them (for spool files and ByteQueue slices).
    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!isFinalized, "SHA256Hasher.update called after finalize()")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        ERR_clear_error()
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else {
            fatalError("OpenSSL SHA-256 update failed: \(drainOpenSSLErrors(fallback: "no reason given"))")
        }
    }

    /// The 32-byte digest of everything passed to `update`. Calling it twice is a programming error and traps.
    public func finalize() -> [UInt8] {
        precondition(!isFinalized, "SHA256Hasher.finalize called twice")
        isFinalized = true
        var length: UInt32 = 0
        let digest = [UInt8](unsafeUninitializedCapacity: Int(EVP_MAX_MD_SIZE)) { buffer, count in
            ERR_clear_error()
            guard EVP_DigestFinal_ex(context, buffer.baseAddress, &length) == 1 else {
                fatalError("OpenSSL SHA-256 final failed: \(drainOpenSSLErrors(fallback: "no reason given"))")
            }
            count = Int(length)
        }
        precondition(digest.count == SHA256.digestCount)
        return digest
    }
}
