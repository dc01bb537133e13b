// Gateway/SentMail: one IMAP conversation that files a sent message in the account's Sent folder.

import IMAP
import MailCore
import Policy
import SASL
import TLS
import Transport

/// Connects to the account's IMAP server, logs in with XOAUTH2, finds the Sent folder, optionally searches it for
/// the Message-ID, and APPENDs the message flagged `\Seen`, streaming the literal from disk.
///
/// Commands go through `IMAPUpstreamClient` except STARTTLS (which the state machine does not model) and the
/// APPEND itself, whose literal is streamed in chunks so a 150 MiB message never sits in memory; both use their
/// own tags (`S…`, `M…`) so the state machine never sees their responses. One instance per attempt, used by one
/// task.
final class SentCopyIMAPSession {
    /// How the copy ended.
    enum Outcome: Sendable, Equatable {
        /// Appended; the folder's decoded name.
        case made(folder: String)
        /// Found by Message-ID; nothing appended.
        case skipped(folder: String)
    }

    private let connection: AsyncConnection
    private var client = IMAPUpstreamClient(tagPrefix: "A")
    private var decoder = IMAPResponseDecoder()
    private var ownTagCount = 0

    private init(connection: AsyncConnection) {
        self.connection = connection
    }

    /// Makes the copy of `job` (its bytes from `message`, `size` bytes) and logs out.
    static func copy(
        job: SentCopyJob, message: SpooledMessage, endpoint: UpstreamIMAPEndpoint, credentials: any UpstreamCredentials,
        limits: Limits, deadline: ResultGate<Result<Outcome, SentMailError>>? = nil
    ) async throws(SentMailError) -> Outcome {
        let tls: TLSContext
        let connection: AsyncConnection
        do {
            tls = try endpoint.tlsContext()
            connection = try await AsyncConnection.connect(
                to: endpoint.address, tls: endpoint.security == .tls ? tls : nil, serverName: endpoint.serverName,
                timeout: limits.connectTimeoutSeconds, limits: limits)
        } catch {
            throw .copyFailed(reason: "\(error)")
        }
        let session = SentCopyIMAPSession(connection: connection)
        defer { connection.close() }
        deadline?.whenResolved { connection.close() }
        return try await session.run(
            job: job, message: message, endpoint: endpoint, tls: tls, credentials: credentials)
    }

    private func run(
        job: SentCopyJob, message: SpooledMessage, endpoint: UpstreamIMAPEndpoint, tls: TLSContext,
        credentials: any UpstreamCredentials
    ) async throws(SentMailError) -> Outcome {
        try await readGreeting()
        if endpoint.security == .starttls {
            try await startTLS(context: tls, serverName: endpoint.serverName)
        }
        if endpoint.security == .starttls || client.capabilities.isEmpty {
            _ = try await run(.capability)
        }
        try await logIn(account: job.account, credentials: credentials)

        let (_, listed) = try await expectOK(.list(reference: MailboxName([]), pattern: Array("*".utf8)), "LIST")
        guard let folder = SentFolderFinder.find(in: listed, configured: job.sentFolder) else {
            throw .copyFailed(reason: "the server lists no Sent folder; set sent_folder for this server")
        }
        let folderName = (try? folder.decodedName) ?? sanitizeForLog(folder.bytes)

        var step = SentCopyDecision.firstStep(mode: SentCopyMode(rawValue: job.mode) ?? .always)
        if step == .searchFolder {
            _ = try await expectOK(.examine(folder), "EXAMINE")
            let (_, found) = try await expectOK(
                .uidSearchHeader(field: "Message-ID", value: job.messageID), "UID SEARCH")
            var uids: [UInt32] = []
            for case .search(let numbers) in found { uids += numbers }
            step = SentCopyDecision.afterSearch(foundUIDs: uids)
        }
        let outcome: Outcome
        switch step {
        case .append:
            try await append(message, size: job.size, to: folder)
            outcome = .made(folder: folderName)
        case .finished:
            outcome = .skipped(folder: folderName)
        case .searchFolder:
            throw .invalidUse("the sent-copy decision asked for a second search")
        }
        await logOut()
        return outcome
    }

