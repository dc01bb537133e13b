// Crypto: salted scrypt password hashes for local logins, with bounded parameters on verification.

internal import COpenSSL
import MailCore

/// Local passwords are stored only as salted scrypt hashes (RFC 7914) in a self-describing string:
///
///     $scrypt$ln=15,r=8,p=1$<base64 salt>$<base64 hash>
///
/// (standard base64 alphabet, no padding; `ln` is log2 of N). New hashes use N=2^15, r=8, p=1 (32 MiB,
/// tens of milliseconds), a 16-byte salt and a 32-byte key. Verification accepts other parameters only
/// inside `Parameters.verificationBounds`, so a hostile or corrupted stored string cannot exhaust memory or CPU.
public enum PasswordHash {
    /// scrypt cost parameters as written in the encoded string.
    public struct Parameters: Sendable, Equatable {
        /// log2 of the CPU/memory cost N.
        public var logN: Int
        /// Block size r.
        public var blockSize: Int
        /// Parallelism p.
        public var parallelism: Int

        public init(logN: Int, blockSize: Int, parallelism: Int) {
            self.logN = logN
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// What `hash` uses for new passwords.
        public static let standard = Parameters(logN: 15, blockSize: 8, parallelism: 1)

        /// Largest memory (128·r·N bytes) a verification may ask for: 256 MiB.
        public static let maximumMemory = 256 << 20

        /// Largest work N·r·p a verification may ask for: 2^22, 16 times the standard parameters
        /// (seconds of CPU, not minutes).
        public static let maximumWork = 1 << 22

        /// Whether a stored string may ask for these parameters: 1 ≤ ln ≤ 20, 1 ≤ r ≤ 32, 1 ≤ p ≤ 16,
        /// memory within `maximumMemory` and total work (N·r·p) within `maximumWork`.
        public var isWithinVerificationBounds: Bool {
            guard (1...20).contains(logN), (1...32).contains(blockSize), (1...16).contains(parallelism) else {
                return false
            }
            return 128 * blockSize * (1 << logN) <= Self.maximumMemory
                && (1 << logN) * blockSize * parallelism <= Self.maximumWork
        }

        /// Bytes scrypt needs: the V array (128·r·(N+2)) plus the B array (128·r·p).
        var memoryCount: Int { 128 * blockSize * ((1 << logN) + 2) + 128 * blockSize * parallelism }
    }

    /// Salt length in bytes for new hashes.
    public static let saltCount = 16
    /// Derived key length in bytes for new hashes.
    public static let keyCount = 32

    /// Hashes `password` with a fresh random salt; the result is what the account store keeps.
    ///
    /// - Throws: `CryptoError.openSSLFailure` if OpenSSL refuses (for example out of memory).
    public static func hash(_ password: String) throws(CryptoError) -> String {
        let salt = SecureRandom.bytes(saltCount)
        let parameters = Parameters.standard
        let key = try derive(Array(password.utf8), salt: salt, parameters: parameters, keyCount: keyCount)
        return EncodedHash(parameters: parameters, salt: salt, key: key).encoded
    }

    /// A stand-in hash for accounts that do not exist, made without running scrypt: the standard parameters, a
    /// random salt and a random key. Verifying a password against it costs exactly what a real verification
    /// costs (so an unknown account answers as slowly as a known one) and never succeeds, since no password
    /// derives a random 256-bit key; computing a real decoy at start-up would cost 32 MiB and ~100 ms for nothing.
    public static func decoy() -> String {
        EncodedHash(parameters: .standard, salt: SecureRandom.bytes(saltCount), key: SecureRandom.bytes(keyCount)).encoded
    }

    /// Whether `password` matches `encoded` (compared in constant time).
    ///
    /// Returns `false`, without running scrypt, for a malformed string or parameters outside the bounds.
    public static func verify(_ password: String, against encoded: String) -> Bool {
        guard let stored = EncodedHash(parsing: encoded) else { return false }
        guard
            let key = try? derive(
                Array(password.utf8), salt: stored.salt, parameters: stored.parameters, keyCount: stored.key.count)
        else { return false }
        return constantTimeEqual(key, stored.key)
    }

