// Gateway: one SMTP client connection wired to its upstream, on one serial queue (server machine ⇄ upstream machine).
import Crypto
import Dispatch
import Logging
import MailCore
import SASL
import SMTP
import TLS
import Transport

/// Everything a session needs that outlives it; shared by all sessions of one listener.
struct SMTPSessionEnvironment: Sendable {
    var configuration: SMTPGatewayConfiguration
    var implicitTLS: Bool
    var serverTLS: TLSContext?
    var authenticator: LocalAuthenticator
    var credentials: any UpstreamCredentials
    var recorder: any MessageRecorder
    var resolver: SMTPUpstreamResolver
    var counters: any GatewayCounters
    var extensionsCache: SMTPExtensionsCache
    var tlsContexts: UpstreamTLSContexts
    var logger: Logger
}

/// The replies MailGate makes up itself when the upstream cannot answer.
enum SMTPGatewayReplies {
    static let upstreamLost = SMTPReply(
        code: 451, enhanced: EnhancedStatus("4.4.2"), "Connection to the upstream server lost; the message was not sent")
    /// The final dot went upstream but no verdict came back: the journal says "unknown", and so does the reply.
    static let upstreamLostAfterMessage = SMTPReply(
        code: 451, enhanced: EnhancedStatus("4.4.2"),
        "Connection to the upstream server lost before it confirmed the message; it may have been sent")
    static let recordingFailed = SMTPReply(
        code: 451, enhanced: EnhancedStatus("4.3.0"), "The message could not be recorded; it was not sent")
    static let authenticationBusy = SMTPReply(
        code: 454, enhanced: EnhancedStatus("4.7.0"), "Too many logins are being checked; try again in a moment")
    static let idleTimeout = SMTPReply(code: 421, enhanced: EnhancedStatus("4.4.2"), "Idle timeout")
    static let shuttingDown = SMTPReply(code: 421, enhanced: EnhancedStatus("4.3.2"), "Service shutting down")

    /// Cuts a sentence to fit one reply line (RFC 5321 §4.5.3.1.5: 512 octets) with nothing but printable ASCII.
    static func text(_ sentence: String) -> String { sanitizeForLog(sentence, maximumLength: 400) }
}

/// Why an upstream could not be made ready for an account.
enum UpstreamOpenFailure {
    /// No server settings for the account.
    case notConfigured
    /// Connect, TLS, greeting, EHLO or STARTTLS failed; `reason` is safe to log and to show.
    case unreachable(String)
    /// The upstream refused the token twice (the second one freshly refreshed).
    case rejected(SMTPReply)
    /// The credentials source threw (needs reconnect, not connected, identity platform down).
    case credentials(any Error)

    /// The reply for a client whose AUTH waits on this upstream.
    func authReply(account: String) -> SMTPReply {
        switch self {
        case .notConfigured:
            SMTPReply(
                code: 454, enhanced: EnhancedStatus("4.7.0"),
                SMTPGatewayReplies.text("Temporary authentication failure: no upstream server is configured for \(account)"))
        case .unreachable(let reason):
            SMTPReply(
                code: 454, enhanced: EnhancedStatus("4.7.0"),
                SMTPGatewayReplies.text("Temporary authentication failure: the upstream server is unavailable (\(reason))"))
        case .rejected(let reply):
            SMTPReply(
                code: 535, enhanced: EnhancedStatus("5.7.8"),
                SMTPGatewayReplies.text(
                    "Microsoft 365 refused the sign-in for \(account) (\(reply.description)): run `mailgate account connect \(account)`, and check that SMTP AUTH is enabled for the mailbox"
                ))
        case .credentials(let error):
            Self.isTemporary(error)
                ? SMTPReply(
                    code: 454, enhanced: EnhancedStatus("4.7.0"),
                    SMTPGatewayReplies.text("Temporary authentication failure: \(String(describing: error))"))
                : SMTPReply(
                    code: 535, enhanced: EnhancedStatus("5.7.8"), SMTPGatewayReplies.text(String(describing: error)))
        }
    }