    // MARK: - Steps

    private func readGreeting() async throws(SentMailError) {
        let response = try await nextResponse()
        for action in client.receive(response) {
            switch action {
            case .greeting(_, let preauthenticated):
                if preauthenticated {
                    throw .copyFailed(reason: "the server greeted with PREAUTH, which is not expected")
                }
                return
            case .sessionEnded(let reason):
                throw .copyFailed(reason: "the server closed the connection at once (\(reason))")
            case .protocolViolation(let reason):
                throw .copyFailed(reason: reason)
            default:
                continue
            }
        }
        throw .copyFailed(reason: "the server sent no greeting")
    }

    /// `STARTTLS` (RFC 3501 §6.2.1) with our own tag; the plaintext capabilities are then forgotten.
    private func startTLS(context: TLSContext, serverName: String) async throws(SentMailError) {
        let tag = nextOwnTag("S")
        try await write(Array("\(tag) STARTTLS\r\n".utf8))
        while true {
            switch try await nextResponse() {
            case .tagged(let tagged) where tagged.tag == tag:
                guard tagged.status == .ok else {
                    throw .copyFailed(reason: "the server refused STARTTLS: \(sanitizeForLog(tagged.text))")
                }
                decoder = IMAPResponseDecoder()  // nothing sent in plaintext after the OK may be trusted
                do {
                    try await connection.startTLS(context: context, serverName: serverName)
                } catch {
                    throw .copyFailed(reason: error.description)
                }
                return
            case .tagged, .continuation:
                throw .copyFailed(reason: "the server answered STARTTLS out of order")
            case .untagged:
                continue
            }
        }
    }

    /// AUTHENTICATE XOAUTH2; on NO, one forced refresh and one more try.
    private func logIn(account: String, credentials: any UpstreamCredentials) async throws(SentMailError) {
        var identity: (user: String, token: Redacted<String>)
        do {
            identity = try await credentials.xoauth2(for: account)
        } catch {
            throw .copyFailed(reason: "no token for \(account): \(String(describing: error))")
        }
        for attempt in 1...2 {
            let response = try Self.xoauth2Payload(user: identity.user, token: identity.token)
            let (tag, actions): (String, [IMAPUpstreamClient.Action])
            do {
                (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: response)
            } catch {
                throw .copyFailed(reason: error.description)
            }
            let (tagged, _) = try await complete(tag: tag, after: actions)
            if tagged.status == .ok { return }
            guard attempt == 1 else {
                throw .copyFailed(
                    reason: "the server refused the XOAUTH2 login of \(identity.user) after a token refresh "
                        + "(\(sanitizeForLog(tagged.text))); run `mailgate account test \(account)`")
            }
            do {
                identity = try await credentials.xoauth2AfterRejection(for: account, rejected: identity.token)
            } catch {
                throw .copyFailed(reason: "the token refresh for \(account) failed: \(String(describing: error))")
            }
        }
    }

