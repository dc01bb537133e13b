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
    /// Connect, TLS, greeting, EHLO or STARTTLS failed; `reason` goes to the log only.
    case unreachable(String)
    /// The upstream refused the token twice (the second one freshly refreshed).
    case rejected(SMTPReply)
    /// The credentials source threw (needs reconnect, not connected, identity platform down).
    case credentials(any Error)

    /// The reply for a client whose AUTH waits on this upstream.
    ///
    /// Only fixed sentences (and the upstream's own reply) reach the client: an internal description can name
    /// store paths, the state directory or configuration keys, so it goes to the log (`logText`) instead.
    func authReply(account: String) -> SMTPReply {
        switch self {
        case .notConfigured:
            SMTPReply(
                code: 454, enhanced: EnhancedStatus("4.7.0"),
                SMTPGatewayReplies.text("Temporary authentication failure: no upstream server is configured for \(account)"))
        case .unreachable:
            SMTPReply(
                code: 454, enhanced: EnhancedStatus("4.7.0"),
                "Temporary authentication failure: the upstream server is unavailable; try again later")
        case .rejected(let reply):
            SMTPReply(
                code: 535, enhanced: EnhancedStatus("5.7.8"),
                SMTPGatewayReplies.text(
                    "Microsoft 365 refused the sign-in for \(account) (\(reply.description)): run `mailgate account connect \(account)`, and check that SMTP AUTH is enabled for the mailbox"
                ))
        case .credentials(let error):
            if Self.isTemporary(error) {
                SMTPReply(
                    code: 454, enhanced: EnhancedStatus("4.7.0"),
                    "Temporary authentication failure: the Microsoft sign-in service is unavailable; try again later")
            } else if let sentence = (error as? any ClientPresentableFailure)?.clientSentence {
                SMTPReply(code: 535, enhanced: EnhancedStatus("5.7.8"), SMTPGatewayReplies.text(sentence))
            } else {
                SMTPReply(
                    code: 535, enhanced: EnhancedStatus("5.7.8"),
                    SMTPGatewayReplies.text(
                        "The Microsoft 365 sign-in stored for \(account) cannot be used; the MailGate log says why"))
            }
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

    /// Where the session stands with the message in flight; each case says what may happen next.
    ///
    /// The client hears `250` only in `.committing`'s completion; a lost upstream means "not sent" before
    /// `.awaitingVerdict` and "fate unknown" in it; a drained shutdown closes as soon as the phase is `.idle`.
    private enum Phase {
        /// No message in flight: envelope commands, a new message, or a shutdown at once.
        case idle
        /// Message bytes flow to the recorder and the upstream; nothing final has gone upstream.
        case receiving(any MessageRecordingProtocol)
        /// The client's message is complete; the recorder makes it durable (`prepareCommit`) before the final
        /// dot may go upstream.
        case preparing(any MessageRecordingProtocol)
        /// The final dot (or `BDAT 0 LAST`) went upstream: only the upstream's reply tells the message's fate.
        case awaitingVerdict(any MessageRecordingProtocol)
        /// The upstream accepted; the journal commit runs and the client's reply waits for it.
        case committing
        /// A shutdown asked to finish the message in flight first: `inner` goes on, and the session closes when
        /// it reaches `.idle`.
        indirect case draining(Phase)
        /// Torn down: every late event is ignored.
        case ended

        /// The message part of the phase (inside `.draining`).
        var message: Phase {
            if case .draining(let inner) = self { return inner }
            return self
        }

        var isEnded: Bool { if case .ended = self { true } else { false } }
        var isDraining: Bool { if case .draining = self { true } else { false } }

        /// The recording of the message in flight, if any.
        var recording: (any MessageRecordingProtocol)? {
            switch message {
            case .receiving(let recording), .preparing(let recording), .awaitingVerdict(let recording): recording
            case .idle, .committing, .draining, .ended: nil
            }
        }
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
    /// Re-entrancy guard of `feed` (actions can feed the machine again): not a state of the conversation.
    private var feeding = false
    private var phase = Phase.idle
    private var mailFrom = ""
    private var transactionAccount: String?
    private var messagesAccepted = 0
    private var messagesRefused = 0
    private var bytesForwarded = 0
    private var latencyMarks = (upstreamOpen: UInt64(0), endOfData: UInt64(0))  // admin: Latency.swift
    private let remoteIP: IPAddress?
    var onEnd: (() -> Void)?
    /// The command-line and before-login bounds (slowloris; see `CommandClock`).
    private lazy var commandClock = CommandClock(queue: queue, limits: environment.configuration.limits) {
        [weak self] in self?.commandClockExpired($0)
    }

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
        commandClock.start()
        client.start()
        feed(.connected)
    }

    /// Ends the session for a shutdown: at once, or (`drain`) after the message in flight.
    func shutdown(drain: Bool) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !phase.isEnded else { return }
        if !drain || isIdle { return closeForShutdown() }
        if !phase.isDraining { phase = .draining(phase) }
    }

    private var ended: Bool { phase.isEnded }

    /// Moves the message phase on, keeping a requested drain.
    private func enter(_ next: Phase) {
        guard !phase.isEnded else { return }
        phase = phase.isDraining ? .draining(next) : next
    }

    private var isIdle: Bool {
        guard case .idle = phase.message else { return false }
        switch server.state {
        case .greeting, .ready, .awaitingConnection: return true
        default: return false
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
            observeCommandLine(bytes)
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
        guard !feeding else { return }
        feeding = true
        // Everything these inputs make the upstream send goes out in one write (a pipelined envelope).
        let link = currentLink
        if let link {
            link.batch { drainInputs() }
        } else {
            drainInputs()
        }
        feeding = false
        if phase.isDraining, isIdle { closeForShutdown() }
        updateReading()
        noteLoginForCommandClock()
    }

    private func drainInputs() {
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
    }

    /// Whether the upstream's write queue is over its high-water mark (reading from the client waits for
    /// `.writable`).
    private var upstreamCongested: Bool {
        guard let link = readyLink else { return false }
        return link.pendingWriteBytes > environment.configuration.limits.writeBufferHighWater
    }

    private func updateReading() {
        guard !ended else { return }
        let congested = upstreamCongested
        let pause = server.shouldPauseReading || congested
        guard pause != client.isReadingPaused else { return }
        if pause {
            if congested { upstreamBackpressurePauses += 1 }
            client.pauseReading()
        } else {
            client.resumeReading()
        }
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
            if case .opening(let link, let attempt, let rejected, let completions) = upstream {
                // Pipelined behind a MAIL whose upstream is still being opened: it goes (or fails) right after.
                upstream = .opening(
                    link, attempt: attempt, rejected: rejected,
                    completions: completions + [{ [self] failure in
                        guard !ended else { return }
                        if failure == nil, let link = readyLink {
                            feedUpstream(link, .rcpt(to: to, parameters: parameters))
                        } else {
                            feed(.upstreamReply(SMTPGatewayReplies.upstreamLost))
                        }
                    }])
                return
            }
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

    /// The link being opened or open, if any.
    private var currentLink: SMTPUpstreamLink? {
        switch upstream {
        case .open(let link), .opening(let link, _, _, _): link
        case .none: nil
        }
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
        if attempt == 1 { latencyMarks.upstreamOpen = DispatchTime.now().uptimeNanoseconds }
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
                environment.counters.latency(.smtpUpstreamLogin, since: latencyMarks.upstreamOpen, account: link.account)
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
        peakUpstreamPendingBytes = max(peakUpstreamPendingBytes, link.pendingWriteBytes)
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
        enter(
            .receiving(
                environment.recorder.beginRecording(
                    account: account, listener: environment.configuration.listenerName, mailFrom: mailFrom,
                    recipients: recipients, policy: settings.sentMailPolicy)))
    }

    private func messageBytes(_ bytes: [UInt8]) {
        guard case .receiving(let recording) = phase.message, let link = readyLink else { return }
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
        latencyMarks.endOfData = DispatchTime.now().uptimeNanoseconds
        guard case .receiving(let recording) = phase.message, let link = readyLink else {
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
        enter(.preparing(recording))
        recording.prepareCommit(on: queue) { [self] result in
            guard case .preparing(let current) = phase.message, current === recording else { return }
            switch result {
            case .success:
                guard let link = readyLink else {
                    abandonRecording(reason: "upstream connection lost", fateUnknown: false)
                    return feed(.upstreamReply(SMTPGatewayReplies.upstreamLost))
                }
                enter(.awaitingVerdict(recording))
                link.batch { feedUpstream(link, .endOfMessage) }
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
        guard let recording = phase.recording else { return }
        enter(.idle)
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
    }

    private func replyForClient(_ reply: SMTPReply) {
        switch server.state {
        case .awaitingUpstream(.dataStart):
            if reply.code == 354 { startRecording() }
            feed(.upstreamReply(reply))
        case .awaitingUpstream(.endOfMessage):
            guard let recording = phase.recording else { return feed(.upstreamReply(reply)) }
            if reply.isPositiveCompletion {
                enter(.committing)
                recording.commit(upstreamReply: reply.description, on: queue) { [self] result in
                    if case .committing = phase.message { enter(.idle) }
                    if case .failure(let error) = result {
                        logger.error("SMTP sent message could not be journaled", metadata: ["error": "\(error)"])
                    }
                    let summary = recording.logSummary
                    logger.info(
                        "SMTP message relayed",
                        metadata: ["size": "\(summary.size)", "messageID": "\(sanitizeForLog(summary.messageID))"])
                    messagesAccepted += 1
                    environment.counters.latency(.smtpReply250, since: latencyMarks.endOfData, account: transactionAccount)
                    feed(.upstreamReply(reply))
                }
            } else {
                messagesRefused += 1
                logger.info("SMTP upstream refused the message", metadata: ["reply": "\(sanitizeForLog(reply.description))"])
                // The reply itself is the reason: the recorder journals it and counts it by class (4xx/5xx).
                enter(.idle)
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
        let inFlight: Bool
        switch server.state {
        case .awaitingUpstream, .data, .bdat, .discardingBDAT: inFlight = true
        default: inFlight = phase.recording != nil
        }
        var committing = false
        var fateUnknown = false
        switch phase.message {
        case .committing: committing = true
        case .awaitingVerdict: fateUnknown = true
        default: break
        }
        abandonRecording(reason: "upstream connection lost", fateUnknown: fateUnknown)
        if inFlight && !committing {
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
        let recording = phase.recording
        var fateUnknown = false
        if case .awaitingVerdict = phase.message { fateUnknown = true }
        phase = .ended
        commandClock.stop()
        if fateUnknown, let recording, case .open(let link) = upstream {
            // The final dot is upstream and its verdict on the way: keep the link until it arrives (issue 9 point 2).
            upstream = .none
            Self.recordVerdictAfterClientLeft(link, recording, queue: queue)
        } else {
            recording?.abandon(reason: "client connection closed", fateUnknown: fateUnknown)
        }
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

// MARK: - Slowloris bounds (CommandClock)

extension SMTPSession {
    static func commandLineTimeout(_ seconds: Double) -> SMTPReply {
        SMTPReply(
            code: 421, enhanced: EnhancedStatus("4.4.2"),
            "Timeout: a command line was not completed within \(Int(seconds)) seconds; closing")
    }

    static func unauthenticatedTimeout(_ seconds: Double) -> SMTPReply {
        SMTPReply(
            code: 421, enhanced: EnhancedStatus("4.4.2"), "Timeout: not logged in within \(Int(seconds)) seconds; closing")
    }

    /// Times the command line in progress: message data (DATA, BDAT) is not a command line, nor are bytes the
    /// session holds while it waits for the upstream or the password check (the client is not slow then).
    fileprivate func observeCommandLine(_ bytes: [UInt8]) {
        guard !ended else { return }
        let streaming: Bool
        switch server.state {
        case .data, .bdat, .discardingBDAT, .awaitingUpstream, .verifyingCredentials, .startingTLS: streaming = true
        case .awaitingConnection, .greeting, .ready, .authenticating, .transaction, .closed: streaming = client.isReadingPaused
        }
        commandClock.observe(bytes, streaming: streaming)
    }

    /// A login (AUTH) or, for a relay client, an accepted MAIL ends the unauthenticated phase.
    fileprivate func noteLoginForCommandClock() {
        guard !ended else { return }
        var started = server.authenticatedAccount != nil || server.state == .transaction
        if case .idle = phase.message {} else { started = true }
        if started { commandClock.authenticated() }
    }

    fileprivate func commandClockExpired(_ expiry: CommandClock.Expiry) {
        guard !ended else { return }
        let limits = environment.configuration.limits
        switch expiry {
        case .commandLine:
            logger.info("SMTP client command line timeout (slowloris)")
            client.write(Self.commandLineTimeout(limits.commandLineTimeoutSeconds).encode())
        case .unauthenticated:
            logger.info("SMTP client did not log in in time")
            client.write(Self.unauthenticatedTimeout(limits.unauthenticatedTimeoutSeconds).encode())
        }
        client.closeAfterFlushing()
    }
}
