// Gateway/SentMail: one IMAP conversation that files a sent message in the account's Sent folder.

import IMAP
import MailCore
import Policy

/// Connects to the account's IMAP server, logs in with XOAUTH2, finds the Sent folder, optionally searches it for
/// the Message-ID, and APPENDs the message flagged `\Seen`, streaming the literal from disk.
///
/// The conversation itself (greeting, STARTTLS, commands, the streamed APPEND) is `IMAPUpstreamSession`'s; this
/// type holds the sent-copy steps and turns every failure into a `SentMailError`. One instance per attempt.
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

    /// Makes the copy of `job` (its bytes from `message`, `size` bytes) and logs out.
    static func copy(
        job: SentCopyJob, message: SpooledMessage, endpoint: UpstreamIMAPEndpoint, credentials: any UpstreamCredentials,
        limits: Limits, deadline: ResultGate<Result<Outcome, SentMailError>>? = nil
    ) async throws(SentMailError) -> Outcome {
        do {
            let session = try await IMAPUpstreamSession.open(
                endpoint, timeout: limits.connectTimeoutSeconds, limits: limits)
            defer { session.close() }
            deadline?.whenResolved { session.close() }
            return try await run(job: job, message: message, session: session, credentials: credentials)
        } catch let error as SentMailError {
            throw error
        } catch {
            throw .copyFailed(reason: "\(error)")
        }
    }

    private static func run(
        job: SentCopyJob, message: SpooledMessage, session: IMAPUpstreamSession, credentials: any UpstreamCredentials
    ) async throws -> Outcome {
        try await logIn(account: job.account, session: session, credentials: credentials)

        let (_, listed) = try await expectOK(
            session, .list(reference: MailboxName([]), pattern: Array("*".utf8)), "LIST")
        guard let folder = SentFolderFinder.find(in: listed, configured: job.sentFolder) else {
            throw SentMailError.copyFailed(reason: "the server lists no Sent folder; set sent_folder for this server")
        }
        let folderName = (try? folder.decodedName) ?? sanitizeForLog(folder.bytes)

        var step = SentCopyDecision.firstStep(mode: SentCopyMode(rawValue: job.mode) ?? .always)
        if job.resolveFate == true { step = .searchFolder }
        if step == .searchFolder {
            _ = try await expectOK(session, .examine(folder), "EXAMINE")
            let (_, found) = try await expectOK(
                session, .uidSearchHeader(field: "Message-ID", value: job.messageID), "UID SEARCH")
            var uids: [UInt32] = []
            for case .search(let numbers) in found { uids += numbers }
            step = SentCopyDecision.afterSearch(foundUIDs: uids)
            if job.resolveFate == true {
                try? await session.logout()
                return uids.isEmpty ? .notFound(folder: folderName) : .found(folder: folderName)
            }
        }
        let outcome: Outcome
        switch step {
        case .append:
            let reader = try SpooledMessageReader(message)
            let result = try await session.append(to: folder, flags: [.seen], size: job.size) { try reader.next() }
            guard result.status == .ok else {
                throw SentMailError.copyFailed(
                    reason: "the server refused APPEND to \(folderName): \(sanitizeForLog(result.text))")
            }
            outcome = .made(folder: folderName)
        case .finished:
            outcome = .skipped(folder: folderName)
        case .searchFolder:
            throw SentMailError.invalidUse("the sent-copy decision asked for a second search")
        }
        try? await session.logout()
        return outcome
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