    /// `APPEND folder (\Seen) {size}` with the literal streamed from the spool or archive (LITERAL+ when offered).
    private func append(_ message: SpooledMessage, size: Int, to folder: MailboxName) async throws(SentMailError) {
        let tag = nextOwnTag("M")
        let literalPlus = client.capabilities.contains(.literalPlus)
        var writer = IMAPCommandWriter(literalPlus: literalPlus)
        writer.write("\(tag) APPEND ")
        writer.writeMailbox(folder)
        writer.write(" ")
        writer.writeFlagList([.seen])
        writer.write(" ")
        writer.writeLiteralHeader(count: size)
        var header: [UInt8] = []
        for case .bytes(let bytes) in writer.finish() { header += bytes }
        try await write(header)
        if !literalPlus {
            // Wait for the go-ahead; a tagged answer instead means the server refused before the literal.
            while true {
                switch try await nextResponse() {
                case .continuation:
                    break
                case .tagged(let tagged) where tagged.tag == tag:
                    throw .copyFailed(reason: "the server refused APPEND to \(folder): \(sanitizeForLog(tagged.text))")
                case .tagged:
                    throw .copyFailed(reason: "the server completed a command that was not in flight")
                case .untagged:
                    continue
                }
                break
            }
        }
        var sent = 0
        let reader = try SpooledMessageReader(message)
        while let chunk = try reader.next() {
            sent += chunk.count
            guard sent <= size else { break }
            try await write(chunk)
        }
        guard sent == size else {
            throw .copyFailed(reason: "the spooled message has \(sent) bytes, not the \(size) journaled")
        }
        try await write([0x0D, 0x0A])
        while true {
            switch try await nextResponse() {
            case .tagged(let tagged) where tagged.tag == tag:
                guard tagged.status == .ok else {
                    throw .copyFailed(reason: "the server refused APPEND to \(folder): \(sanitizeForLog(tagged.text))")
                }
                return
            case .tagged, .continuation:
                throw .copyFailed(reason: "the server answered APPEND out of order")
            case .untagged:
                continue
            }
        }
    }

    private func logOut() async {
        guard let (tag, actions) = try? client.send(.logout) else { return }
        _ = try? await complete(tag: tag, after: actions)
    }

    // MARK: - Plumbing

    /// Runs `command` and insists on OK.
    private func expectOK(
        _ command: IMAPCommand, _ name: String
    ) async throws(SentMailError) -> (TaggedResponse, [UntaggedResponse]) {
        let (tagged, untagged) = try await run(command)
        guard tagged.status == .ok else {
            throw .copyFailed(reason: "the server refused \(name): \(sanitizeForLog(tagged.text))")
        }
        return (tagged, untagged)
    }

    private func run(_ command: IMAPCommand) async throws(SentMailError) -> (TaggedResponse, [UntaggedResponse]) {
        let (tag, actions): (String, [IMAPUpstreamClient.Action])
        do {
            (tag, actions) = try client.send(command)
        } catch {
            throw .copyFailed(reason: error.description)
        }
        return try await complete(tag: tag, after: actions)
    }

    /// Performs `actions`, then feeds responses to the state machine until `tag` completes.
    private func complete(
        tag: String, after actions: [IMAPUpstreamClient.Action]
    ) async throws(SentMailError) -> (TaggedResponse, [UntaggedResponse]) {
        var pending = actions
        while true {
            for action in pending {
                switch action {
                case .send(let bytes):
                    try await write(bytes)
                case .completed(let completedTag, let response, let untagged) where completedTag == tag:
                    return (response, untagged)
                case .sessionEnded(let reason):
                    throw .copyFailed(reason: "the server ended the session (\(reason))")
                case .protocolViolation(let reason):
                    throw .copyFailed(reason: reason)
                default:
                    continue
                }
            }
            pending = client.receive(try await nextResponse())
        }
    }

    private func nextResponse() async throws(SentMailError) -> IMAPResponse {
        while true {
            do {
                if let response = try decoder.next() { return response }
            } catch {
                throw .copyFailed(reason: error.description)
            }
            let bytes: [UInt8]?
            do {
                bytes = try await connection.readAvailable()
            } catch {
                throw .copyFailed(reason: error.description)
            }
            guard let bytes else { throw .copyFailed(reason: "the server closed the connection") }
            decoder.append(bytes)
        }
    }

    private func write(_ bytes: [UInt8]) async throws(SentMailError) {
        do {
            try await connection.write(bytes)
        } catch {
            throw .copyFailed(reason: error.description)
        }
    }

    private func nextOwnTag(_ prefix: String) -> String {
        ownTagCount += 1
        return prefix + String(ownTagCount)
    }

    /// The raw XOAUTH2 message (checked: neither value can forge a field).
    static func xoauth2Payload(user: String, token: Redacted<String>) throws(SentMailError) -> Redacted<[UInt8]> {
        do {
            return try XOAuth2.rawResponse(user: user, accessToken: token)
        } catch {
            throw .copyFailed(reason: error.description)
        }
    }
}
