// Crypto: hashing, AEAD, password hashing, randomness and constant-time compare on the system OpenSSL.

public import MailCore

/// What can go wrong in `Crypto`; every case says, in one sentence, what to do about it.
///
/// No case ever carries key material, plaintext or a password: only counts and OpenSSL's own reason texts.
public enum CryptoError: MailGateError, Equatable {
    /// A key of the wrong size was given (AES-256-GCM needs exactly 32 bytes).
    case invalidKeyLength(actualCount: Int, expectedCount: Int)
    /// A sealed box is shorter than nonce plus tag, so it cannot have come from `AESGCM.seal`.
    case sealedMessageTooShort(actualCount: Int, minimumCount: Int)
    /// The sealed box, its associated data or the key do not match: the data was altered or the key is wrong.
    case authenticationFailed
    /// OpenSSL refused an operation; `reason` is its drained error stack (or a fixed text if the stack was empty).
    case openSSLFailure(operation: String, reason: String)

    public var description: String {
        switch self {
        case .invalidKeyLength(let actualCount, let expectedCount):
            "The key is \(actualCount) bytes long but \(expectedCount) are required; use a key made for this purpose."
        case .sealedMessageTooShort(let actualCount, let minimumCount):
            "The sealed data is \(actualCount) bytes long, less than the \(minimumCount) any sealed value has; "
                + "it is damaged or not sealed data at all."
        case .authenticationFailed:
            "The sealed data failed authentication (it was altered, or the key is not the one it was sealed with); "
                + "restore the right key file or re-create the secret."
        case .openSSLFailure(let operation, let reason):
            "OpenSSL failed during \(operation): \(reason); check the OpenSSL installation and available memory."
        }
    }
}
