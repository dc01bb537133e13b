// Store: the vault: AES-256-GCM sealing of tokens under a 0600 key file in the state directory.
internal import Crypto
internal import Glibc
public import MailCore

/// Why the vault could not be opened or used.
public enum VaultError: MailGateError, Equatable {
    /// The key file is readable or writable by group or others.
    case keyFileTooOpen(path: String, mode: UInt32)
    /// The key file does not hold exactly 32 bytes.
    case keyFileWrongSize(path: String, actualCount: Int)
    /// The key file could not be created, read or synced.
    case keyFileUnusable(path: String, reason: String)
    /// A sealed value did not open: altered, sealed for another account, or sealed under another key.
    case openFailed(context: String)
    /// Sealing failed inside OpenSSL.
    case sealFailed(reason: String)

    public var description: String {
        switch self {
        case .keyFileTooOpen(let path, let mode):
            return "the vault key \(path) has mode \(String(mode, radix: 8)), so other users may read or change it; "
                + "run chmod 600 \(path) (and check who could have copied it)."
        case .keyFileWrongSize(let path, let actualCount):
            return "the vault key \(path) is \(actualCount) bytes instead of 32; restore it from a backup, or remove "
                + "it and reconnect every account."
        case .keyFileUnusable(let path, let reason):
            return
                "the vault key \(path) cannot be used (\(reason)); check the state directory's owner and permissions."
        case .openFailed(let context):
            return "the stored token of \(context) does not decrypt (altered, or sealed under another key); run "
                + "`mailgate account connect \(context)` again."
        case .sealFailed(let reason):
            return "sealing a token failed (\(reason)); check the OpenSSL installation."
        }
    }
}

/// Seals secrets (the OAuth tokens) so that the database alone reveals none of them.
///
/// The key is 32 random bytes in `<state_dir>/vault.key`, created on first use with mode 0600 (`O_CREAT|O_EXCL`,
/// then `fchmod`, so the process umask cannot loosen it) and synced to disk. A key file that group or others can
/// read or write is refused. Each sealed value is bound to a context (the account's email) through AES-GCM's
/// associated data, so a sealed token copied to another account's row does not open.
public final class Vault: Sendable {
    /// File name of the key inside the state directory.
    public static let keyFileName = "vault.key"

    private let key: [UInt8]
    /// Absolute path of the key file.
    public let keyPath: String

    private init(key: [UInt8], keyPath: String) {
        self.key = key
        self.keyPath = keyPath
    }

    /// Opens the vault of `stateDirectory`, creating its key on first use.
    public static func open(stateDirectory: String) throws(VaultError) -> Vault {
        let path = stateDirectory + "/" + keyFileName
        if let key = try readKey(path) { return Vault(key: key, keyPath: path) }
        let key = SecureRandom.bytes(AESGCM.keyCount)
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            let code = errno
            // Another process created it between our read and create: use theirs.
            if code == EEXIST, let existing = try readKey(path) { return Vault(key: existing, keyPath: path) }
            throw .keyFileUnusable(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else {
            throw .keyFileUnusable(path: path, reason: String(cString: strerror(errno)))
        }
        let written = key.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == key.count, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw .keyFileUnusable(path: path, reason: "writing failed: \(reason)")
        }
        return Vault(key: key, keyPath: path)
    }

    /// The key, or `nil` if the file does not exist; refuses loose permissions and wrong sizes.
    private static func readKey(_ path: String) throws(VaultError) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .keyFileUnusable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw .keyFileUnusable(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .keyFileUnusable(path: path, reason: "not a regular file") }
        let permissions = UInt32(info.st_mode) & 0o777
        guard permissions & 0o077 == 0 else { throw .keyFileTooOpen(path: path, mode: permissions) }
        guard info.st_size == Int(AESGCM.keyCount) else {
            throw .keyFileWrongSize(path: path, actualCount: Int(info.st_size))
        }
        var key = [UInt8](repeating: 0, count: AESGCM.keyCount)
        let count = key.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count == AESGCM.keyCount else { throw .keyFileWrongSize(path: path, actualCount: max(0, count)) }
        return key
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the account email).
    public func seal(_ plaintext: [UInt8], context: String) throws(VaultError) -> [UInt8] {
        do {
            return try AESGCM.seal(plaintext, key: key, associatedData: Array(context.utf8))
        } catch {
            throw .sealFailed(reason: error.description)
        }
    }

    /// Decrypts a value sealed for the same `context` under this vault's key.
    public func open(_ sealed: [UInt8], context: String) throws(VaultError) -> [UInt8] {
        do {
            return try AESGCM.open(sealed, key: key, associatedData: Array(context.utf8))
        } catch {
            throw .openFailed(context: context)
        }
    }
}
