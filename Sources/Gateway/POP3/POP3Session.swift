// Gateway: one POP3 client connection on its serial queue: local login, then a maildrop (local store or the
// server's INBOX over IMAP) or the server's POP3 relayed.
import Crypto
import Dispatch
import Foundation
import Logging
import MailCore
import POP3
import SASL
import TLS
import Transport

struct POP3SessionEnvironment: Sendable {
    var configuration: POP3GatewayConfiguration
    var implicitTLS: Bool
    var serverTLS: TLSContext?
    var authenticator: LocalAuthenticator
    var credentials: any UpstreamCredentials
    var resolver: POP3UpstreamResolver
    var localMaildrops: (any LocalMaildropProvider)?
    var locks: POP3MaildropLocks
    /// Shared with the IMAP listeners: POP3 served over IMAP counts against `imap_upstream_sessions` too.
    var imapSessionCap: IMAPUpstreamSessionCap?
    var counters: any GatewayCounters
    var tlsContexts: UpstreamTLSContexts
    var logger: Logger
}

/// One POP3 client connection.
///
/// `POP3ServerSide` holds the conversation; this class performs its actions on `queue` (the client connection's).
/// After the local password: a maildrop from the `LocalMaildropProvider` when it serves the account, else per
/// `incoming` an `IMAPMaildrop` (the INBOX over IMAP) or a `POP3UpstreamLink` whose login is answered to the client
/// only once Microsoft 365 accepted the token; from then on `POP3RelayTracker` relays. RETR/TOP chunks go to the
/// client as they come; the maildrop is asked for more only when the client's write queue is below the relay's
/// high-water mark, so a message is never held whole.
final class POP3Session: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is used only on `queue`.
    private enum Phase {
        case conversation
        case relaying(Connection)
        case ended
    }

    let id: String
    let client: Connection
    let queue: DispatchQueue
    private let environment: POP3SessionEnvironment
    private var logger: Logger
    private var server: POP3ServerSide
    private var phase = Phase.conversation
    private var maildrop: (any POP3Maildrop)?
    private var link: POP3UpstreamLink?
    private var linkAttempt = 1
    private var lastAccessToken: Redacted<String>?
    private var tracker: POP3RelayTracker
    private var account: String?
    private var holdsLock = false
    private var holdsCapSlot = false
    private var commitInFlight = false
    private var pendingResume: (@Sendable () -> Void)?
    private var clientPaused = false
    private var retrievalBytes = 0
    private let remoteIP: IPAddress?
    var onEnd: (() -> Void)?
    /// The command-line and before-login bounds (slowloris; see `CommandClock`).
    private lazy var commandClock = CommandClock(queue: queue, limits: limits) { [weak self] in
        self?.commandClockExpired($0)
    }

    init(client: Connection, environment: POP3SessionEnvironment) {
        self.client = client
        self.queue = client.queue
        self.environment = environment
        self.id = SHA256.hexString(SecureRandom.bytes(4))
        let remoteIP = client.remoteIPAddress
        self.remoteIP = remoteIP
        let loopback: Bool = {
            guard let remoteIP else { return false }
            if remoteIP.isIPv4 { return remoteIP.bytes[0] == 127 }
            return remoteIP.bytes == [UInt8](repeating: 0, count: 15) + [1]
        }()
        let limits = environment.configuration.limits
        self.server = POP3ServerSide(
            configuration: .init(
                greetingText: "MailGate POP3 ready", tlsAvailable: environment.serverTLS != nil && !environment.implicitTLS,
                implicitTLS: environment.implicitTLS, clientIsLoopback: loopback,
                allowPlaintext: environment.configuration.allowPlaintext, saslResponseLine: limits.saslResponse,
                errorBudget: limits.errorBudget, maximumBufferedInput: max(65_536, limits.readChunk * 2)))
        self.tracker = POP3RelayTracker(responseLine: limits.upstreamLine)
        logger = environment.logger
        logger[metadataKey: "session"] = "\(id)"
        logger[metadataKey: "remote"] = "\(remoteIP?.description ?? "?")"
        logger[metadataKey: "listener"] = "\(environment.configuration.listenerName)"
    }

    private var limits: Limits { environment.configuration.limits }
    private var highWater: Int { IMAPSession.connectionLimits(limits).writeBufferHighWater }
    private var isEnded: Bool { if case .ended = phase { true } else { false } }

    // MARK: - Start and end

    func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        logger.info("POP3 session started")
        count("pop3.sessions")
        client.readMode = .raw
        client.onEvent = { [self] event in clientEvent(event) }
        client.setIdleTimeout(seconds: limits.idleTimeoutSeconds)
        commandClock.start()
        client.start()
        feed(.connected)
    }

    func shutdown() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !isEnded else { return }
        if case .conversation = phase {
            client.write(POP3Reply(status: .err, code: .systemTemporary, text: "MailGate is shutting down; nothing was deleted").encoded)
        }
        client.closeAfterFlushing()
        teardown(reason: "shutting down")
    }

    private func teardown(reason: String?) {
        guard !isEnded else { return }
        let previous = phase
        phase = .ended
        commandClock.stop()
        if case .relaying(let upstream) = previous {
            upstream.close()
            countAmount("pop3.retr.bytes", tracker.retrievedOctets)
        }
        link?.close()
        link = nil
        // A client that leaves during UPDATE asked for the deletions with QUIT: they finish, then the maildrop closes.
        if !commitInFlight { maildrop?.close() }
        maildrop = nil
        pendingResume = nil
        releaseLock()
        logger.info("POP3 session ended", metadata: ["reason": "\(reason.map { sanitizeForLog($0) } ?? "closed")"])
        let onEnd = self.onEnd
        self.onEnd = nil
        onEnd?()
    }

    private func releaseLock() {
        if holdsLock, let account {
            environment.locks.release(account)
            holdsLock = false
        }
        if holdsCapSlot, let account {
            environment.imapSessionCap?.release(account)
            holdsCapSlot = false
        }
    }

    // MARK: - Client input

    private func clientEvent(_ event: ConnectionEvent) {
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            switch phase {
            case .conversation: feed(.received(bytes))
            case .relaying(let upstream): relayClient(bytes, upstream)
            case .ended: break
            }
            if !isEnded { commandClock.observe(bytes, streaming: clientPaused) }
        case .idleTimeout:
            logger.info("POP3 client idle timeout")
            if case .conversation = phase {
                client.write(POP3Reply(status: .err, text: "Idle for too long; closing (nothing was deleted)").encoded)
            }
            client.closeAfterFlushing()
            teardown(reason: "idle timeout")
        case .closed(let error):
            teardown(reason: error?.description)
        case .writable:
            switch phase {
            case .relaying(let upstream): upstream.resumeReading()
            case .conversation:
                if let resume = pendingResume {
                    pendingResume = nil
                    resume()
                }
            case .ended: break
            }
        case .lineTooLong:
            break
        }
    }

    private func feed(_ input: POP3ServerSide.Input) {
        guard !isEnded else { return }
        for action in server.handle(input) {
            guard !isEnded else { return }
            perform(action)
        }
        guard !isEnded, case .conversation = phase else { return }
        if server.isWaitingForSession {
            if !clientPaused { clientPaused = true; client.pauseReading() }
        } else if clientPaused {
            clientPaused = false
            client.resumeReading()
        }
    }

    private func perform(_ action: POP3ServerSide.Action) {
        switch action {
        case .send(let bytes):
            client.write(bytes)
        case .startTLS:
            guard let tls = environment.serverTLS else {
                client.close()
                return teardown(reason: "STLS without a certificate")
            }
            client.startServerTLS(context: tls) { [self] error in
                guard !isEnded else { return }
                if let error {
                    logger.info("POP3 client TLS handshake failed", metadata: ["error": "\(error)"])
                    client.close()
                    return teardown(reason: "TLS handshake failed")
                }
                feed(.tlsStarted)
            }
        case .verify(let username, let password, _):
            login(user: username, password: password)
        case .retrieve(let index, let bodyLines):
            retrieve(index, bodyLines: bodyLines)
        case .commit(let indices):
            commit(indices)
        case .relay(let leftover):
            guard let link, let upstream = link.connection else {
                client.close()
                return teardown(reason: "relay without an upstream")
            }
            self.link = nil
            startRelay(upstream, leftover: leftover)
        case .close:
            client.closeAfterFlushing()
            teardown(reason: "closed")
        }
    }

    // MARK: - Login

    private func login(user: String, password: Redacted<String>) {
        environment.authenticator.verify(
            email: user, password: password, remoteAddress: remoteIP?.description, on: queue
        ) { [self] outcome in
            guard !isEnded else { return }
            switch outcome {
            case .rejected:
                loginFailed(.authenticationFailed, account: user.lowercased(), log: "wrong local password or unknown account")
            case .busy:
                loginFailed(.temporary("Too many logins are being checked"), account: user.lowercased(), log: "password-check queue full")
            case .accepted(let account):
                openMaildrop(account: account)
            }
        }
    }

    private func loginFailed(_ failure: POP3ServerSide.LoginFailure, account: String?, log: String) {
        logger.info(
            "POP3 login failed",
            metadata: ["user": "\(sanitizeForLog(account ?? "?", maximumLength: 80))", "reason": "\(sanitizeForLog(log))"])
        count("pop3.login.failed", account: account)
        releaseLock()
        self.account = nil
        maildrop?.close()
        maildrop = nil
        link?.close()
        link = nil
        feed(.loginFailed(failure))
    }

    /// RFC 1939 §3: an autologout timer in the TRANSACTION state must allow at least 10 minutes.
    private var transactionIdleSeconds: Double { max(600, limits.idleTimeoutSeconds) }

    private func loginSucceeded(_ result: POP3ServerSide.LoginResult) {
        logger.info("POP3 login ok", metadata: ["account": "\(account ?? "?")"])
        client.setIdleTimeout(seconds: transactionIdleSeconds)
        commandClock.authenticated()
        count("pop3.login.ok", account: account)
        feed(.loginSucceeded(result))
    }

    private func openMaildrop(account: String) {
        guard environment.locks.acquire(account) else {
            return loginFailed(
                .inUse("Another POP3 session uses the maildrop of \(account); try again when it has ended"),
                account: account, log: "maildrop in use")
        }
        self.account = account
        holdsLock = true
        logger[metadataKey: "account"] = "\(account)"
        if let local = environment.localMaildrops?.localMaildrop(for: account, queue: queue) {
            return open(local)
        }
        guard let settings = environment.resolver(account) else {
            return loginFailed(.permanent("No incoming mail server is configured for \(account)"), account: account, log: "no upstream")
        }
        switch settings.source {
        case .imap(let endpoint):
            if let cap = environment.imapSessionCap {
                guard cap.acquire(account) else {
                    return loginFailed(
                        .temporary("Too many IMAP sessions for \(account) (at most \(cap.maximum)); close another mail program"),
                        account: account, log: "imap_upstream_sessions reached")
                }
                holdsCapSlot = true
            }
            let maildrop = IMAPMaildrop(
                account: account,
                settings: IMAPUpstreamSettings(endpoint: endpoint, allowInsecure: endpoint.allowInsecure),
                queue: queue, limits: IMAPSession.connectionLimits(limits), tlsContexts: environment.tlsContexts,
                credentials: environment.credentials, logger: logger)
            open(maildrop)
        case .pop3(let endpoint):
            startLink(account: account, endpoint: endpoint)
        }
    }

    private func open(_ maildrop: any POP3Maildrop) {
        self.maildrop = maildrop
        maildrop.open { [self] result in
            guard !isEnded, self.maildrop === maildrop else { return }
            switch result {
            case .success(let messages):
                loginSucceeded(.maildrop(messages.map { .init(uidl: $0.uidl, size: $0.size) }))
            case .failure(let error):
                let failure: POP3ServerSide.LoginFailure
                if let imap = maildrop as? IMAPMaildrop, imap.mustReconnect {
                    failure = .mustReconnect(email: account ?? "")
                } else {
                    switch error {
                    case .temporary(let text): failure = .temporary(text)
                    case .permanent(let text): failure = .permanent(text)
                    case .inUse(let text): failure = .inUse(text)
                    }
                }
                loginFailed(failure, account: account, log: error.sentence)
            }
        }
    }

    // MARK: - Relayed POP3 login

    private func startLink(account: String, endpoint: UpstreamEndpoint) {
        let link = POP3UpstreamLink(
            account: account, endpoint: endpoint, queue: queue, limits: IMAPSession.connectionLimits(limits),
            tlsContexts: environment.tlsContexts)
        self.link = link
        link.onEvent = { [weak self, weak link] event in
            guard let self, let link, self.link === link, !self.isEnded else { return }
            linkEvent(event, link)
        }
        link.open()
    }

    private func linkEvent(_ event: POP3UpstreamLink.Event, _ link: POP3UpstreamLink) {
        switch event {
        case .needToken:
            fetchToken(for: link, forceRefresh: linkAttempt > 1)
        case .ready:
            loginSucceeded(.relay)
        case .authenticationFailed(let reply):
            logger.info("POP3 upstream refused the token", metadata: ["reply": "\(sanitizeForLog(reply.description))"])
            self.link = nil
            if reply.code == .inUse {
                return loginFailed(.inUse("The mailbox is in use by another POP3 session at Microsoft 365"), account: account, log: reply.description)
            }
            if reply.code == .systemTemporary {
                return loginFailed(.temporary("Microsoft 365 POP3 is busy"), account: account, log: reply.description)
            }
            if linkAttempt == 1, let account {
                linkAttempt = 2
                startLink(account: account, endpoint: link.endpoint)
            } else {
                loginFailed(.mustReconnect(email: account ?? link.account), account: account, log: "token refused twice: \(reply.description)")
            }
        case .ended(let reason):
            self.link = nil
            loginFailed(.temporary("Microsoft 365 POP3 is not reachable right now"), account: account, log: reason)
        }
    }

    private func fetchToken(for link: POP3UpstreamLink, forceRefresh: Bool) {
        let credentials = environment.credentials
        let account = link.account
        let rejected = lastAccessToken
        let queue = queue
        Task {
            let result: Result<(user: String, token: Redacted<String>), any Error>
            do {
                if forceRefresh, let rejected {
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

    private func tokenArrived(for link: POP3UpstreamLink, _ result: Result<(user: String, token: Redacted<String>), any Error>) {
        guard self.link === link, !isEnded else { return }
        switch result {
        case .failure(let error):
            self.link = nil
            link.close()
            if UpstreamOpenFailure.isTemporary(error) {
                loginFailed(.temporary("Getting a Microsoft 365 token failed"), account: account, log: String(describing: error))
            } else {
                loginFailed(.mustReconnect(email: account ?? link.account), account: account, log: String(describing: error))
            }
        case .success(let identity):
            lastAccessToken = identity.token
            do {
                link.supplyToken(try XOAuth2.rawResponse(user: identity.user, accessToken: identity.token))
            } catch {
                self.link = nil
                link.close()
                loginFailed(.temporary("The XOAUTH2 response could not be built"), account: account, log: "\(error)")
            }
        }
    }

    // MARK: - Relaying

    private func startRelay(_ upstream: Connection, leftover: [UInt8]) {
        phase = .relaying(upstream)
        if clientPaused {
            clientPaused = false
            client.resumeReading()
        }
        upstream.setIdleTimeout(seconds: transactionIdleSeconds + 60)
        upstream.readMode = .raw
        upstream.onEvent = { [self] event in upstreamEvent(event, upstream) }
        if !leftover.isEmpty { relayClient(leftover, upstream) }
    }

    private func relayClient(_ bytes: [UInt8], _ upstream: Connection) {
        let before = tracker.errorCount
        let (toUpstream, toClient) = tracker.client(bytes)
        if !toUpstream.isEmpty {
            countRelayedCommands(toUpstream)
            upstream.write(toUpstream)
            if upstream.pendingWriteBytes > highWater { client.pauseReading() }
        }
        if !toClient.isEmpty { client.write(toClient) }
        if tracker.errorCount >= limits.errorBudget && tracker.errorCount > before {
            client.write(POP3Reply(status: .err, text: "Too many errors; closing the connection").encoded)
            client.closeAfterFlushing()
            teardown(reason: "error budget spent")
        }
    }

    private func countRelayedCommands(_ bytes: [UInt8]) {
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let text = String(decoding: line.prefix(5), as: UTF8.self).uppercased()
            if text.hasPrefix("RETR ") { count("pop3.retr", account: account) }
            if text.hasPrefix("DELE ") { count("pop3.dele", account: account) }
        }
    }

    private func upstreamEvent(_ event: ConnectionEvent, _ upstream: Connection) {
        guard !isEnded else { return }
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            do throws(POP3RelayTracker.Violation) {
                let out = try tracker.upstream(bytes)
                if !out.isEmpty { client.write(out) }
                if client.pendingWriteBytes > highWater { upstream.pauseReading() }
            } catch {
                logger.warning("POP3 upstream broke the protocol", metadata: ["reason": "\(sanitizeForLog(error.reason))"])
                client.closeAfterFlushing()
                teardown(reason: "upstream protocol violation")
            }
        case .writable:
            client.resumeReading()
        case .closed(let error):
            if !tracker.quitSent {
                logger.warning("POP3 upstream connection lost", metadata: ["reason": "\(error?.description ?? "closed")"])
            }
            client.closeAfterFlushing()
            teardown(reason: tracker.quitSent ? "quit" : "upstream closed")
        case .idleTimeout:
            upstream.close()
        case .lineTooLong:
            break
        }
    }

    // MARK: - Transaction

    private func retrieve(_ index: Int, bodyLines: Int?) {
        guard let maildrop else { return feed(.retrieveFinished(.temporary("The maildrop is not open"))) }
        retrievalBytes = 0
        maildrop.retrieve(
            index, bodyLines: bodyLines,
            chunk: { [self] bytes, resume in
                guard !isEnded else { return }
                retrievalBytes += bytes.count
                feed(.messageData(bytes))
                if client.pendingWriteBytes > highWater {
                    pendingResume = resume
                } else {
                    resume()
                }
            },
            done: { [self] result in
                guard !isEnded else { return }
                // A chunk still waiting for the client: the source may have paused its reading for it.
                if let resume = pendingResume {
                    pendingResume = nil
                    resume()
                }
                switch result {
                case .success:
                    if bodyLines == nil {
                        count("pop3.retr", account: account)
                        countAmount("pop3.retr.bytes", retrievalBytes)
                    }
                    feed(.retrieveFinished(nil))
                case .failure(let error):
                    logger.warning("POP3 retrieval failed", metadata: ["reason": "\(sanitizeForLog(error.sentence))"])
                    switch error {
                    case .permanent(let text): feed(.retrieveFinished(.permanent(text)))
                    case .temporary(let text), .inUse(let text): feed(.retrieveFinished(.temporary(text)))
                    }
                }
            })
    }

    private func commit(_ indices: [Int]) {
        guard let maildrop else { return feed(.commitFinished(.temporary("The maildrop is not open"))) }
        commitInFlight = true
        maildrop.commit(deleting: indices) { [self] result in
            commitInFlight = false
            if case .success = result { countAmount("pop3.dele", indices.count) }
            guard !isEnded else {
                logger.info("POP3 deletions at QUIT finished after the client left", metadata: ["ok": "\((try? result.get()) != nil)"])
                return maildrop.close()
            }
            switch result {
            case .success:
                logger.info("POP3 deleted messages at QUIT", metadata: ["count": "\(indices.count)"])
                feed(.commitFinished(nil))
            case .failure(let error):
                logger.warning("POP3 deletion at QUIT failed", metadata: ["reason": "\(sanitizeForLog(error.sentence))"])
                switch error {
                case .permanent(let text): feed(.commitFinished(.permanent(text)))
                case .temporary(let text), .inUse(let text): feed(.commitFinished(.temporary(text)))
                }
            }
        }
    }

    // MARK: - Counters

    private func count(_ name: String, account: String? = nil) {
        let counters = environment.counters
        let listener = environment.configuration.listenerName
        DispatchQueue.global(qos: .utility).async { counters.increment(name, account: account, listener: listener) }
    }

    private func countAmount(_ name: String, _ amount: Int) {
        guard amount > 0 else { return }
        let listener = environment.configuration.listenerName
        let account = account
        if let counters = environment.counters as? any GatewayAmountCounters {
            DispatchQueue.global(qos: .utility).async { counters.add(name, amount: amount, account: account, listener: listener) }
        } else {
            let counters = environment.counters
            DispatchQueue.global(qos: .utility).async {
                for _ in 0..<min(amount, 1_000) { counters.increment(name, account: account, listener: listener) }
            }
        }
    }
}

// MARK: - Slowloris bounds (CommandClock)

extension POP3Session {
    fileprivate func commandClockExpired(_ expiry: CommandClock.Expiry) {
        guard !isEnded else { return }
        let text: String
        switch expiry {
        case .commandLine:
            logger.info("POP3 client command line timeout (slowloris)")
            text = "A command line was not completed within \(Int(limits.commandLineTimeoutSeconds)) seconds; closing (nothing was deleted)"
        case .unauthenticated:
            logger.info("POP3 client did not log in in time")
            text = "Not logged in within \(Int(limits.unauthenticatedTimeoutSeconds)) seconds; closing"
        }
        // Only between commands: in the middle of a relayed multi-line answer a status line would corrupt it.
        if case .conversation = phase { client.write(POP3Reply(status: .err, text: text).encoded) }
        client.closeAfterFlushing()
        teardown(reason: "command line or login timeout")
    }
}
