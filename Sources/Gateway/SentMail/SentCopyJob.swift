// Gateway/SentMail: the persisted sent-copy job, `<state>/spool/<id>.job.json` next to `<id>.eml`.

import Foundation
import Transport

/// One message waiting for its copy in the Sent folder. Written atomically next to the spooled message before
/// the client gets its 250, so the copy survives a restart; removed only after the copy was made or found.
/// A job whose attempts are used up stays on disk with `gaveUp` set, for an administrator to see.
struct SentCopyJob: Codable, Sendable, Equatable {
    /// Random hex id; names the `.eml` and `.job.json` files.
    var id: String
    var account: String
    var listener: String
    var messageID: String
    /// The journal row to update, when lock-after-send journaled the message.
    var journalSequence: Int64?
    var sha256: String
    var size: Int
    /// `auto` or `always` (`never` makes no job).
    var mode: String
    var sentFolder: String?
    var imapHost: String
    var imapPort: Int
    /// `tls`, `starttls` or `none` (`UpstreamEndpoint.Security`).
    var imapSecurity: String
    var caFile: String?
    /// When the upstream accepted the message (seconds since 1970).
    var sentAt: Double
    /// Failed attempts so far.
    var attempts: Int
    /// Not before this time (seconds since 1970).
    var nextAttemptAt: Double
    /// The last failure, sanitized (no tokens, no message text).
    var lastError: String?
    /// Attempts used up: kept on disk and logged, never retried automatically.
    var gaveUp: Bool

    /// The IMAP endpoint recorded in the job.
    var endpoint: UpstreamIMAPEndpoint? {
        guard let address = HostPort(host: imapHost, port: imapPort),
            let security = UpstreamEndpoint.Security(rawValue: imapSecurity)
        else { return nil }
        return UpstreamEndpoint(address: address, security: security, caFile: caFile)
    }

    /// The spooled message next to the job file.
    static func messagePath(id: String, spool: String) -> String { spool + "/" + id + ".eml" }
    /// The job file.
    static func jobPath(id: String, spool: String) -> String { spool + "/" + id + ".job.json" }

    /// The job as JSON bytes.
    func encoded() throws(SentMailError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            return Array(try encoder.encode(self))
        } catch {
            throw .invalidUse("a sent-copy job could not be encoded: \(error)")
        }
    }

    /// Writes the job durably (temporary file, fsync, rename, fsync of the spool directory).
    func save(spool: String) throws(SentMailError) {
        try DurableFile.writeAtomically(encoded(), to: Self.jobPath(id: id, spool: spool))
    }

    /// Reads a job file.
    static func load(path: String) throws(SentMailError) -> SentCopyJob {
        var bytes: [UInt8] = []
        try DurableFile.readChunks(path) { (chunk) throws(SentMailError) in
            bytes += chunk
            if bytes.count > 1_048_576 {
                throw .fileFailed(path: path, operation: "read", reason: "job file too large")
            }
        }
        do {
            return try JSONDecoder().decode(SentCopyJob.self, from: Data(bytes))
        } catch {
            throw .fileFailed(path: path, operation: "decode", reason: "not a sent-copy job")
        }
    }
}
