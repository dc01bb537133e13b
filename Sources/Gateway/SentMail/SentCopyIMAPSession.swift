// Gateway/SentMail: one IMAP conversation that files a sent message in the account's Sent folder.

import Foundation
import IMAP
import MailCore
import Policy

/// Connects to the account's IMAP server, logs in with XOAUTH2, finds the Sent folder, optionally searches it for
/// the Message-ID, and APPENDs the message flagged `\Seen`, streaming the literal from disk.
///
/// The conversation itself (greeting, STARTTLS, commands, the streamed APPEND) is `IMAPUpstreamSession`'s; this
/// type holds the sent-copy steps and turns every failure into a `SentMailError`. The worker keeps one logged-in
/// `Connection` per account for the copies that follow (closed after a minute without use).
enum SentCopyIMAPSession {
    /// How the copy ended.
    enum Outcome: Sendable, Equatable {
        /// Appended; the folder's decoded name.
        case made(folder: String)
        /// Found by Message-ID; nothing appended.
        case skipped(folder: String)
        /// Fate search (`resolveFate`): found by Message-ID.
        case found(folder: String)
        /// Fate search: no message with the Message-ID.
        case notFound(folder: String)
    }

    /// A logged-in session with the Sent folder found: kept by the worker for the next copies of the same account
    /// (one TLS handshake, login and LIST per account and idle period instead of per message).
    final class Connection: @unchecked Sendable {
        // @unchecked Sendable: used by the worker's one attempt at a time; `close` may come from a watchdog.
        let session: IMAPUpstreamSession
        let folder: MailboxName
        let folderName: String
        /// Seconds since 1970 of the last use (for the idle close).
        var lastUsed: Double
        /// Whether a failure ended it: it is not handed out again.
        var broken = false

        init(session: IMAPUpstreamSession, folder: MailboxName, folderName: String, lastUsed: Double) {
            self.session = session
            self.folder = folder
            self.folderName = folderName
            self.lastUsed = lastUsed
        }

        func close() {
            broken = true
            session.close()
        }

        /// LOGOUT, then close.
        func logout() async {
            broken = true
            try? await session.logout()
        }
    }

    /// Connects, logs in with XOAUTH2 as `account` and finds the Sent folder (`configured` first).
    static func open(
        account: String, configured: String?, endpoint: UpstreamIMAPEndpoint, credentials: any UpstreamCredentials,
        limits: Limits
    ) async throws(SentMailError) -> Connection {
        do {
            let session = try await IMAPUpstreamSession.open(
                endpoint, timeout: limits.connectTimeoutSeconds, limits: limits)
            do {
                try await logIn(account: account, session: session, credentials: credentials)
                let (_, listed) = try await expectOK(
                    session, .list(reference: MailboxName([]), pattern: Array("*".utf8)), "LIST")
                guard let folder = SentFolderFinder.find(in: listed, configured: configured) else {
                    throw SentMailError.copyFailed(
                        reason: "the server lists no Sent folder; set sent_folder for this server")
                }
                let folderName = (try? folder.decodedName) ?? sanitizeForLog(folder.bytes)
                return Connection(
                    session: session, folder: folder, folderName: folderName,
                    lastUsed: Date().timeIntervalSince1970)
            } catch {
                session.close()
                throw error
            }
        } catch let error as SentMailError {
            throw error
        } catch {
            throw .copyFailed(reason: "\(error)")
        }
    }

    /// Makes the copy of `job` (its bytes from `message`, `size` bytes) over a fresh session and logs out.
    static func copy(
        job: SentCopyJob, message: SpooledMessage, endpoint: UpstreamIMAPEndpoint, credentials: any UpstreamCredentials,
        limits: Limits, deadline: ResultGate<Result<Outcome, SentMailError>>? = nil
    ) async throws(SentMailError) -> Outcome {
        let connection = try await open(
            account: job.account, configured: job.sentFolder, endpoint: endpoint, credentials: credentials,
            limits: limits)
        deadline?.whenResolved { connection.close() }
        defer { connection.close() }
        let outcome = try await copy(job: job, message: message, on: connection)
        await connection.logout()
        return outcome
    }

