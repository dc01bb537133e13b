// StoreTests: the vault's key file rules and AES-GCM sealing bound to a context.
import Foundation
import Store
import Testing

@Suite("Vault", .serialized)
struct VaultTests {
    @Test("seal and open round trip; the key file is created 0600 and reused")
    func roundTrip() throws {
        let temp = try TemporaryDirectory()
        let previous = umask(0)  // the most permissive umask must not loosen the key file
        defer { umask(previous) }
        let vault = try Vault.open(stateDirectory: temp.path)
        let attributes = try FileManager.default.attributesOfItem(atPath: temp.path + "/vault.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 32)
        let secret = Array("{\"access_token\":\"eyJ0eXAi\",\"refresh_token\":\"0.AAA\"}".utf8)
        let sealed = try vault.seal(secret, context: "alice@contoso.com")
        #expect(sealed.count == secret.count + 28)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("eyJ0eXAi"))
        #expect(try vault.open(sealed, context: "alice@contoso.com") == secret)
        let reopened = try Vault.open(stateDirectory: temp.path)
        #expect(try reopened.open(sealed, context: "alice@contoso.com") == secret)
    }

    @Test("tampering, a wrong context and another key are refused")
    func tamper() throws {
        let temp = try TemporaryDirectory()
        let vault = try Vault.open(stateDirectory: temp.path)
        let sealed = try vault.seal([1, 2, 3, 4], context: "alice@contoso.com")
        for index in sealed.indices {
            var damaged = sealed
            damaged[index] ^= 0x01
            #expect(throws: VaultError.openFailed(context: "alice@contoso.com")) {
                try vault.open(damaged, context: "alice@contoso.com")
            }
        }
        #expect(throws: VaultError.self) { try vault.open(sealed, context: "mallory@contoso.com") }
        #expect(throws: VaultError.self) { try vault.open(Array(sealed.prefix(10)), context: "alice@contoso.com") }
        let other = try TemporaryDirectory()
        let otherVault = try Vault.open(stateDirectory: other.path)
        #expect(throws: VaultError.self) { try otherVault.open(sealed, context: "alice@contoso.com") }
    }

    @Test("a key file readable by others is refused with the chmod sentence")
    func looseKeyFile() throws {
        let temp = try TemporaryDirectory()
        _ = try Vault.open(stateDirectory: temp.path)
        let path = temp.path + "/vault.key"
        chmod(path, 0o644)
        #expect(throws: VaultError.keyFileTooOpen(path: path, mode: 0o644)) {
            try Vault.open(stateDirectory: temp.path)
        }
        #expect(VaultError.keyFileTooOpen(path: path, mode: 0o644).description.contains("chmod 600 \(path)"))
        chmod(path, 0o600)
        _ = try Vault.open(stateDirectory: temp.path)
    }

    @Test("a key file of the wrong size is refused")
    func wrongSize() throws {
        let temp = try TemporaryDirectory()
        let path = temp.path + "/vault.key"
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(repeating: 7, count: 31), attributes: [.posixPermissions: 0o600])
        #expect(throws: VaultError.keyFileWrongSize(path: path, actualCount: 31)) {
            try Vault.open(stateDirectory: temp.path)
        }
    }
}
