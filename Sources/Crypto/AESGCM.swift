// Crypto: AES-256-GCM sealing (nonce || ciphertext || tag) for tokens at rest.

internal import COpenSSL

/// AES-256-GCM authenticated encryption: tokens at rest are sealed under the state directory's key file.
///
/// Format of a sealed value: 12-byte random nonce, ciphertext (same length as the plaintext), 16-byte tag.
/// A random 96-bit nonce is safe for far more seals than MailGate will ever make under one key.
public enum AESGCM {
    /// Key length in bytes (AES-256).
    public static let keyCount = 32
    /// Nonce length in bytes (GCM's recommended 96 bits).
    public static let nonceCount = 12
    /// Tag length in bytes (full 128-bit tag).
    public static let tagCount = 16

    /// Encrypts and authenticates `plaintext` (and authenticates `associatedData`, which is not stored).
    ///
    /// - Throws: `CryptoError.invalidKeyLength` unless `key` has 32 bytes; `.openSSLFailure` if OpenSSL fails.
    public static func seal(
        _ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        try checkKey(key)
        let nonce = SecureRandom.bytes(nonceCount)
        let context = try CipherContext()
        try context.check(EVP_EncryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, key, nonce), "AES-GCM init")
        try context.addAssociatedData(associatedData, encrypting: true)
        var sealed = nonce
        sealed.reserveCapacity(nonceCount + plaintext.count + tagCount)
        sealed += try context.transform(plaintext, encrypting: true)
        var finalLength: Int32 = 0
        var scratch = [UInt8](repeating: 0, count: 16)
        try context.check(EVP_EncryptFinal_ex(context.pointer, &scratch, &finalLength), "AES-GCM final")
        sealed += scratch.prefix(Int(finalLength))  // zero for GCM, kept for form
        var tag = [UInt8](repeating: 0, count: tagCount)
        try context.check(
            EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_GET_TAG, Int32(tagCount), &tag), "AES-GCM tag")
        sealed += tag
        return sealed
    }

    /// Checks and decrypts a value made by `seal` with the same key and associated data.
    ///
    /// - Throws: `CryptoError.authenticationFailed` if any byte, the associated data or the key differ;
    ///   `.sealedMessageTooShort` for input shorter than nonce + tag; `.invalidKeyLength` for a bad key.
    public static func open(
        _ sealed: [UInt8], key: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        try checkKey(key)
        guard sealed.count >= nonceCount + tagCount else {
            throw .sealedMessageTooShort(actualCount: sealed.count, minimumCount: nonceCount + tagCount)
        }
        let nonce = Array(sealed[0..<nonceCount])
        let ciphertext = Array(sealed[nonceCount..<(sealed.count - tagCount)])
        var tag = Array(sealed[(sealed.count - tagCount)...])
        let context = try CipherContext()
        try context.check(EVP_DecryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, key, nonce), "AES-GCM init")
        try context.addAssociatedData(associatedData, encrypting: false)
        var plaintext = try context.transform(ciphertext, encrypting: false)
        try context.check(
            EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_SET_TAG, Int32(tagCount), &tag), "AES-GCM tag")
        var finalLength: Int32 = 0
        var scratch = [UInt8](repeating: 0, count: 16)
        ERR_clear_error()
        guard EVP_DecryptFinal_ex(context.pointer, &scratch, &finalLength) == 1 else {
            ERR_clear_error()
            // Do not hand back unauthenticated plaintext, not even in memory we keep.
            for index in plaintext.indices { plaintext[index] = 0 }
            throw .authenticationFailed
        }
        plaintext += scratch.prefix(Int(finalLength))
        return plaintext
    }

    private static func checkKey(_ key: [UInt8]) throws(CryptoError) {
        guard key.count == keyCount else { throw .invalidKeyLength(actualCount: key.count, expectedCount: keyCount) }
    }
}

/// Owns one EVP_CIPHER_CTX for the length of one seal or open.
private final class CipherContext {
    let pointer: OpaquePointer

    init() throws(CryptoError) {
        ERR_clear_error()
        guard let pointer = EVP_CIPHER_CTX_new() else {
            throw .openSSLFailure(operation: "AES-GCM setup", reason: drainOpenSSLErrors(fallback: "out of memory"))
        }
        self.pointer = pointer
    }

    deinit {
        EVP_CIPHER_CTX_free(pointer)
    }

    /// Maps an OpenSSL status (1 = success) to a thrown error carrying the drained error stack.
    func check(_ status: Int32, _ operation: String) throws(CryptoError) {
        guard status == 1 else {
            throw .openSSLFailure(operation: operation, reason: drainOpenSSLErrors(fallback: "status \(status)"))
        }
    }

    func addAssociatedData(_ data: [UInt8], encrypting: Bool) throws(CryptoError) {
        var offset = 0
        while offset < data.count {
            let chunk = min(data.count - offset, Self.chunkCount)
            var ignored: Int32 = 0
            let status = data.withUnsafeBufferPointer { buffer in
                ERR_clear_error()
                return encrypting
                    ? EVP_EncryptUpdate(pointer, nil, &ignored, buffer.baseAddress! + offset, Int32(chunk))
                    : EVP_DecryptUpdate(pointer, nil, &ignored, buffer.baseAddress! + offset, Int32(chunk))
            }
            try check(status, "AES-GCM associated data")
            offset += chunk
        }
    }

    /// Encrypts or decrypts `input` in chunks that fit OpenSSL's `int` lengths; GCM output equals input length.
    func transform(_ input: [UInt8], encrypting: Bool) throws(CryptoError) -> [UInt8] {
        var failure: CryptoError? = nil
        let output = [UInt8](unsafeUninitializedCapacity: input.count) { outBuffer, initialized in
            input.withUnsafeBufferPointer { inBuffer in
                var offset = 0
                while offset < input.count {
                    let chunk = min(input.count - offset, Self.chunkCount)
                    var produced: Int32 = 0
                    ERR_clear_error()
                    let status =
                        encrypting
                        ? EVP_EncryptUpdate(
                            pointer, outBuffer.baseAddress! + offset, &produced, inBuffer.baseAddress! + offset,
                            Int32(chunk))
                        : EVP_DecryptUpdate(
                            pointer, outBuffer.baseAddress! + offset, &produced, inBuffer.baseAddress! + offset,
                            Int32(chunk))
                    guard status == 1, Int(produced) == chunk else {
                        failure = .openSSLFailure(
                            operation: "AES-GCM update", reason: drainOpenSSLErrors(fallback: "status \(status)"))
                        break
                    }
                    offset += chunk
                }
                initialized = failure == nil ? input.count : 0
            }
        }
        if let failure { throw failure }
        return output
    }

    /// Bytes per EVP update call (well under Int32.max).
    private static let chunkCount = 1 << 24
}