    /// The copy of `job` over `connection` (which stays open): EXAMINE and search when the mode (or the fate
    /// search) asks for it, then APPEND flagged `\Seen`. A failure marks the connection broken.
    static func copy(job: SentCopyJob, message: SpooledMessage, on connection: Connection) async throws(SentMailError)
        -> Outcome
    {
        do {
            let outcome = try await run(job: job, message: message, on: connection)
            connection.lastUsed = Date().timeIntervalSince1970
            return outcome
        } catch let error as SentMailError {
            connection.close()
            throw error
        } catch {
            connection.close()
            throw .copyFailed(reason: "\(error)")
        }
    }

    /// Searches the Sent folder once for several Message-IDs (`UID SEARCH OR HEADER Message-ID a HEADER …`); true
    /// when at least one of them is there. An empty answer settles all of them as not filed with one round trip.
    static func anyFiled(messageIDs: [String], on connection: Connection) async throws(SentMailError) -> Bool {
        do {
            _ = try await expectOK(connection.session, .examine(connection.folder), "EXAMINE")
            let (_, found) = try await expectOK(
                connection.session, .uidSearchHeaderAny(field: "Message-ID", values: messageIDs), "UID SEARCH")
            connection.lastUsed = Date().timeIntervalSince1970
            for case .search(let numbers) in found where !numbers.isEmpty { return true }
            return false
        } catch let error as SentMailError {
            connection.close()
            throw error
        } catch {
            connection.close()
            throw .copyFailed(reason: "\(error)")
        }
    }

    private static func run(job: SentCopyJob, message: SpooledMessage, on connection: Connection) async throws
        -> Outcome
    {
        let session = connection.session
        let folder = connection.folder
        let folderName = connection.folderName
        var step = SentCopyDecision.firstStep(mode: SentCopyMode(rawValue: job.mode) ?? .always)
        if job.resolveFate == true { step = .searchFolder }
        if job.knownNotFiled == true && job.resolveFate != true { step = .append }
        if step == .searchFolder {
            _ = try await expectOK(session, .examine(folder), "EXAMINE")
            let (_, found) = try await expectOK(
                session, .uidSearchHeader(field: "Message-ID", value: job.messageID), "UID SEARCH")
            var uids: [UInt32] = []
            for case .search(let numbers) in found { uids += numbers }
            step = SentCopyDecision.afterSearch(foundUIDs: uids)
            if job.resolveFate == true {
                return uids.isEmpty ? .notFound(folder: folderName) : .found(folder: folderName)
            }
        }
        switch step {
        case .append:
            let reader = try SpooledMessageReader(message)
            let result = try await session.append(to: folder, flags: [.seen], size: job.size) { try reader.next() }
            guard result.status == .ok else {
                throw SentMailError.copyFailed(
                    reason: "the server refused APPEND to \(folderName): \(sanitizeForLog(result.text))")
            }
            return .made(folder: folderName)
        case .finished:
            return .skipped(folder: folderName)
        case .searchFolder:
            throw SentMailError.invalidUse("the sent-copy decision asked for a second search")
        }
    }

    /// AUTHENTICATE XOAUTH2; on NO, one forced refresh and one more try.
    private static func logIn(
        account: String, session: IMAPUpstreamSession, credentials: any UpstreamCredentials
    ) async throws {
        var identity: (user: String, token: Redacted<String>)
        do {
            identity = try await credentials.xoauth2(for: account)
        } catch {
            throw SentMailError.copyFailed(reason: "no token for \(account): \(String(describing: error))")
        }
        for attempt in 1...2 {
            let tagged = try await session.authenticateXOAuth2(user: identity.user, token: identity.token)
            if tagged.status == .ok { return }
            guard attempt == 1 else {
                throw SentMailError.copyFailed(
                    reason: "the server refused the XOAUTH2 login of \(identity.user) after a token refresh "
                        + "(\(sanitizeForLog(tagged.text))); run `mailgate account test \(account)`")
            }
            do {
                identity = try await credentials.xoauth2AfterRejection(for: account, rejected: identity.token)
            } catch {
                throw SentMailError.copyFailed(
                    reason: "the token refresh for \(account) failed: \(String(describing: error))")
            }
        }
    }

    /// Runs `command` and insists on OK.
    private static func expectOK(
        _ session: IMAPUpstreamSession, _ command: IMAPCommand, _ name: String
    ) async throws -> (TaggedResponse, [UntaggedResponse]) {
        let (tagged, untagged) = try await session.run(command)
        guard tagged.status == .ok else {
            throw SentMailError.copyFailed(reason: "the server refused \(name): \(sanitizeForLog(tagged.text))")
        }
        return (tagged, untagged)
    }
}