    /// Runs EVP_PBE_scrypt with a memory ceiling just above what these parameters need.
    static func derive(
        _ password: [UInt8], salt: [UInt8], parameters: Parameters, keyCount: Int
    ) throws(CryptoError) -> [UInt8] {
        let maximumMemory = UInt64(parameters.memoryCount + (1 << 20))
        return try withNonNullBytes(password) { (passwordPointer, passwordCount) throws(CryptoError) -> [UInt8] in
            try withNonNullBytes(salt) { (saltPointer, saltCount) throws(CryptoError) -> [UInt8] in
                var key = [UInt8](repeating: 0, count: keyCount)
                ERR_clear_error()
                let status = passwordPointer.withMemoryRebound(to: CChar.self, capacity: max(passwordCount, 1)) {
                    EVP_PBE_scrypt(
                        $0, passwordCount, saltPointer, saltCount, UInt64(1) << UInt64(parameters.logN),
                        UInt64(parameters.blockSize), UInt64(parameters.parallelism), maximumMemory, &key, keyCount)
                }
                guard status == 1 else {
                    throw .openSSLFailure(operation: "scrypt", reason: drainOpenSSLErrors(fallback: "refused"))
                }
                return key
            }
        }
    }
}

/// The parsed form of "$scrypt$ln=…,r=…,p=…$salt$hash"; parsing enforces every bound.
struct EncodedHash: Equatable {
    var parameters: PasswordHash.Parameters
    var salt: [UInt8]
    var key: [UInt8]

    /// Longest encoded string accepted (a generous bound; real ones are about 100 characters).
    static let maximumLength = 256
    /// Accepted salt lengths when verifying.
    static let saltCounts = 8...64
    /// Accepted key lengths when verifying.
    static let keyCounts = 16...64

    init(parameters: PasswordHash.Parameters, salt: [UInt8], key: [UInt8]) {
        self.parameters = parameters
        self.salt = salt
        self.key = key
    }

    /// Parses strictly; `nil` for anything malformed or outside the verification bounds.
    init?(parsing text: String) {
        guard text.utf8.count <= Self.maximumLength else { return nil }
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        // "", "scrypt", "ln=..,r=..,p=..", salt, hash
        guard fields.count == 5, fields[0].isEmpty, fields[1] == "scrypt" else { return nil }
        let settings = fields[2].split(separator: ",", omittingEmptySubsequences: false)
        guard settings.count == 3,
            let logN = Self.number(settings[0], named: "ln"),
            let blockSize = Self.number(settings[1], named: "r"),
            let parallelism = Self.number(settings[2], named: "p")
        else { return nil }
        let parameters = PasswordHash.Parameters(logN: logN, blockSize: blockSize, parallelism: parallelism)
        guard parameters.isWithinVerificationBounds,
            let salt = Base64Codec.standard.decode(String(fields[3]), padding: .forbidden),
            let key = Base64Codec.standard.decode(String(fields[4]), padding: .forbidden),
            Self.saltCounts.contains(salt.count), Self.keyCounts.contains(key.count)
        else { return nil }
        self.init(parameters: parameters, salt: salt, key: key)
    }

    var encoded: String {
        "$scrypt$ln=\(parameters.logN),r=\(parameters.blockSize),p=\(parameters.parallelism)$"
            + Base64Codec.standard.encodeString(salt, padding: .optional) + "$" + Base64Codec.standard.encodeString(key, padding: .optional)
    }

    /// Reads "name=digits" with 1 to 3 ASCII digits and no leading zero, so the value cannot overflow.
    private static func number(_ field: Substring, named name: String) -> Int? {
        guard field.hasPrefix(name + "=") else { return nil }
        let digits = field.utf8.dropFirst(name.utf8.count + 1)
        guard (1...3).contains(digits.count), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            digits.count == 1 || digits.first != 0x30
        else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}