    /// The reply for a client's MAIL (relay clients, or a reconnect between messages).
    func mailReply(account: String) -> SMTPReply {
        switch self {
        case .notConfigured, .unreachable:
            let auth = authReply(account: account)
            return SMTPReply(code: 451, enhanced: EnhancedStatus("4.4.1"), auth.lines[0])
        case .rejected, .credentials:
            let auth = authReply(account: account)
            return SMTPReply(code: 451, enhanced: EnhancedStatus("4.7.0"), auth.lines[0])
        }
    }

    static func isTemporary(_ error: any Error) -> Bool {
        (error as? any TemporaryFailureClassifying)?.isTemporary ?? false
    }

    var logText: String {
        switch self {
        case .notConfigured: "no upstream settings"
        case .unreachable(let reason): reason
        case .rejected(let reply): "token refused: " + sanitizeForLog(reply.description)
        case .credentials(let error): String(describing: error)
        }
    }
}

/// One SMTP client connection and its upstream.
///
/// The client connection is read in `.raw` mode and every chunk goes into `SMTPServerSide`; its actions drive the
/// upstream link (`SMTPUpstreamLink`, on the same queue) and the sent-mail recording. The client hears `250` for a
/// message only after the upstream said `250` and the recording committed.
final class SMTPSession: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is used only on `queue` (the client connection's serial queue);
    // the gateway keeps a reference only to call `shutdown` through that queue.

    private enum Upstream {
        case none
        /// Connecting/authenticating; `completions` run once it is ready or has failed.
        case opening(SMTPUpstreamLink, attempt: Int, rejected: Redacted<String>?, completions: [(UpstreamOpenFailure?) -> Void])
        case open(SMTPUpstreamLink)
    }

    private struct QueuedInput {
        var input: SMTPServerSide.Input
        /// For `.authResult(ok: false)` caused upstream: the reply that replaces the machine's own 535.
        var authReply: SMTPReply?
    }

    let id: String
    let client: Connection
    let queue: DispatchQueue
    private let environment: SMTPSessionEnvironment
    private var logger: Logger
    private var server: SMTPServerSide
    private var upstream = Upstream.none
    private var lastAccessToken: Redacted<String>?
    private var inputs: [QueuedInput] = []
    private var processing = false
    private var recording: (any MessageRecordingProtocol)?
    private var mailFrom = ""
    private var transactionAccount: String?
    private var finalDotSent = false
    private var commitInFlight = false
    private var clientPaused = false
    private var upstreamCongested = false
    private var ended = false
    private var drainRequested = false
    private var messagesAccepted = 0
    private var messagesRefused = 0
    private var bytesForwarded = 0
    private let remoteIP: IPAddress?
    var onEnd: (() -> Void)?

    /// Peak of the upstream write queue during this session (tests check back-pressure with it).
    private(set) var peakUpstreamPendingBytes = 0
    /// Peak of unprocessed client bytes held by the server machine.
    private(set) var peakBufferedClientBytes = 0
    /// How often reading from the client paused because the upstream was not keeping up.
    private(set) var upstreamBackpressurePauses = 0

    init(client: Connection, environment: SMTPSessionEnvironment) {
        self.client = client
        self.queue = client.queue
        self.environment = environment
        self.id = SHA256.hexString(SecureRandom.bytes(4))
        let remoteIP = client.remoteIPAddress
        self.remoteIP = remoteIP
        let configuration = environment.configuration
        let offer = environment.extensionsCache.offer
        let loopback: Bool = {
            guard let remoteIP else { return false }
            if remoteIP.isIPv4 { return remoteIP.bytes[0] == 127 }
            return remoteIP.bytes == [UInt8](repeating: 0, count: 15) + [1]
        }()
        let relayAllowed = remoteIP.map { configuration.isRelayClient($0) } ?? false
        server = SMTPServerSide(
            configuration: SMTPServerSide.Configuration(
                hostname: configuration.hostname, tlsAvailable: environment.serverTLS != nil && !environment.implicitTLS,
                implicitTLS: environment.implicitTLS, clientIsLoopback: loopback,
                allowPlaintext: configuration.allowPlaintext, relayAllowed: relayAllowed && configuration.relayAccount != nil,
                relayAccount: configuration.relayAccount, maximumMessageSize: offer.maximumSize ?? configuration.limits.messageSize,
                upstreamExtensions: offer, maximumRecipients: configuration.maximumRecipients,
                maximumBufferedInput: configuration.limits.writeBufferHighWater, limits: configuration.limits,
                makeAuthExchange: SASLAdapter.make))
        logger = environment.logger
        logger[metadataKey: "session"] = "\(id)"
        logger[metadataKey: "remote"] = "\(remoteIP?.description ?? "?")"
        logger[metadataKey: "listener"] = "\(configuration.listenerName)"
    }

    // MARK: - Client side

    /// Starts reading and greets the client (for implicit TLS the greeting goes out once the handshake is done).
    func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        logger.info("SMTP session started")
        count("smtp.sessions", account: nil)
        client.readMode = .raw
        client.onEvent = { [self] event in clientEvent(event) }
        client.setIdleTimeout(seconds: environment.configuration.limits.idleTimeoutSeconds)
        client.start()
        feed(.connected)
    }

    /// Ends the session for a shutdown: at once, or (`drain`) after the message in flight.
    func shutdown(drain: Bool) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !ended else { return }
        drainRequested = true
        if !drain || isIdle { closeForShutdown() }
    }

    private var isIdle: Bool {
        switch server.state {
        case .greeting, .ready, .awaitingConnection: recording == nil && !commitInFlight
        default: false
        }
    }

    private func closeForShutdown() {
        client.write(SMTPGatewayReplies.shuttingDown.encode())
        client.closeAfterFlushing()
        teardown(reason: "shutting down")
    }

    private func clientEvent(_ event: ConnectionEvent) {
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            feed(.received(bytes))
        case .idleTimeout:
            logger.info("SMTP client idle timeout")
            client.write(SMTPGatewayReplies.idleTimeout.encode())
            client.closeAfterFlushing()
        case .closed(let error):
            teardown(reason: error?.description)
        case .writable, .lineTooLong:
            break
        }
    }

    /// Feeds the server machine; inputs arriving while its actions run are queued and handled in order.
    private func feed(_ input: SMTPServerSide.Input, authReply: SMTPReply? = nil) {
        guard !ended else { return }
        inputs.append(QueuedInput(input: input, authReply: authReply))
        guard !processing else { return }
        processing = true
        while !inputs.isEmpty, !ended {
            let next = inputs.removeFirst()
            var actions = server.handle(next.input)
            if let replacement = next.authReply,
                let index = actions.firstIndex(where: { if case .reply(let r) = $0 { r.code == 535 } else { false } })
            {
                actions[index] = .reply(replacement)
            }
            peakBufferedClientBytes = max(peakBufferedClientBytes, server.bufferedByteCount)
            for action in actions {
                perform(action)
                if ended { break }
            }
        }
        processing = false
        if drainRequested, !ended, isIdle { closeForShutdown() }
        updateReading()
    }

    private func updateReading() {
        guard !ended else { return }
        let pause = server.shouldPauseReading || upstreamCongested
        guard pause != clientPaused else { return }
        clientPaused = pause
        if pause { client.pauseReading() } else { client.resumeReading() }
    }

    private func perform(_ action: SMTPServerSide.Action) {
        switch action {
        case .reply(let reply):
            client.write(reply.encode())
        case .startTLS:
            guard let tls = environment.serverTLS else {
                client.close()
                return
            }
            client.startServerTLS(context: tls) { [self] error in
                if let error {
                    logger.info("SMTP client TLS handshake failed", metadata: ["error": "\(error)"])
                } else {
                    feed(.tlsStarted)
                }
            }
        case .verifyCredentials(let username, let password):
            verifyCredentials(username: username, password: password)
        case .forwardMail(let account, let from, let parameters):
            forwardMail(account: account, from: from, parameters: parameters)
        case .forwardRcpt(let to, let parameters):
            guard let link = readyLink else { return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost)) }
            feedUpstream(link, .rcpt(to: to, parameters: parameters))
        case .beginData:
            guard let link = readyLink else { return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost)) }
            feedUpstream(link, .data)
        case .beginChunkedData:
            guard let link = readyLink else { return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost)) }
            startRecording()
            feedUpstream(link, .chunkedData)
        case .messageBytes(let bytes):
            messageBytes(bytes)
        case .endOfMessage:
            endOfMessage()
        case .abortMessage:
            abandonRecording(reason: "refused by MailGate before the end of the message", fateUnknown: false)
            if let link = readyLink {
                if link.isReady { feedUpstream(link, .abortMessage) }
            }
        case .resetUpstream:
            if let link = readyLink { feedUpstream(link, .reset) }
        case .close:
            client.closeAfterFlushing()
            teardown(reason: nil)
        }
    }

    // MARK: - Authentication

    private func verifyCredentials(username: String, password: Redacted<String>) {
        let remote = remoteIP?.description
        environment.authenticator.verify(email: username, password: password, remoteAddress: remote, on: queue) {
            [self] outcome in
            guard !ended else { return }
            switch outcome {
            case .rejected:
                logger.info("SMTP local login failed", metadata: ["user": "\(sanitizeForLog(username, maximumLength: 80))"])
                count("smtp.login.failed", account: username.lowercased())
                feed(.authResult(ok: false, account: username))
            case .busy:
                logger.warning("SMTP local login refused: the password hash queue is full (password_hash_queue)")
                count("smtp.login.busy", account: username.lowercased())
                feed(.authResult(ok: false, account: username), authReply: SMTPGatewayReplies.authenticationBusy)
            case .accepted(let account):
                logger[metadataKey: "account"] = "\(account)"
                withUpstream(for: account) { [self] failure in
                    if let failure {
                        logger.warning("SMTP upstream login failed", metadata: ["reason": "\(failure.logText)"])
                        count("smtp.login.upstream_failed", account: account)
                        feed(.authResult(ok: false, account: account), authReply: failure.authReply(account: account))
                    } else {
                        logger.info("SMTP login")
                        count("smtp.login.ok", account: account)
                        feed(.authResult(ok: true, account: account))
                    }
                }
            }
        }
    }

    // MARK: - Upstream

    private var readyLink: SMTPUpstreamLink? {
        if case .open(let link) = upstream, link.isReady { return link }
        return nil
    }

    /// Makes sure an authenticated upstream for `account` exists, then calls `completion` (nil on success).
    private func withUpstream(for account: String, completion: @escaping (UpstreamOpenFailure?) -> Void) {
        switch upstream {
        case .open(let link) where link.isReady && link.account == account:
            completion(nil)
            return
        case .opening(let link, let attempt, let rejected, let completions) where link.account == account:
            upstream = .opening(link, attempt: attempt, rejected: rejected, completions: completions + [completion])
            return
        case .open(let link):
            upstream = .none
            discard(link)
        case .opening(let link, _, _, let completions):
            upstream = .none
            discard(link)
            for superseded in completions { superseded(.unreachable("superseded by a login for another account")) }
        case .none:
            break
        }
        guard let settings = environment.resolver(account) else {
            completion(.notConfigured)
            return
        }
        openAttempt(account: account, settings: settings, attempt: 1, rejected: nil, completions: [completion])
    }

    private func openAttempt(
        account: String, settings: SMTPUpstreamSettings, attempt: Int, rejected: Redacted<String>?,
        completions: [(UpstreamOpenFailure?) -> Void]
    ) {
        let link: SMTPUpstreamLink
        do throws(SMTPUpstreamError) {
            link = try SMTPUpstreamLink(
                account: account, settings: settings, queue: queue, limits: environment.configuration.limits,
                tlsContexts: environment.tlsContexts)
        } catch {
            for completion in completions { completion(.unreachable(error.description)) }
            return
        }
        upstream = .opening(link, attempt: attempt, rejected: rejected, completions: completions)
        link.onEvent = { [weak self, weak link] event in
            guard let self, let link else { return }
            upstreamEvent(link, event)
        }
        link.open()
    }

    private func finishOpening(_ link: SMTPUpstreamLink, _ failure: UpstreamOpenFailure?) {
        guard case .opening(let current, _, _, let completions) = upstream, current === link else { return }
        upstream = failure == nil ? .open(link) : .none
        for completion in completions { completion(failure) }
    }

    private func upstreamEvent(_ link: SMTPUpstreamLink, _ event: SMTPUpstreamLink.Event) {
        guard !ended else {
            link.close()
            return
        }
        switch upstream {
        case .opening(let current, let attempt, let rejected, let completions) where current === link:
            switch event {
            case .needToken:
                fetchToken(for: link, rejected: rejected)
            case .ready(let extensions):
                environment.extensionsCache.record(extensions, for: link.settings.cacheKey)
                finishOpening(link, nil)
            case .authenticationFailed(let reply):
                logger.info("SMTP upstream refused the token", metadata: ["reply": "\(sanitizeForLog(reply.description))"])
                discard(link)
                if attempt == 1, let token = lastAccessToken {
                    upstream = .none
                    openAttempt(
                        account: link.account, settings: link.settings, attempt: 2, rejected: token,
                        completions: completions)
                } else {
                    finishOpening(link, .rejected(reply))
                }
            case .ended(let reason):
                finishOpening(link, .unreachable(reason ?? "the upstream server closed the connection"))
            case .replyForClient, .writable:
                break
            }
        case .open(let current) where current === link:
            switch event {
            case .replyForClient(let reply):
                replyForClient(reply)
            case .writable:
                upstreamCongested = false
                updateReading()
            case .ended(let reason):
                upstream = .none
                upstreamLost(reason: reason)
            case .needToken, .ready, .authenticationFailed:
                break
            }
        default:
            if case .ended = event { return }
            link.close()
        }
    }

    private func fetchToken(for link: SMTPUpstreamLink, rejected: Redacted<String>?) {
        let credentials = environment.credentials
        let account = link.account
        let queue = self.queue
        Task {
            let result: Result<(user: String, token: Redacted<String>), any Error>
            do {
                if let rejected {
                    result = .success(try await credentials.xoauth2AfterRejection(for: account, rejected: rejected))
                } else {
                    result = .success(try await credentials.xoauth2(for: account))
                }
            } catch {
                result = .failure(error)
            }
            let delivered = UncheckedBox(result)
            queue.async { [self] in tokenArrived(for: link, delivered.value) }
        }
    }

    private func tokenArrived(for link: SMTPUpstreamLink, _ result: Result<(user: String, token: Redacted<String>), any Error>) {
        guard case .opening(let current, _, _, _) = upstream, current === link, !ended else { return }
        switch result {
        case .failure(let error):
            discard(link)
            finishOpening(link, .credentials(error))
        case .success(let credentials):
            lastAccessToken = credentials.token
            do {
                let response = try XOAuth2.initialResponse(user: credentials.user, accessToken: credentials.token)
                link.supplyToken(response)
            } catch {
                discard(link)
                finishOpening(link, .credentials(error))
            }
        }
    }

    private func feedUpstream(_ link: SMTPUpstreamLink, _ input: SMTPUpstreamSide.Input) {
        link.feed(input)
        let pending = link.pendingWriteBytes
        peakUpstreamPendingBytes = max(peakUpstreamPendingBytes, pending)
        if pending > environment.configuration.limits.writeBufferHighWater, !upstreamCongested {
            upstreamCongested = true
            upstreamBackpressurePauses += 1
        }
    }

    // MARK: - Envelope and message

    private func forwardMail(account: String, from: SMTPReversePath, parameters: [SMTPParameter]) {
        switch from {
        case .null: mailFrom = ""
        case .mailbox(let mailbox): mailFrom = mailbox.description
        }
        transactionAccount = account
        withUpstream(for: account) { [self] failure in
            guard !ended else { return }
            if let failure {
                logger.warning("SMTP upstream unavailable for MAIL", metadata: ["reason": "\(failure.logText)"])
                feed(.upstreamReply(failure.mailReply(account: account)))
            } else if let link = readyLink {
                feedUpstream(link, .mail(from: from, parameters: parameters))
            } else {
                feed(.upstreamReply(SMTPGatewayReplies.upstreamLost))
            }
        }
    }

    private func startRecording() {
        guard let account = transactionAccount else { return }
        let settings = readyLink?.settings ?? environment.resolver(account)
        guard let settings else { return }
        let recipients = server.acceptedRecipients.map { path -> String in
            switch path {
            case .postmaster: "Postmaster"
            case .mailbox(let mailbox): mailbox.description
            }
        }
        recording = environment.recorder.beginRecording(
            account: account, listener: environment.configuration.listenerName, mailFrom: mailFrom,
            recipients: recipients, policy: settings.sentMailPolicy)
        finalDotSent = false
    }

    private func messageBytes(_ bytes: [UInt8]) {
        guard let recording, let link = readyLink else { return }
        do {
            let forward = try recording.append(bytes)
            if !forward.isEmpty {
                bytesForwarded += forward.count
                feedUpstream(link, .messageChunk(forward))
            }
        } catch {
            recordingFailed(error)
        }
    }

    private func endOfMessage() {
        guard let recording, let link = readyLink else {
            abandonRecording(reason: "upstream connection lost", fateUnknown: false)
            return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost))
        }
        do {
            let rest = try recording.finishInput()
            if !rest.isEmpty {
                bytesForwarded += rest.count
                feedUpstream(link, .messageChunk(rest))
            }
        } catch {
            return recordingFailed(error)
        }
        recording.prepareCommit(on: queue) { [self] result in
            guard !ended, self.recording === recording else { return }
            switch result {
            case .success:
                guard let link = readyLink else {
                    abandonRecording(reason: "upstream connection lost", fateUnknown: false)
                    return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost))
                }
                finalDotSent = true
                feedUpstream(link, .endOfMessage)
            case .failure(let error):
                recordingFailed(error)
            }
        }
    }

    /// The archive or journal could not take the message: it must not be sent.
    private func recordingFailed(_ error: any Error) {
        logger.error("SMTP message could not be recorded", metadata: ["error": "\(error)"])
        abandonRecording(reason: "recording failed: \(error)", fateUnknown: false)
        dropUpstream()
        feed(.upstreamReply(SMTPGatewayReplies.recordingFailed))
    }

    private func abandonRecording(reason: String, fateUnknown: Bool) {
        guard let recording else { return }
        self.recording = nil
        finalDotSent = false
        recording.abandon(reason: reason, fateUnknown: fateUnknown)
    }

    /// The client left after the final dot went upstream: the link outlives the session until the upstream's
    /// verdict, which the recording then gets as if the client were there (2xx → commit, else abandon), so a
    /// message the upstream accepted is journaled `sent`, not `unknown`. A link that ends first leaves `unknown`.
    private static func recordVerdictAfterClientLeft(
        _ link: SMTPUpstreamLink, _ recording: any MessageRecordingProtocol, queue: DispatchQueue
    ) {
        link.onEvent = { [link] event in
            switch event {
            case .replyForClient(let reply):
                link.onEvent = nil
                if reply.isPositiveCompletion {
                    recording.commit(upstreamReply: reply.description, on: queue) { _ in }
                } else {
                    recording.abandon(reason: sanitizeForLog(reply.description, maximumLength: 1_000), fateUnknown: false)
                }
                link.quit()
            case .ended:
                link.onEvent = nil
                recording.abandon(reason: "upstream connection lost after the client left", fateUnknown: true)
            case .needToken, .ready, .authenticationFailed, .writable:
                break
            }
        }
    }

    /// Ends a link whose events no longer matter (QUIT if it can still be sent politely).
    private func discard(_ link: SMTPUpstreamLink) {
        link.onEvent = nil
        link.quit()
    }

    /// Closes the upstream on purpose (a DATA that must not complete); the next MAIL opens a new one.
    private func dropUpstream() {
        switch upstream {
        case .open(let link), .opening(let link, _, _, _):
            upstream = .none
            link.close()
        case .none:
            break
        }
        upstreamCongested = false
    }

    private func replyForClient(_ reply: SMTPReply) {
        switch server.state {
        case .awaitingUpstream(.dataStart):
            if reply.code == 354 { startRecording() }
            feed(.upstreamReply(reply))
        case .awaitingUpstream(.endOfMessage):
            guard let recording else { return feed(.upstreamReply(reply)) }
            self.recording = nil
            finalDotSent = false
            if reply.isPositiveCompletion {
                commitInFlight = true
                recording.commit(upstreamReply: reply.description, on: queue) { [self] result in
                    commitInFlight = false
                    if case .failure(let error) = result {
                        logger.error("SMTP sent message could not be journaled", metadata: ["error": "\(error)"])
                    }
                    messagesAccepted += 1
                    feed(.upstreamReply(reply))
                }
            } else {
                messagesRefused += 1
                logger.info("SMTP upstream refused the message", metadata: ["reply": "\(sanitizeForLog(reply.description))"])
                // The reply itself is the reason: the recorder journals it and counts it by class (4xx/5xx).
                recording.abandon(reason: sanitizeForLog(reply.description, maximumLength: 1_000), fateUnknown: false)
                feed(.upstreamReply(reply))
            }
        default:
            if !reply.isPositiveCompletion {
                logger.info("SMTP upstream reply", metadata: ["reply": "\(sanitizeForLog(reply.description))"])
                if reply.code >= 400 {
                    // Envelope refusals (MAIL, RCPT, DATA); refusals of the message itself are counted by the recorder.
                    count(reply.code < 500 ? "upstream_rejected_4xx" : "upstream_rejected_5xx", account: transactionAccount)
                }
            }
            feed(.upstreamReply(reply))
        }
    }

    /// The upstream connection ended while it was open.
    private func upstreamLost(reason: String?) {
        upstreamCongested = false
        let inFlight: Bool
        switch server.state {
        case .awaitingUpstream, .data, .bdat, .discardingBDAT: inFlight = true
        default: inFlight = recording != nil
        }
        let fateUnknown = finalDotSent
        abandonRecording(reason: "upstream connection lost", fateUnknown: fateUnknown)
        if inFlight && !commitInFlight {
            logger.warning("SMTP upstream connection lost", metadata: ["reason": "\(reason ?? "closed")"])
            feed(.upstreamReply(fateUnknown ? SMTPGatewayReplies.upstreamLostAfterMessage : SMTPGatewayReplies.upstreamLost))
        } else {
            logger.debug("SMTP upstream connection ended between messages", metadata: ["reason": "\(reason ?? "closed")"])
        }
        updateReading()
    }

    // MARK: - End

    private func teardown(reason: String?) {
        guard !ended else { return }
        ended = true
        if finalDotSent, let recording, case .open(let link) = upstream {
            // The final dot is upstream and its verdict on the way: keep the link until it arrives (issue 9 point 2).
            self.recording = nil
            finalDotSent = false
            upstream = .none
            Self.recordVerdictAfterClientLeft(link, recording, queue: queue)
        }
        abandonRecording(reason: "client connection closed", fateUnknown: finalDotSent)
        switch upstream {
        case .open(let link), .opening(let link, _, _, _):
            upstream = .none
            discard(link)
        case .none:
            break
        }
        logger.info(
            "SMTP session ended",
            metadata: [
                "accepted": "\(messagesAccepted)", "refused": "\(messagesRefused)", "bytes": "\(bytesForwarded)",
                "reason": "\(reason.map { sanitizeForLog($0) } ?? "closed")",
            ])
        let onEnd = self.onEnd
        self.onEnd = nil
        onEnd?()
    }

    private func count(_ name: String, account: String?) {
        let counters = environment.counters
        let listener = environment.configuration.listenerName
        DispatchQueue.global(qos: .utility).async { counters.increment(name, account: account, listener: listener) }
    }
}

/// Carries a value that is not `Sendable` across one queue hop where only one side ever touches it.
struct UncheckedBox<Value>: @unchecked Sendable {
    // @unchecked Sendable: the value is created in a task and read once on the session queue, never shared.
    let value: Value
    init(_ value: Value) { self.value = value }
}
