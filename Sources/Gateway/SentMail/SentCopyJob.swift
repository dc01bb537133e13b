// Gateway/SentMail: the persisted sent-copy job, `<state>/spool/<id>.job.json` next to `<id>.eml`.

import Foundation
import Store
import Transport

/// One message waiting for its copy in the Sent folder. Kept in the state database (`sentCopyJob`): with
/// lock-after-send in the same transaction as the pending journal row, before the final dot goes upstream, and
/// pointing at the archived bytes; without it, next to the spooled message `<spool>/<id>.eml` once the upstream
/// accepted. Removed only after the copy was made, found or cancelled. A job whose attempts are used up stays with
/// `gaveUp` set, for an administrator to see. Job files `<spool>/<id>.job.json` of earlier versions are still read.
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
    /// The bytes are the archived original (`<archive>/<aa>/<sha256>`), not a spooled `.eml`.
    var inArchive: Bool? = nil
    /// Found at start-up still waiting for the upstream's verdict: the message's fate is settled by searching the
    /// Sent folder for its Message-ID before any copy is made.
    var resolveFate: Bool? = nil
    /// `auto`: a batch search of the Sent folder (after the server's filing delay) found none of the batch's
    /// Message-IDs, so the copy is appended without a search of its own.
    var knownNotFiled: Bool? = nil

    /// The job once its fate is settled and a copy is still to be made: due now.
    func unsettled() -> SentCopyJob {
        var job = self
        job.resolveFate = nil
        job.nextAttemptAt = 0
        return job
    }

    /// The job as a database row in `state`.
    func record(state: SentCopyJobState) throws(SentMailError) -> SentCopyJobRecord {
        SentCopyJobRecord(
            id: id, accountEmail: account, messageID: messageID, journalSequence: journalSequence, state: state,
            payload: String(decoding: try encoded(), as: UTF8.self))
    }

    /// Stores the job (insert or replace) in `state`.
    func save(in database: MailGateDatabase, state: SentCopyJobState) throws(SentMailError) {
        let record = try record(state: state)
        do {
            try database.saveSentCopyJob(record)
        } catch {
            throw .journalFailed(reason: error.description)
        }
    }

    /// The job a database row holds (its id, account and journal row taken from the row's columns).
    static func decode(_ record: SentCopyJobRecord) throws(SentMailError) -> SentCopyJob {
        var job: SentCopyJob
        do {
            job = try JSONDecoder().decode(SentCopyJob.self, from: Data(record.payload.utf8))
        } catch {
            throw .invalidUse("sent-copy job \(record.id) in the database is not a job description")
        }
        job.id = record.id
        job.journalSequence = record.journalSequence
        job.gaveUp = job.gaveUp || record.state == .gaveUp
        if record.state == .awaitingVerdict { job.resolveFate = true }
        return job
    }

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
        encoder.outputFormatting = [.sortedKeys]
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
