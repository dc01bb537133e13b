// StoreTests: shared helpers: temporary directories, a sample account, journaling a message.
import Crypto
import Foundation
import Store

/// A temporary directory removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() throws {
        let template = NSTemporaryDirectory() + "mailgate-store-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let result = mkdtemp(&bytes) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: result)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func sampleAccount(_ email: String = "Alice@Contoso.com") -> Account {
    Account(email: email, serverName: "m365", passwordHash: "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA")
}

@discardableResult
func journal(_ db: MailGateDatabase, message: String, account: String = "alice@contoso.com") throws -> Int64 {
    let bytes = Array(message.utf8)
    return try db.insertPendingJournalEntry(
        accountEmail: account, listener: "smtp", mailFrom: account, rcptTo: ["bob@example.com", "carol@example.com"],
        messageID: "<\(message)@contoso.com>", size: Int64(bytes.count), sha256: SHA256.hex(bytes))
}
