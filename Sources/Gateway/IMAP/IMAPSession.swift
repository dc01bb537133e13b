// Gateway: one IMAP client connection and its upstream (Microsoft 365) on one serial queue: local login, upstream
// XOAUTH2, then a streaming relay that looks at commands only where the gateway must.
import Crypto
import Dispatch
import Foundation
import IMAP
import Logging
import MailCore
import Policy
import SASL
import Synchronization
import TLS
import Transport

/// Everything a session needs that outlives it; shared by all sessions of one listener.
struct IMAPSessionEnvironment: Sendable {
    var configuration: IMAPGatewayConfiguration
    var implicitTLS: Bool
    var serverTLS: TLSContext?
    var authenticator: LocalAuthenticator
    var credentials: any UpstreamCredentials
    var resolver: IMAPUpstreamResolver
    var sessionCap: IMAPUpstreamSessionCap
    var counters: any GatewayCounters
    var journal: (any IMAPSentJournal)?
    var tlsContexts: UpstreamTLSContexts
    var logger: Logger
    /// Cancels the gateway's queued sent copy when the client's APPEND files the message (point 6).
    var sentCopyCanceller: (any SentCopyCancelling)?
    /// Searches Sent upstream for a Message-ID (a short side session).
    var sentFolderSearch: any SentFolderSearching
}

extension IMAPSessionEnvironment {
    /// One environment shared by reference among the sessions of a listener.
    final class Shared: Sendable {
        let value: IMAPSessionEnvironment
        init(_ value: IMAPSessionEnvironment) { self.value = value }
    }
}

/// One IMAP client connection.
///
/// The client is read in `.raw` mode through an `IMAPStreamScanner`. Before login the session answers itself
/// (CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE PLAIN). After the local password is verified it
/// opens `IMAPUpstreamLink` on the same queue and answers the LOGIN only once the upstream accepted XOAUTH2. From
/// then on client commands go upstream as the bytes that came (synchronizing literals are answered `+` here and
/// sent `{n+}` when the upstream has LITERAL+), and upstream lines and literal chunks go to the client as they
/// arrive, so a FETCH body of any size is never held whole. The session keeps one `Phase`; all state is on `queue`.
final class IMAPSession: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is used only on `queue` (the client connection's serial queue);
    // the gateway keeps a reference only to call `shutdown` through that queue.

    /// Where the conversation with the client stands.
    private enum Phase {
        /// Before login: `IMAPServerSide` answers (CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE).
        case preLogin
        /// The local password is being checked or the upstream login runs; `IMAPServerSide` holds client input.
        case loggingIn(account: String?)
        /// Logged in: client commands are relayed.
        case relaying
        /// The client is in IDLE (RFC 2177).
        case idling(IdleState)
        /// The upstream ended with AccessTokenExpired between commands: a fresh upstream is being opened.
        case reconnecting(idle: IdleState?)
        /// Over.
        case ended
    }

    /// An IDLE the client started; upstream it may be re-issued under the gateway's own tags.
    private struct IdleState {
        var clientTag: String
        var upstreamTag: String
        /// The upstream sent `+` for the current upstream IDLE.
        var confirmed = false
        /// The client has been told `+ idling`.
        var clientNotified = false
        /// The client sent DONE.
        var doneRequested = false
        /// DONE went upstream for a re-issue; the tagged OK is swallowed and IDLE sent again.
        var reissuing = false
    }

    private enum UpstreamState {
        case none
        case opening(IMAPUpstreamLink, attempt: Int)
        case open(IMAPUpstreamLink)
    }

    /// A piece of what goes upstream: bytes, or "wait for the upstream's `+`" (only when it lacks LITERAL+).
    private enum Segment {
        case bytes([UInt8])
        case awaitContinuation
    }

    /// A client command being collected.
    private struct Assembly {
        var tag: String
        var name: String
        /// The whole command as the client sent it (only while small; pre-auth LOGIN, policy decisions).
        var raw: [UInt8] = []
        /// What goes upstream for it (literal markers adapted).
        var upstream: [Segment] = []
        /// A literal too large to hold: the command has been going upstream as it came.
        var streaming = false
        /// Answer this `NO` once the (swallowed) command ends.
        var refusal: String?
    }

    /// A command sent upstream whose tagged answer is awaited.
    private struct InFlight {
        var tag: String
        var name: String
        /// SELECT/EXAMINE: what follows the tag upstream, to re-select after a reconnect.
        var selectTail: [UInt8]? = nil
        /// SELECT/EXAMINE: the server-side mailbox.
        var mailbox: MailboxName? = nil
        /// LIST/LSUB sent upstream as `"" "*"`: the client's own pattern (reference + pattern), applied to the
        /// client-side names of the answers.
        var listPattern: [UInt8]? = nil
        /// `LIST (SPECIAL-USE) …`: only mailboxes with a special-use attribute (RFC 6154 §3).
        var specialUseOnly = false
        /// admin (Latency.swift): when the command was complete, and MailGate's own time on its way upstream.
        var received = DispatchTime.now().uptimeNanoseconds, inbound: UInt64? = nil
        /// STATUS: the mailbox name exactly as the client wrote it, echoed in the `* STATUS` answer.
        var statusClientName: [UInt8]? = nil
        /// LIST: the client's own reference and pattern, and the client-side names already sent for it, so that a
        /// mapped folder the upstream did not list (a configured `sent_folder`) is still shown.
        var listClientArguments: (reference: [UInt8], pattern: [UInt8])? = nil
        var listedNames: Set<MailboxName> = []
    }

    /// What to do with the response arriving from upstream (lines after a literal, literal chunks).
    private enum ResponseDisposition {
        case forward
        case swallow
        /// Held whole (small: LIST, LSUB, STATUS, the folder discovery) to be parsed when it ends.
        case collect
    }

    /// Bound for a collected response; past it the bytes go out as they came (a LIST line is never this long).
    static let collectBound = 262_144

    static let inlineLiteralBound = 65_536

    /// The relay's back-pressure mark: a FETCH body waits in the kernel, not in the gateway, once this much is
    /// queued towards the slower side (keeps a 20 MiB FETCH within a few hundred KiB of gateway memory).
    static let relayHighWater = 262_144

    /// Connection limits of both sides of a pair: `[limits]` with the relay's lower write high-water mark.
    static func connectionLimits(_ limits: Limits) -> Limits {
        var adjusted = limits
        adjusted.writeBufferHighWater = min(limits.writeBufferHighWater, relayHighWater)
        return adjusted
    }

    let id: String
    let client: Connection
    let queue: DispatchQueue
    /// The listener's environment, one object for all its sessions (each held a ~700 B copy while idle).
    private let sharedEnvironment: IMAPSessionEnvironment.Shared
    private var environment: IMAPSessionEnvironment { _read { yield sharedEnvironment.value } }
    private var logger: Logger
    private var phase = Phase.preLogin
    private var server: IMAPServerSide
    private var upstream = UpstreamState.none
    private var scanner: IMAPStreamScanner
    private var assembling: Assembly?
    private var inFlight: [InFlight] = []
    private var upstreamLoginStarted: UInt64 = 0  // admin: Latency.swift
    private var upstreamQueue: [Segment] = []
    private var awaitingUpstreamContinuation = false
    private var responseDisposition = ResponseDisposition.forward
    private var collected: [UInt8] = []
    /// The folder discovery at login (`LIST "" "*"` under our tag) in flight, and what it found so far.
    private var discoveryTag: String?
    private var discovered: [MailboxInfo] = []
    private var discoveryDone = false
    /// The server's special folders of this account, found at login (configured names win).
    private(set) var serverFolders: [SpecialUse: MailboxName] = [:]
    /// The server's hierarchy delimiter, from the discovery.
    private(set) var hierarchyDelimiter: UInt8?
    /// The folder map of this account (nil: nothing found to map, names pass unchanged).
    private var folderMap: (any IMAPFolderTranslation)?
    /// The server-side mailbox selected now.
    private var selectedMailbox: MailboxName?
    /// The selected mailbox was opened with EXAMINE (CLOSE expunges nothing then).
    private var selectedReadOnly = false
    /// An APPEND to Sent waits for the journal's answer; client input waits with it (order is kept).
    private var awaitingJournal = false
    /// APPENDs to Sent up to this size are held whole so their Message-ID can be looked up before they go upstream.
    static let dedupHoldBound = 4_194_304
    /// How long an APPEND to Sent waits for a queued sent copy to be decided (auto: 3 s after the send, then one
    /// IMAP attempt).
    static let queuedCopyWait: DispatchTimeInterval = .seconds(20)
    private var ownTagCount = 0
    private var ownTagsPending: Set<String> = []
    private var selectedTail: [UInt8]?
    /// The gateway's own re-SELECT after a reconnect, in flight.
    private var resyncTag: String?
    /// The client sent LOGOUT: the upstream closing is expected.
    private var clientLoggedOut = false
    /// An upstream `* BYE` (other than token expiry) was passed to the client: it needs no second BYE of ours.
    private var upstreamSaidBye = false
    private var account: String?
    /// The account's settings, resolved once at login (the resolver reads the store: never per command).
    private var accountSettings: IMAPAccountSettings?
    private var holdsCapSlot = false
    private var lastAccessToken: Redacted<String>?
    private var upstreamCapabilities: [Capability] = []
    private var errors = 0
    private var clientPausedByUs = false
    private var upstreamPausedByUs = false
    private var processingClient = false
    private var idleTimer: (any DispatchSourceTimer)?
    private let remoteIP: IPAddress?
    private let clientIsLoopback: Bool
    var onEnd: (() -> Void)?
    /// A forwarded response is open towards the client (inside or just before a literal): a status line now would
    /// land inside the literal, so `bye` then ends the connection without `* BYE` (issue 13 faults).
    private var midResponseToClient = false
    /// The command-line and before-login bounds (slowloris; see `CommandClock`).
    private lazy var commandClock = CommandClock(queue: queue, limits: limits) { [weak self] in
        self?.commandClockExpired($0)
    }

    // Counted in memory, written at the end (and every `flushEvery` commands) so a busy session is not a DB write
    // per command.
    private var commandsUncounted = 0
    private var bytesToUpstreamUncounted = 0
    private var bytesToClientUncounted = 0
    private static let flushEvery = 500

    /// Upstream output gathered during one read burst (small pieces only; bounded by `clientBatchBound`).
    private var clientBatch: [UInt8] = []
    private var batchingClientOutput = false
    static let clientBatchBound = 16_384
    /// Writes to the client connection after login (tests check that one upstream burst is one write).
    let clientWrites = Atomic<Int>(0)

    /// Peak bytes queued towards the client (tests check that a big FETCH is not held).
    private(set) var peakClientPendingBytes = 0

    init(client: Connection, environment shared: IMAPSessionEnvironment.Shared) {
        let environment = shared.value
        self.client = client
        self.queue = client.queue
        self.sharedEnvironment = shared
        self.id = SHA256.hexString(SecureRandom.bytes(4))
        let remoteIP = client.remoteIPAddress
        self.remoteIP = remoteIP
        self.clientIsLoopback = {
            guard let remoteIP else { return false }
            if remoteIP.isIPv4 { return remoteIP.bytes[0] == 127 }
            return remoteIP.bytes == [UInt8](repeating: 0, count: 15) + [1]
        }()
        self.scanner = IMAPStreamScanner(maximumLine: environment.configuration.limits.imapLine)
        let configuration = environment.configuration
        var preLoginLimits = IMAPServerSide.preLoginLimits
        preLoginLimits.commandLine = configuration.limits.imapLine
        self.server = IMAPServerSide(
            configuration: IMAPServerSide.Configuration(
                greetingText: "MailGate IMAP ready", tlsAvailable: environment.serverTLS != nil && !environment.implicitTLS,
                implicitTLS: environment.implicitTLS, clientIsLoopback: clientIsLoopback,
                allowPlaintext: configuration.allowPlaintext, limits: preLoginLimits,
                errorBudget: configuration.limits.errorBudget,
                maximumBufferedInput: configuration.limits.writeBufferHighWater))
        logger = environment.logger
        logger[metadataKey: "session"] = "\(id)"
        logger[metadataKey: "remote"] = "\(remoteIP?.description ?? "?")"
        logger[metadataKey: "listener"] = "\(environment.configuration.listenerName)"
    }

    private var limits: Limits { environment.configuration.limits }

    // MARK: - Start and end

    func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        logger.info("IMAP session started")
        count("imap.sessions")
        client.readMode = .raw
        client.onEvent = { [self] event in clientEvent(event) }
        client.setIdleTimeout(seconds: limits.idleTimeoutSeconds)
        commandClock.start()
        client.start()
        feedServer(.connected)
    }

    /// Ends the session for a shutdown.
    func shutdown() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !isEnded else { return }
        sendClient("* BYE MailGate is shutting down\r\n")
        client.closeAfterFlushing()
        teardown(reason: "shutting down")
    }

    private var isEnded: Bool { if case .ended = phase { true } else { false } }

    /// No client command is in flight or half-received, so a BYE now cuts nothing short (SIGTERM drain).
    var isQuietForShutdown: Bool {
        inFlight.isEmpty && assembling == nil && upstreamQueue.isEmpty && !awaitingUpstreamContinuation
    }

    private func teardown(reason: String?) {
        guard !isEnded else { return }
        phase = .ended
        commandClock.stop()
        idleTimer?.cancel()
        idleTimer = nil
        switch upstream {
        case .open(let link), .opening(let link, _):
            link.onEvent = nil
            link.logout()
        case .none:
            break
        }
        upstream = .none
        releaseCapSlot()
        flushCounters()
        logger.info("IMAP session ended", metadata: ["reason": "\(reason.map { sanitizeForLog($0) } ?? "closed")"])
        let onEnd = self.onEnd
        self.onEnd = nil
        onEnd?()
    }

    private func releaseCapSlot() {
        if holdsCapSlot, let account {
            environment.sessionCap.release(account)
            holdsCapSlot = false
        }
    }

    /// Says goodbye with `text` and ends.
    private func bye(_ text: String, reason: String) {
        // Inside a forwarded literal no status line can be framed: the end of the stream is the only clear signal.
        if !midResponseToClient { sendClient("* BYE \(text)\r\n") }
        client.closeAfterFlushing()
        teardown(reason: reason)
    }

    // MARK: - Capabilities

    /// Withheld besides what `IMAPCapabilityFilter` removes: mailbox names that would bypass the folder map
    /// (IMAP URLs in CATENATE/URL-PARTIAL, NOTIFY's pushed names, LIST-EXTENDED/LIST-STATUS return options the map
    /// does not rewrite).
    private static let withheld: Set<String> = ["NOTIFY", "CATENATE", "URL-PARTIAL", "LIST-EXTENDED", "LIST-STATUS"]

    /// What the client sees after login: `IMAPCapabilityFilter` (adds SPECIAL-USE: the gateway marks the folders)
    /// minus what would let names bypass the folder map.
    private var postLoginCapabilityList: [Capability] {
        var list = IMAPCapabilityFilter.clientCapabilities(
            fromUpstream: upstreamCapabilities, alsoRemove: Self.withheld.map { Capability($0) })
        // IMAP4rev1 first (m365-protocol.md §5.1; Exchange lists a bare IMAP4 before it).
        list.removeAll { $0 == .imap4rev1 }
        return [.imap4rev1] + list
    }

    private var postLoginCapabilities: String { IMAPCapabilityFilter.wire(postLoginCapabilityList) }

    // MARK: - Client input

    private func clientEvent(_ event: ConnectionEvent) {
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            switch phase {
            case .preLogin, .loggingIn:
                feedServer(.received(bytes))
            default:
                scanner.append(bytes)
                processClient()
            }
            observeCommandLine(bytes)
        case .idleTimeout:
            logger.info("IMAP client idle timeout")
            bye("Autologout; idle for too long", reason: "idle timeout")
        case .closed(let error):
            teardown(reason: error?.description)
        case .writable:
            if upstreamPausedByUs {
                upstreamPausedByUs = false
                currentLink?.resumeReading()
            }
        case .lineTooLong:
            break
        }
    }

    /// Whether client input must wait (login running, upstream not ready for more, too many commands in flight).
    private var clientBlocked: Bool {
        switch phase {
        case .preLogin, .loggingIn, .reconnecting, .ended: return true
        case .idling: break
        case .relaying:
            if assembling == nil && inFlight.count >= limits.imapCommandsInFlight { return true }
            if awaitingJournal { return true }
        }
        if awaitingUpstreamContinuation { return true }
        if let link = currentLink, link.pendingWriteBytes > Self.connectionLimits(limits).writeBufferHighWater {
            return true
        }
        return false
    }

    private func processClient() {
        guard !processingClient else { return }
        processingClient = true
        defer { processingClient = false }
        while !isEnded {
            if clientBlocked {
                pauseClient()
                return
            }
            let event: IMAPStreamScanner.Event?
            do throws(IMAPStreamScanner.ScanError) {
                event = try scanner.next()
            } catch {
                logger.info("IMAP client sent \(error.description)")
                return bye("Command line too long or malformed literal; closing this connection", reason: error.description)
            }
            guard let event else {
                resumeClient()
                return
            }
            switch phase {
            case .relaying:
                relayEvent(event)
            case .idling:
                idleClientEvent(event)
            case .preLogin, .loggingIn, .reconnecting, .ended:
                return
            }
        }
    }

    private func pauseClient() {
        guard !clientPausedByUs else { return }
        clientPausedByUs = true
        client.pauseReading()
    }

    private func resumeClient() {
        guard clientPausedByUs else { return }
        clientPausedByUs = false
        client.resumeReading()
    }

    /// Called whenever something that blocked client input may have changed.
    private func unblockClient() {
        guard !isEnded else { return }
        if !clientBlocked {
            resumeClient()
            // Only when client input is waiting in the scanner: an empty hop per tagged answer costs a Dispatch
            // wake-up on the NOOP path (the profile in the README).
            if scanner.bufferedByteCount > 0 { queue.async { [self] in processClient() } }
        }
    }

    private func protocolError(tag: String, _ text: String) {
        errors += 1
        sendClient("\(tag) BAD \(text)\r\n")
        if errors >= limits.errorBudget {
            bye("Too many protocol errors", reason: "error budget spent")
        }
    }

    // MARK: - Before login

    /// Feeds the pre-login machine and performs what it asks, in order.
    private func feedServer(_ input: IMAPServerSide.Input) {
        guard !isEnded else { return }
        for action in server.handle(input) {
            guard !isEnded else { return }
            switch action {
            case .send(let bytes):
                count(bytesToClient: bytes.count)
                client.write(bytes)
            case .startTLS:
                guard let tls = environment.serverTLS else {
                    client.close()
                    return teardown(reason: "STARTTLS without a certificate")
                }
                client.startServerTLS(context: tls) { [self] error in
                    guard !isEnded else { return }
                    if let error {
                        logger.info("IMAP client TLS handshake failed", metadata: ["error": "\(error)"])
                        client.close()
                        return teardown(reason: "TLS handshake failed")
                    }
                    feedServer(.tlsStarted)
                }
            case .verify(let username, let password, _):
                login(user: username, password: password)
            case .authenticated(_, let leftover):
                phase = .relaying
                commandClock.authenticated()
                client.setIdleTimeout(seconds: limits.imapIdleTimeoutSeconds)
                scanner.append(leftover)
                queue.async { [self] in processClient() }
            case .close:
                client.closeAfterFlushing()
                teardown(reason: "closed before login")
            }
        }
    }

    // MARK: - Login

    private func login(user: String, password: Redacted<String>) {
        phase = .loggingIn(account: nil)
        environment.authenticator.verify(
            email: user, password: password, remoteAddress: remoteIP?.description, on: queue
        ) { [self] outcome in
            guard case .loggingIn = phase else { return }
            switch outcome {
            case .rejected:
                logger.info("IMAP local login failed", metadata: ["user": "\(sanitizeForLog(user, maximumLength: 80))"])
                count("imap.login.failed", account: user.lowercased())
                loginFailed(.authenticationFailed)
            case .busy:
                logger.warning("IMAP login refused: too many logins waiting for the password check")
                count("imap.login.busy", account: user.lowercased())
                loginFailed(.unavailable(reason: "Too many logins are being checked; try again in a moment"))
            case .accepted(let account):
                openUpstream(account: account)
            }
        }
    }

    private func loginFailed(_ failure: IMAPServerSide.LoginFailure) {
        phase = .preLogin
        feedServer(.loginFailed(failure))
    }

    private func openUpstream(account: String) {
        guard let settings = environment.resolver(account) else {
            count("imap.login.failed", account: account)
            return loginFailed(.unavailable(reason: "no upstream IMAP server is configured for \(account)"))
        }
        guard environment.sessionCap.acquire(account) else {
            count("imap.login.failed", account: account)
            logger.warning("IMAP upstream session cap reached", metadata: ["account": "\(account)"])
            return loginFailed(
                .limit(
                    reason:
                        "Too many IMAP sessions for \(account) (at most \(environment.sessionCap.maximum)); close another mail program"))
        }
        self.account = account
        upstreamLoginStarted = DispatchTime.now().uptimeNanoseconds
        accountSettings = settings
        holdsCapSlot = true
        logger[metadataKey: "account"] = "\(account)"
        phase = .loggingIn(account: account)
        startLink(account: account, settings: settings, attempt: 1)
    }

    private var currentLink: IMAPUpstreamLink? {
        switch upstream {
        case .open(let link): link
        case .opening(let link, _): link
        case .none: nil
        }
    }

    private func startLink(account: String, settings: IMAPAccountSettings, attempt: Int) {
        let link = IMAPUpstreamLink(
            account: account,
            settings: IMAPUpstreamSettings(endpoint: settings.endpoint, allowInsecure: settings.allowInsecureUpstream),
            queue: queue, limits: Self.connectionLimits(limits), tlsContexts: environment.tlsContexts)
        upstream = .opening(link, attempt: attempt)
        link.onEvent = { [weak self, weak link] event in
            guard let self, let link else { return }
            upstreamEvent(link, event)
        }
        link.open()
    }

    /// The upstream login did not work out: what the client is told depends on where we are.
    private func upstreamLoginFailed(_ failure: IMAPServerSide.LoginFailure, logText: String) {
        upstream = .none
        count("imap.upstream_errors", account: account)
        switch phase {
        case .loggingIn:
            logger.warning("IMAP upstream login failed", metadata: ["reason": "\(sanitizeForLog(logText))"])
            count("imap.login.failed", account: account)
            releaseCapSlot()
            account = nil
            loginFailed(failure)
        case .reconnecting:
            logger.warning("IMAP upstream reconnect failed", metadata: ["reason": "\(sanitizeForLog(logText))"])
            bye("The Microsoft 365 session expired and MailGate could not open a new one (\(sanitizeForLog(logText, maximumLength: 200))); reconnect later", reason: "reconnect failed")
        default:
            break
        }
    }

    private func upstreamEvent(_ link: IMAPUpstreamLink, _ event: IMAPUpstreamLink.Event) {
        guard !isEnded else { return link.close() }
        switch upstream {
        case .opening(let current, let attempt) where current === link:
            switch event {
            case .needToken:
                fetchToken(for: link, forceRefresh: attempt > 1 || isReconnecting)
            case .ready(let capabilities):
                if case .loggingIn = phase { environment.counters.latency(.imapUpstreamLogin, since: upstreamLoginStarted, account: account) }
                upstream = .open(link)
                upstreamCapabilities = capabilities
                link.setIdleTimeout(seconds: limits.imapIdleTimeoutSeconds)
                upstreamReady()
            case .authenticationFailed(let text):
                logger.info("IMAP upstream refused the token", metadata: ["reply": "\(text)"])
                link.onEvent = nil
                if attempt == 1, let account, let settings = environment.resolver(account) {
                    startLink(account: account, settings: settings, attempt: 2)
                } else {
                    upstreamLoginFailed(
                        .mustReconnect(email: account ?? link.account), logText: "token refused twice: \(text)")
                }
            case .ended(let reason):
                upstreamLoginFailed(
                    .unavailable(reason: "the upstream IMAP server: \(sanitizeForLog(reason ?? "closed", maximumLength: 120))"),
                    logText: reason ?? "closed")
            case .stream, .writable, .burstEnd:
                break
            }
        case .open(let current) where current === link:
            switch event {
            case .stream(let scanned):
                batchingClientOutput = true
                upstreamStream(scanned)
            case .burstEnd:
                batchingClientOutput = false
                flushClientBatch()
            case .writable:
                unblockClient()
            case .ended(let reason):
                flushClientBatch()
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

    private var isReconnecting: Bool { if case .reconnecting = phase { true } else { false } }

    private func fetchToken(for link: IMAPUpstreamLink, forceRefresh: Bool) {
        let credentials = environment.credentials
        let account = link.account
        let rejected = lastAccessToken
        let queue = self.queue
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

    private func tokenArrived(for link: IMAPUpstreamLink, _ result: Result<(user: String, token: Redacted<String>), any Error>) {
        guard case .opening(let current, _) = upstream, current === link, !isEnded else { return }
        switch result {
        case .failure(let error):
            link.onEvent = nil
            link.close()
            if UpstreamOpenFailure.isTemporary(error) {
                upstreamLoginFailed(
                    .unavailable(reason: "getting a token: \(sanitizeForLog(String(describing: error), maximumLength: 120))"),
                    logText: String(describing: error))
            } else {
                upstreamLoginFailed(.mustReconnect(email: account ?? link.account), logText: String(describing: error))
            }
        case .success(let credentials):
            lastAccessToken = credentials.token
            do {
                link.supplyToken(try XOAuth2.rawResponse(user: credentials.user, accessToken: credentials.token))
            } catch {
                link.onEvent = nil
                link.close()
                upstreamLoginFailed(.unavailable(reason: "\(error)"), logText: "\(error)")
            }
        }
    }

    private func upstreamReady() {
        switch phase {
        case .loggingIn where !discoveryDone:
            // Learn the account's folders before the client may use them (plain LIST: Exchange has no
            // LIST-EXTENDED; SPECIAL-USE attributes come on plain LIST anyway, names are the fallback).
            let tag = ownTag()
            discoveryTag = tag
            discoveryDone = true
            writeUpstream([.bytes(Array("\(tag) LIST \"\" \"*\"\r\n".utf8))])
        case .loggingIn(let account):
            logger.info("IMAP login")
            count("imap.login.ok", account: account)
            feedServer(.loginSucceeded(capabilities: postLoginCapabilityList))
        case .reconnecting(let idle):
            logger.info("IMAP upstream reconnected after the token expired")
            count("imap.upstream_reconnects", account: account)
            if let tail = selectedTail {
                // Re-select under our own tag; its untagged responses are swallowed (the client saw them once).
                let tag = ownTag()
                resyncTag = tag
                writeUpstream([.bytes(Array(tag.utf8) + tail)])
            } else {
                resumeAfterReconnect(idle)
            }
        default:
            break
        }
    }

    private func resumeAfterReconnect(_ idle: IdleState?) {
        guard var idle else {
            phase = .relaying
            return unblockClient()
        }
        if idle.doneRequested { return finishIdleForClient(idle) }
        idle.upstreamTag = ownTag()
        idle.confirmed = false
        idle.reissuing = false
        phase = .idling(idle)
        writeUpstream([.bytes(Array("\(idle.upstreamTag) IDLE\r\n".utf8))])
        unblockClient()
    }

    private func ownTag() -> String {
        ownTagCount += 1
        let tag = "MGI\(ownTagCount)"
        ownTagsPending.insert(tag)
        return tag
    }

    // MARK: - Relaying client commands

    private func relayEvent(_ event: IMAPStreamScanner.Event) {
        switch event {
        case .line(let line, let first, let literal):
            if first {
                let tag = IMAPCommandLine.tag(of: line)
                guard tag != "*" else { return protocolError(tag: "*", "Command syntax error") }
                assembling = Assembly(tag: tag, name: Self.commandName(of: line))
            }
            guard var command = assembling else { return }
            if command.refusal != nil {
                if literal == nil { return finishRefused(command) }
                assembling = command
                return
            }
            if command.streaming {
                writeUpstream(upstreamForm(of: line, literal: literal))
                count(bytesToUpstream: line.count)
            } else {
                command.raw += line
                command.upstream += upstreamForm(of: line, literal: literal)
            }
            if let literal {
                let bound = command.name == "APPEND" ? limits.imapAppendLiteral : Self.inlineLiteralBound
                let allowedNonSync = upstreamHasLiteralPlus || literal.count <= 4_096
                var lockRefusal: String?
                if command.name == "APPEND", !command.streaming, let head = IMAPCommandLine.parse(command.raw),
                    head.endsInLiteral
                {
                    lockRefusal = lockDecision(head)
                }
                if literal.count > bound || (literal.nonSynchronizing && !allowedNonSync) || lockRefusal != nil {
                    let text =
                        lockRefusal.map { "[CANNOT] \($0)" }
                        ?? (literal.count > bound
                            ? "[TOOBIG] The literal of \(literal.count) octets is larger than MailGate accepts (\(bound))"
                            : "Non-synchronizing literals over 4096 octets need LITERAL+")
                    if command.streaming {
                        return bye("Literal too large in the middle of a command", reason: "literal too large")
                    }
                    if literal.nonSynchronizing {
                        command.refusal = text
                        assembling = command
                    } else {
                        assembling = nil
                        scanner.refuseLiteral()
                        sendClient("\(command.tag) NO \(text)\r\n")
                    }
                    return
                }
                let holdForDedup =
                    command.name == "APPEND" && literal.count <= Self.dedupHoldBound && !command.streaming
                    && environment.journal != nil && appendTargetsSent(command.raw)
                if literal.count > Self.inlineLiteralBound && !command.streaming && !holdForDedup {
                    if let map = folderMap, let parsed = IMAPCommandLine.parse(command.raw), parsed.endsInLiteral {
                        var entry = InFlight(tag: command.tag, name: command.name)
                        applyFolderMap(map, to: &command, parsed: parsed, entry: &entry)
                    }
                    command.streaming = true
                    command.raw = []
                    inFlight.append(InFlight(tag: command.tag, name: command.name, selectTail: nil))
                    count(bytesToUpstream: command.upstream.reduce(0) { if case .bytes(let b) = $1 { $0 + b.count } else { $0 } })
                    writeUpstream(command.upstream)
                    command.upstream = []
                }
                if !literal.nonSynchronizing { sendClient("+ Ready for literal data\r\n") }
                assembling = command
                return
            }
            assembling = nil
            commandComplete(command)
        case .literalBytes(let bytes):
            guard var command = assembling else { return }
            if command.refusal != nil { return }
            if command.streaming {
                count(bytesToUpstream: bytes.count)
                writeUpstream([.bytes(bytes)])
            } else {
                command.raw += bytes
                command.upstream.append(.bytes(bytes))
                assembling = command
            }
        case .literalEnd:
            break
        }
    }

    private func finishRefused(_ command: Assembly) {
        assembling = nil
        sendClient("\(command.tag) NO \(command.refusal ?? "Refused")\r\n")
    }

    private var upstreamHasLiteralPlus: Bool { upstreamCapabilities.contains(.literalPlus) }

    /// The line as it goes upstream: a synchronizing literal becomes `{n+}` when the upstream has LITERAL+ (the
    /// client already got our `+`), else the line is followed by a wait for the upstream's `+`.
    private func upstreamForm(of line: [UInt8], literal: IMAPStreamScanner.Literal?) -> [Segment] {
        guard let literal else { return [.bytes(line)] }
        var end = line.count
        if end > 0, line[end - 1] == 0x0A { end -= 1 }
        if end > 0, line[end - 1] == 0x0D { end -= 1 }
        let closing = end - 1
        if upstreamHasLiteralPlus {
            if literal.nonSynchronizing { return [.bytes(line)] }
            var rewritten = Array(line[..<closing])
            rewritten.append(UInt8(ascii: "+"))
            rewritten += line[closing...]
            return [.bytes(rewritten)]
        }
        guard literal.nonSynchronizing else { return [.bytes(line), .awaitContinuation] }
        var rewritten = Array(line[..<(closing - 1)])
        rewritten += line[closing...]
        return [.bytes(rewritten), .awaitContinuation]
    }

    /// The command name (upper-cased, `UID` folded in as `UID FETCH`) from a command's first line.
    static func commandName(of line: [UInt8]) -> String {
        var words: [String] = []
        var current: [UInt8] = []
        for byte in line {
            if byte == 0x20 || byte == 0x0D || byte == 0x0A {
                if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
                current = []
                if words.count == 3 || byte != 0x20 { break }
            } else {
                current.append(byte)
            }
        }
        guard words.count >= 2 else { return "" }
        let name = words[1].uppercased()
        if name == "UID", words.count >= 3 { return "UID " + words[2].uppercased() }
        return name
    }

    private func commandComplete(_ original: Assembly) {
        commandsUncounted += 1
        if commandsUncounted >= Self.flushEvery { flushCounters() }
        if original.streaming { return }
        var command = original
        var entry = InFlight(tag: command.tag, name: command.name)
        let parsed = IMAPCommandLine.parse(command.raw)
        if let parsed, command.name != "APPEND", let refusal = lockDecision(parsed) {
            return sendClient("\(command.tag) NO [CANNOT] \(refusal)\r\n")
        }
        if command.name == "STATUS", let parsed { entry.statusClientName = Self.bytes(of: parsed.arguments.first) }
        if let map = folderMap, let parsed { applyFolderMap(map, to: &command, parsed: parsed, entry: &entry) }
        if command.name == "APPEND", let parsed, let journal = environment.journal, let account,
            appendTargetsSent(command.raw), let messageID = Self.appendedMessageID(parsed)
        {
            return startAppendDedup(command, entry, journal: journal, account: account, messageID: messageID)
        }
        if command.name == "CLOSE", closeBecomesUnselect() {
            // CLOSE expunges; in Sent it must not: UNSELECT leaves the mailbox the same way without expunging.
            command.raw = Array("\(command.tag) UNSELECT\r\n".utf8)
            command.upstream = [.bytes(command.raw)]
            entry.name = "UNSELECT"
        }
        switch command.name {
        case "LOGOUT":
            clientLoggedOut = true
        case "IDLE":
            let state = IdleState(clientTag: command.tag, upstreamTag: command.tag)
            phase = .idling(state)
            sendUpstream(command)
            return
        case "SELECT", "EXAMINE":
            entry.selectTail = Self.tail(afterTag: command)
            if let rewritten = IMAPCommandLine.parse(command.raw), let name = Self.bytes(of: rewritten.arguments.first) {
                entry.mailbox = MailboxName(name)
            }
        default:
            break
        }
        entry.inbound = DispatchTime.now().uptimeNanoseconds - entry.received
        inFlight.append(entry)
        sendUpstream(command)
    }

    // MARK: - APPEND to Sent

    /// Whether an APPEND (whole or its head) targets the server's Sent folder itself.
    private func appendTargetsSent(_ raw: [UInt8]) -> Bool {
        guard let sent = serverFolders[.sent], let parsed = IMAPCommandLine.parse(raw),
            let name = Self.bytes(of: parsed.arguments.first)
        else { return false }
        return serverSideName(MailboxName(name)) == sent
    }

    /// The Message-ID of the one message of a whole APPEND (not MULTIAPPEND).
    static func appendedMessageID(_ command: IMAPCommandLine) -> String? {
        let messages = command.arguments.dropFirst().compactMap { token -> [UInt8]? in
            if case .string(let bytes) = token, bytes.count > 64 || bytes.contains(0x0A) { return bytes }
            return nil
        }
        guard messages.count == 1 else { return nil }
        return MessageID.extract(fromHeaderOf: messages[0])
    }

    /// Point 6: looks the Message-ID up in the journal and lets Policy's `AppendDedup` decide; client input waits
    /// meanwhile (order is kept). Every path ends in `finishDedup` or an OK without storing.
    private func startAppendDedup(
        _ command: Assembly, _ entry: InFlight, journal: any IMAPSentJournal, account: String, messageID: String
    ) {
        awaitingJournal = true
        redecideDedup(command, entry, journal: journal, account: account, messageID: messageID, round: 1)
    }

    private func redecideDedup(
        _ command: Assembly, _ entry: InFlight, journal: any IMAPSentJournal, account: String, messageID: String,
        round: Int
    ) {
        let window = limits.imapAppendDedupWindowSeconds
        let since = Date().addingTimeInterval(-window)
        let mode = accountSettings?.sentCopy ?? .auto
        let pending = UncheckedBox((command, entry))
        let queue = self.queue
        DispatchQueue.global(qos: .userInitiated).async {
            let send = IMAPJournalLookup.send(journal, account: account, messageID: messageID, since: since)
            let decision = AppendDedup.decide(
                toSentFolder: true, messageID: messageID, journal: send, mode: mode, now: Date(), window: window)
            queue.async { [self] in dedupStep(pending.value.0, pending.value.1, decision, messageID: messageID, round: round) }
        }
    }

    private func dedupStep(_ command: Assembly, _ entry: InFlight, _ decision: AppendDedupDecision, messageID: String, round: Int) {
        guard !isEnded, let account else { return }
        let pending = UncheckedBox((command, entry))
        let queue = self.queue
        let id = sanitizeForLog(messageID)
        switch decision {
        case .forward:
            finishDedup(forward: command, entry)
        case .forwardCancellingQueuedCopy:
            guard let canceller = environment.sentCopyCanceller, let journal = environment.journal else {
                // Nothing to cancel with: wait (bounded) for the queued copy's own verdict, then decide again.
                return waitForQueuedCopy(command, entry, messageID: messageID, round: round)
            }
            DispatchQueue.global(qos: .userInitiated).async {
                let cancelled = canceller.cancelQueuedCopy(accountEmail: account, messageID: messageID)
                queue.async { [self] in
                    guard !isEnded else { return }
                    if cancelled || round >= 3 {
                        logger.info(
                            "IMAP APPEND to Sent filed by the client; the gateway's queued copy \(cancelled ? "was cancelled" : "could not be cancelled")",
                            metadata: ["messageID": "\(id)"])
                        finishDedup(forward: pending.value.0, pending.value.1)
                    } else {
                        // The copy was made or decided meanwhile: decide again on what the journal says now.
                        redecideDedup(
                            pending.value.0, pending.value.1, journal: journal, account: account, messageID: messageID,
                            round: round + 1)
                    }
                }
            }
        case .searchSent(let wanted, let cancel):
            let fallback: AppendDedupDecision = cancel ? .forwardCancellingQueuedCopy : .forward
            guard let folder = serverFolders[.sent], let settings = accountSettings, environment.sessionCap.acquire(account)
            else {
                logger.info("IMAP APPEND to Sent: Sent cannot be searched now (no folder or no free upstream session)")
                return dedupStep(command, entry, fallback, messageID: messageID, round: round)
            }
            let search = environment.sentFolderSearch
            let cap = environment.sessionCap
            Task {
                let result: (uids: [UInt32], uidValidity: UInt32?)?
                do {
                    result = try await search.search(account: account, settings: settings, folder: folder, messageID: wanted)
                } catch {
                    result = nil
                }
                cap.release(account)
                let delivered = UncheckedBox(result)
                queue.async { [self] in
                    guard let found = delivered.value else {
                        logger.warning("IMAP APPEND to Sent: the search of Sent failed; the APPEND goes through")
                        return dedupStep(pending.value.0, pending.value.1, fallback, messageID: messageID, round: round)
                    }
                    dedupStep(
                        pending.value.0, pending.value.1,
                        AppendDedup.afterSearch(foundUIDs: found.uids, uidValidity: found.uidValidity, cancelQueuedCopy: cancel),
                        messageID: messageID, round: round)
                }
            }
        case .alreadyFiled(let existing, let cancel):
            if cancel, let canceller = environment.sentCopyCanceller {
                DispatchQueue.global(qos: .userInitiated).async {
                    _ = canceller.cancelQueuedCopy(accountEmail: account, messageID: messageID)
                }
            }
            logger.info("IMAP APPEND to Sent de-duplicated", metadata: ["messageID": "\(id)"])
            count("imap.append_deduplicated", account: account)
            sendClient(
                IMAPAppendDedupAnswer.line(
                    tag: command.tag, existing: existing, uidPlus: postLoginCapabilityList.contains(.uidPlus)))
            awaitingJournal = false
            unblockClient()
        }
    }

    /// Without a canceller: polls the journal until the queued copy is decided (made, or skipped because it found
    /// the message), at most `queuedCopyWait`, then decides once more; still queued then, the APPEND goes through.
    private func waitForQueuedCopy(_ command: Assembly, _ entry: InFlight, messageID: String, round: Int) {
        guard round == 1, let journal = environment.journal, let account else { return finishDedup(forward: command, entry) }
        let since = Date().addingTimeInterval(-limits.imapAppendDedupWindowSeconds)
        let deadline = DispatchTime.now() + Self.queuedCopyWait
        let pending = UncheckedBox((command, entry))
        let queue = self.queue
        @Sendable func ask() {
            let state = journal.copyState(account: account, messageID: messageID, since: since)
            if state == .queued, DispatchTime.now() < deadline {
                DispatchQueue.global(qos: .userInitiated).asyncAfter(deadline: .now() + 0.25) { ask() }
                return
            }
            queue.async { [self] in
                guard !isEnded else { return }
                redecideDedup(pending.value.0, pending.value.1, journal: journal, account: account, messageID: messageID, round: 2)
            }
        }
        DispatchQueue.global(qos: .userInitiated).async { ask() }
    }

    /// The APPEND goes upstream after all.
    private func finishDedup(forward command: Assembly, _ entry: InFlight) {
        guard !isEnded else { return }
        awaitingJournal = false
        inFlight.append(entry)
        sendUpstream(command)
        unblockClient()
    }

    // MARK: - Lock after send

    private var lockAfterSend: Bool {
        accountSettings?.lockAfterSend ?? false
    }

    /// Whether a server-side name is Sent or one of its children.
    private func isProtected(_ name: MailboxName) -> Bool {
        folderMap?.isSentOrChild(serverName: name) ?? false
    }

    /// The sentence of a refusal under `lock_after_send` (imap-policy's `SentLock`), or nil when the command may go.
    private func lockDecision(_ command: IMAPCommandLine) -> String? {
        guard let map = folderMap as? FolderMap, lockAfterSend else { return nil }
        let lock = SentLock(folderMap: map, enabled: true)
        guard case .refuse(let refusal) = lock.decide(summary(of: command), selected: selectedMailbox, readOnly: selectedReadOnly)
        else { return nil }
        logger.info(
            "IMAP lock-after-send refusal",
            metadata: [
                "command": "\(command.uid ? "UID " : "")\(command.name)", "reason": "\(refusal.rawValue)",
                "tag": "\(sanitizeForLog(command.tag, maximumLength: 40))",
            ])
        count("imap.lock_refusals", account: account)
        return refusal.sentence
    }

    /// Whether the lock turns this CLOSE into UNSELECT (Sent selected read-write).
    private func closeBecomesUnselect() -> Bool {
        guard let map = folderMap as? FolderMap, lockAfterSend else { return false }
        return SentLock(folderMap: map, enabled: true).decide(.close, selected: selectedMailbox, readOnly: selectedReadOnly)
            == .rewriteCloseToUnselect
    }

    /// The command as the lock rules see it, mailbox names on the server's side.
    private func summary(of command: IMAPCommandLine) -> LockedCommand {
        let arguments = command.arguments
        func server(_ index: Int) -> MailboxName? {
            guard index < arguments.count, let bytes = Self.bytes(of: arguments[index]) else { return nil }
            return serverSideName(MailboxName(bytes))
        }
        switch command.name {
        case "STORE":
            guard let index = arguments.firstIndex(where: { token in
                guard case .atom(let text) = token else { return false }
                return ["FLAGS", "+FLAGS", "-FLAGS"].contains(text.uppercased().replacingOccurrences(of: ".SILENT", with: ""))
            }), case .atom(let item) = arguments[index] else { return .other }
            let mode: StoreMode = item.hasPrefix("+") ? .add : item.hasPrefix("-") ? .remove : .replace
            return .store(uid: command.uid, mode: mode, flags: Self.flagList(arguments[(index + 1)...]).map(Flag.init))
        case "EXPUNGE": return command.uid ? .uidExpunge : .expunge
        case "MOVE": return server(1).map { .move(uid: command.uid, target: $0) } ?? .other
        case "COPY": return server(1).map { .copy(uid: command.uid, target: $0) } ?? .other
        case "DELETE": return server(0).map { .delete($0) } ?? .other
        case "RENAME":
            guard let from = server(0), let to = server(1) else { return .other }
            return .rename(from: from, to: to)
        case "APPEND":
            guard let mailbox = server(0) else { return .other }
            let flags = arguments.count > 1 && arguments[1] == .listOpen ? Self.flagList(arguments[1...]) : []
            return .append(mailbox: mailbox, flags: flags.map(Flag.init))
        case "CLOSE": return .close
        default: return .other
        }
    }

    private func serverSideName(_ client: MailboxName) -> MailboxName {
        folderMap?.serverName(forClient: client) ?? client
    }

    /// The flags (upper-cased) of a parenthesised list or a single flag at the start of `tokens`.
    static func flagList(_ tokens: ArraySlice<IMAPCommandLine.Token>) -> [String] {
        guard let first = tokens.first else { return [] }
        if case .atom(let single) = first { return [single.uppercased()] }
        guard case .listOpen = first else { return [] }
        var flags: [String] = []
        for token in tokens.dropFirst() {
            if case .atom(let flag) = token { flags.append(flag.uppercased()) } else { break }
        }
        return flags
    }

    private static func bytes(of token: IMAPCommandLine.Token?) -> [UInt8]? {
        switch token {
        case .atom(let text): Array(text.utf8)
        case .string(let bytes): bytes
        default: nil
        }
    }

    /// Client names → server names in the command's mailbox arguments; LIST/LSUB patterns with wildcards go
    /// upstream as `"" "*"` and are matched here against the client-side names (the server does not know them).
    private func applyFolderMap(
        _ map: any IMAPFolderTranslation, to command: inout Assembly, parsed: IMAPCommandLine, entry: inout InFlight
    ) {
        var replacements: [Int: [UInt8]] = [:]
        if parsed.name == "LIST" || parsed.name == "LSUB" {
            var arguments = parsed.arguments
            var extended = false
            if case .listOpen? = arguments.first {
                // LIST-EXTENDED selection options (a client that saw SPECIAL-USE): only SPECIAL-USE is understood;
                // the upstream gets a plain LIST (Exchange has no LIST-EXTENDED).
                guard let close = arguments.firstIndex(of: .listClose) else { return }
                let options = arguments[1..<close].compactMap { IMAPCommandLine.text($0)?.uppercased() }
                guard options.allSatisfy({ $0 == "SPECIAL-USE" }) else { return }
                entry.specialUseOnly = !options.isEmpty
                arguments.removeSubrange(0...close)
                extended = true
            }
            if arguments.count > 2 {
                // RETURN (SPECIAL-USE): the attributes are on every line anyway.
                guard case .atom(let word) = arguments[2], word.uppercased() == "RETURN" else { return }
                extended = true
            }
            guard arguments.count >= 2, let reference = Self.bytes(of: arguments[0]),
                let pattern = Self.bytes(of: arguments[1])
            else { return }
            if parsed.name == "LIST" { entry.listClientArguments = (reference, pattern) }
            if extended {
                let tag = command.tag
                command.raw = Array("\(tag) \(parsed.name) \"\" \"*\"\r\n".utf8)
                command.upstream = [.bytes(command.raw)]
                entry.listPattern = reference + pattern
                return
            }
            let full = reference + pattern
            if pattern.isEmpty {
                return  // LIST "" "": the delimiter query.
            } else if IMAPFolderRewriting.hasWildcards(full) {
                entry.listPattern = full
                replacements[0] = Array("\"\"".utf8)
                replacements[1] = Array("\"*\"".utf8)
            } else {
                let server = map.serverName(forClient: MailboxName(full)).bytes
                guard server != full else { return }
                replacements[0] = Array("\"\"".utf8)
                replacements[1] = IMAPCommandLine.encodeAstring(server)
            }
        } else {
            for index in IMAPFolderRewriting.mailboxArguments(of: parsed.name) where index < parsed.arguments.count {
                guard let name = Self.bytes(of: parsed.arguments[index]) else { continue }
                let server = map.serverName(forClient: MailboxName(name)).bytes
                if server != name { replacements[index] = IMAPCommandLine.encodeAstring(server) }
            }
        }
        guard !replacements.isEmpty else { return }
        command.raw = parsed.replacing(replacements, in: command.raw)
        command.upstream = segments(fromClientBytes: command.raw)
    }

    /// A client-form command (literals `{n}` or `{n+}`) cut into what goes upstream.
    private func segments(fromClientBytes bytes: [UInt8]) -> [Segment] {
        var scanner = IMAPStreamScanner(maximumLine: bytes.count + 1)
        scanner.append(bytes)
        var out: [Segment] = []
        while let event = try? scanner.next() {
            switch event {
            case .line(let line, _, let literal): out += upstreamForm(of: line, literal: literal)
            case .literalBytes(let chunk): out.append(.bytes(chunk))
            case .literalEnd: break
            }
        }
        return out
    }

    /// The upstream bytes of a small command without its tag (for re-selecting under the gateway's own tag).
    private static func tail(afterTag command: Assembly) -> [UInt8]? {
        var bytes: [UInt8] = []
        for segment in command.upstream {
            guard case .bytes(let chunk) = segment else { return nil }
            bytes += chunk
        }
        guard let space = bytes.firstIndex(of: 0x20) else { return nil }
        return Array(bytes[space...])
    }

    private func sendUpstream(_ command: Assembly) {
        var total = 0
        for case .bytes(let bytes) in command.upstream { total += bytes.count }
        count(bytesToUpstream: total)
        writeUpstream(command.upstream)
    }

    private func writeUpstream(_ segments: [Segment]) {
        upstreamQueue += segments
        flushUpstreamQueue()
    }

    private func flushUpstreamQueue() {
        guard let link = currentLink else { return }
        while !awaitingUpstreamContinuation, !upstreamQueue.isEmpty {
            switch upstreamQueue.removeFirst() {
            case .bytes(let bytes): link.write(bytes)
            case .awaitContinuation: awaitingUpstreamContinuation = true
            }
        }
    }

    // MARK: - IDLE

    private func idleClientEvent(_ event: IMAPStreamScanner.Event) {
        guard case .idling(var idle) = phase else { return }
        guard case .line(let line, _, let literal) = event else { return }
        if literal != nil {
            scanner.refuseLiteral()
        }
        let word = line.filter { $0 != 0x0D && $0 != 0x0A && $0 != 0x20 }
        if String(decoding: word, as: UTF8.self).uppercased() != "DONE" {
            errors += 1
            sendClient("* BAD Expected DONE to end IDLE\r\n")
        }
        guard !idle.doneRequested else { return }
        idle.doneRequested = true
        phase = .idling(idle)
        if idle.confirmed && !idle.reissuing {
            writeUpstream([.bytes(Array("DONE\r\n".utf8))])
        }
    }

    private func startIdleTimer() {
        idleTimer?.cancel()
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = environment.configuration.idleReissueSeconds
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.reissueIdle() }
        timer.resume()
        idleTimer = timer
    }

    /// Exchange sends no keepalive during IDLE and long IDLEs die silently: end it upstream and start it again
    /// under our own tag; the client sees nothing.
    private func reissueIdle() {
        guard case .idling(var idle) = phase, idle.confirmed, !idle.doneRequested, !idle.reissuing else { return }
        idle.reissuing = true
        phase = .idling(idle)
        writeUpstream([.bytes(Array("DONE\r\n".utf8))])
    }

    private func finishIdleForClient(_ idle: IdleState) {
        idleTimer?.cancel()
        idleTimer = nil
        phase = .relaying
        sendClient("\(idle.clientTag) OK IDLE completed\r\n")
        unblockClient()
    }

    // MARK: - Upstream responses

    private func upstreamStream(_ event: IMAPStreamScanner.Event) {
        switch event {
        case .line(let line, let first, let literal):
            if first {
                collected = []
                responseDisposition = startOfResponse(line)
                if isEnded { return }
            }
            switch responseDisposition {
            case .forward:
                forwardToClient(line)
                midResponseToClient = literal != nil
            case .swallow: break
            case .collect:
                collected += line
                if literal == nil {
                    let whole = collected
                    collected = []
                    collectedResponse(whole)
                } else {
                    checkCollectBound()
                }
            }
        case .literalBytes(let bytes):
            switch responseDisposition {
            case .forward:
                forwardToClient(bytes)
                midResponseToClient = true
            case .swallow: break
            case .collect:
                collected += bytes
                checkCollectBound()
            }
        case .literalEnd:
            break
        }
    }

    /// A response too large to hold goes out unchanged (only small LIST/LSUB/STATUS lines are rewritten).
    private func checkCollectBound() {
        guard collected.count > Self.collectBound else { return }
        if discoveryTag == nil { forwardToClient(collected) }
        collected = []
        responseDisposition = discoveryTag == nil ? .forward : .swallow
    }

    /// A whole collected response.
    private func collectedResponse(_ bytes: [UInt8]) {
        let parsed = try? IMAPResponseParser(limits: IMAPLimits(limits: limits)).parseResponse(bytes)
        if discoveryTag != nil, case .untagged(.list(let info))? = parsed?.response {
            discovered.append(info)
            return
        }
        guard let map = folderMap else { return forwardToClient(bytes) }
        switch parsed?.response {
        case .untagged(.list(let info))?:
            clientListLine(info, keyword: "LIST", map: map)
        case .untagged(.lsub(let info))?:
            clientListLine(info, keyword: "LSUB", map: map)
        default:
            // STATUS (the parser keeps it raw): `* STATUS name (…)`, the name mapped back.
            if let line = IMAPCommandLine.parse(bytes), line.name == "STATUS", let name = Self.bytes(of: line.arguments.first) {
                let client = statusEcho(forServer: name) ?? map.clientName(forServer: MailboxName(name)).bytes
                if client != name {
                    return forwardToClient(line.replacing([0: IMAPCommandLine.encodeAstring(client)], in: bytes))
                }
            }
            forwardToClient(bytes)
        }
    }

    private func clientListLine(_ info: MailboxInfo, keyword: String, map: any IMAPFolderTranslation) {
        guard let view = map.clientView(of: info) else { return }
        let request = inFlight.first(where: { $0.name == keyword })
        let pattern = request?.listPattern
        if request?.specialUseOnly == true {
            let special: [MailboxAttribute] = [.sent, .trash, .junk, .drafts, .archive, .all, .flagged]
            guard view.attributes.contains(where: special.contains) else { return }
        }
        if let pattern,
            !IMAPFolderRewriting.matches(view.name.bytes, pattern: pattern, delimiter: view.path.pathSeparator)
        {
            return
        }
        if keyword == "LIST", let index = inFlight.firstIndex(where: { $0.name == keyword }) {
            inFlight[index].listedNames.insert(view.name)
        }
        forwardToClient(IMAPFolderRewriting.encodeList(view, keyword: keyword))
    }

    /// The client's own spelling of the mailbox a `* STATUS` answers (RFC 3501 §7.2.4 names the mailbox the
    /// client asked about; `sent`, `Sent` and `Sent Items` all reach Exchange's `Sent Items`).
    private func statusEcho(forServer name: [UInt8]) -> [UInt8]? {
        let asked = inFlight.compactMap(\.statusClientName)
        let server = MailboxName(name)
        if let exact = asked.first(where: { client in
            let mapped = serverSideName(MailboxName(client))
            return mapped == server || (mapped.isInbox && server.isInbox)
        }) {
            return exact
        }
        return asked.count == 1 ? asked[0] : nil
    }

    /// Before a LIST's tagged OK: the mapped folders its pattern matches that the upstream did not list.
    private func sendSynthesizedListItems(_ done: InFlight) {
        guard let map = folderMap as? FolderMap, let arguments = done.listClientArguments else { return }
        let missing = map.synthesizedListItems(
            reference: MailboxName(arguments.reference), pattern: MailboxName(arguments.pattern),
            listed: done.listedNames, specialUseOnly: done.specialUseOnly)
        for info in missing { forwardToClient(IMAPFolderRewriting.encodeList(info, keyword: "LIST")) }
    }

    private func finishDiscovery(ok: Bool) {
        guard case .loggingIn = phase else { return }
        let settings = accountSettings
        let map = FolderMap(
            configuration: FolderMapConfiguration(
                sentFolder: settings?.sentFolder, trashFolder: settings?.trashFolder, spamFolder: settings?.spamFolder,
                clientSentName: settings?.clientSentName ?? "Sent", clientTrashName: settings?.clientTrashName ?? "Trash",
                clientJunkName: settings?.clientJunkName ?? "Junk", showSentFolder: settings?.showSentFolder ?? true),
            upstreamList: discovered)
        for mapping in map.mappings { serverFolders[mapping.role.specialUse] = mapping.serverName }
        hierarchyDelimiter = map.delimiter
        if !map.mappings.isEmpty { folderMap = map }
        if !ok { logger.warning("IMAP folder discovery failed; folders are not mapped for this session") }
        logger.debug(
            "IMAP folders", metadata: ["folders": "\(serverFolders.map { "\($0.key)=\($0.value)" }.sorted())"])
        discovered = []
        upstreamReady()
    }

    private func forwardToClient(_ bytes: [UInt8]) {
        count(bytesToClient: bytes.count)
        if batchingClientOutput && bytes.count < Self.clientBatchBound {
            // Small pieces of one upstream read (`)` CRLF, the next `* n FETCH … {size}`, untagged lines before a
            // tagged OK) go out together at `.burstEnd`: one send and one segment instead of one per line.
            clientBatch += bytes
            if clientBatch.count >= Self.clientBatchBound { flushClientBatch() }
            return
        }
        flushClientBatch()
        writeToClient(bytes)
    }

    /// What `forwardToClient` gathered during an upstream burst, written now (before anything else goes out).
    private func flushClientBatch() {
        guard !clientBatch.isEmpty else { return }
        let bytes = clientBatch
        clientBatch = []
        writeToClient(bytes)
    }

    private func writeToClient(_ bytes: [UInt8]) {
        clientWrites.add(1, ordering: .relaxed)
        client.write(bytes)
        let pending = client.pendingWriteBytes
        peakClientPendingBytes = max(peakClientPendingBytes, pending)
        if pending > client.limits.writeBufferHighWater, !upstreamPausedByUs {
            upstreamPausedByUs = true
            currentLink?.pauseReading()
        }
    }

    /// Looks at the first line of an upstream response and decides what happens to it.
    private func startOfResponse(_ line: [UInt8]) -> ResponseDisposition {
        let arrived = DispatchTime.now().uptimeNanoseconds
        if line.first == UInt8(ascii: "+") { return continuation() }
        let words = Self.firstWords(line, count: 3)
        guard words.count >= 2 else { return .forward }
        if words[0] == "*" {
            if discoveryTag != nil, words[1].uppercased() == "LIST" { return .collect }
            if folderMap != nil, !isReconnecting, ["LIST", "LSUB", "STATUS"].contains(words[1].uppercased()) {
                return .collect
            }
            if words[1].uppercased() == "CAPABILITY", !isReconnecting {
                // The client sees the filtered list, also when it asks again after login.
                let listed = String(decoding: line, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\n" })
                upstreamCapabilities = listed.dropFirst(2).map { Capability(String($0)) }
                sendClient("* CAPABILITY \(postLoginCapabilities)\r\n")
                return .swallow
            }
            if words[1].uppercased() == "BYE" {
                let text = String(decoding: line, as: UTF8.self)
                if text.contains("AccessTokenExpired") { return accessTokenExpired() }
                if !clientLoggedOut && !isReconnecting { upstreamSaidBye = true }
            }
            return isReconnecting ? .swallow : .forward
        }
        let tag = words[0]
        let status = words[1].uppercased()
        if ownTagsPending.contains(tag) {
            ownTagsPending.remove(tag)
            ownTaggedCompleted(tag: tag, status: status)
            return .swallow
        }
        if case .idling(let idle) = phase, tag == idle.clientTag {
            // The client's own IDLE completed upstream (DONE sent for it).
            if idle.reissuing {
                reissueAfterCompletion(idle)
                return .swallow
            }
            idleTimer?.cancel()
            idleTimer = nil
            phase = .relaying
            unblockClient()
            return .forward
        }
        guard let index = inFlight.firstIndex(where: { $0.tag == tag }) else { return .forward }
        let done = inFlight.remove(at: index)
        defer { if let inbound = done.inbound { environment.counters.latency(.imapAdded, nanoseconds: inbound + DispatchTime.now().uptimeNanoseconds - arrived, account: account) } }
        switch (done.name, status) {
        case ("SELECT", "OK"), ("EXAMINE", "OK"):
            selectedTail = done.selectTail
            selectedMailbox = done.mailbox
            selectedReadOnly = done.name == "EXAMINE"
        case ("SELECT", _), ("EXAMINE", _), ("CLOSE", "OK"), ("UNSELECT", "OK"):
            selectedTail = nil
            selectedMailbox = nil
        case ("LIST", "OK"):
            sendSynthesizedListItems(done)
        case ("LOGOUT", _):
            // The upstream session is over: its slot is free before the client hears the OK (and may log in again).
            releaseCapSlot()
            queue.async { [self] in
                client.closeAfterFlushing()
                teardown(reason: "logout")
            }
        default:
            break
        }
        unblockClient()
        return .forward
    }

    private func continuation() -> ResponseDisposition {
        if awaitingUpstreamContinuation {
            awaitingUpstreamContinuation = false
            flushUpstreamQueue()
            unblockClient()
            return .swallow
        }
        if case .idling(var idle) = phase {
            guard !idle.confirmed else { return .swallow }
            idle.confirmed = true
            let notify = !idle.clientNotified
            idle.clientNotified = true
            phase = .idling(idle)
            startIdleTimer()
            if idle.doneRequested {
                writeUpstream([.bytes(Array("DONE\r\n".utf8))])
            }
            return notify ? .forward : .swallow
        }
        return .forward
    }

    private func reissueAfterCompletion(_ old: IdleState) {
        var idle = old
        if idle.doneRequested {
            return finishIdleForClient(idle)
        }
        idle.reissuing = false
        idle.confirmed = false
        idle.upstreamTag = ownTag()
        phase = .idling(idle)
        writeUpstream([.bytes(Array("\(idle.upstreamTag) IDLE\r\n".utf8))])
    }

    /// A response to one of the gateway's own commands (re-SELECT, re-issued IDLE).
    private func ownTaggedCompleted(tag: String, status: String) {
        if tag == discoveryTag {
            discoveryTag = nil
            finishDiscovery(ok: status == "OK")
            return
        }
        if tag == resyncTag {
            resyncTag = nil
            guard status == "OK" else {
                return bye("The mailbox could not be selected again after the Microsoft 365 session was renewed; reconnect", reason: "re-select failed")
            }
            if case .reconnecting(let idle) = phase { resumeAfterReconnect(idle) }
            return
        }
        guard case .idling(let idle) = phase, tag == idle.upstreamTag else { return }
        if idle.reissuing {
            reissueAfterCompletion(idle)
        } else if idle.doneRequested {
            finishIdleForClient(idle)
        }
    }

    private static func firstWords(_ line: [UInt8], count: Int) -> [String] {
        var words: [String] = []
        var current: [UInt8] = []
        for byte in line.prefix(200) {
            if byte == 0x20 || byte == 0x0D || byte == 0x0A {
                if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
                current = []
                if words.count == count || byte != 0x20 { break }
            } else {
                current.append(byte)
            }
        }
        return words
    }

    /// `* BYE Session invalidated - AccessTokenExpired` (m365-protocol.md §2.8): between commands or in IDLE the
    /// gateway opens a fresh upstream and re-selects; with a command in flight the client is told why it ends.
    private func accessTokenExpired() -> ResponseDisposition {
        logger.info("IMAP upstream session ended: access token expired")
        let quiet = inFlight.isEmpty && assembling == nil && upstreamQueue.isEmpty && !awaitingUpstreamContinuation
        var idle: IdleState?
        switch phase {
        case .relaying where quiet:
            idle = nil
        case .idling(let state) where quiet:
            idle = state
        default:
            bye(
                "Session invalidated - AccessTokenExpired: the Microsoft 365 session expired during a command; reconnect",
                reason: "access token expired during a command")
            return .swallow
        }
        guard let account, let settings = environment.resolver(account), let link = currentLink else {
            bye("Session invalidated - AccessTokenExpired; reconnect", reason: "access token expired")
            return .swallow
        }
        link.onEvent = nil
        link.close()
        idleTimer?.cancel()
        idleTimer = nil
        ownTagsPending = []
        phase = .reconnecting(idle: idle)
        startLink(account: account, settings: settings, attempt: 1)
        return .swallow
    }

    private func upstreamLost(reason: String?) {
        if clientLoggedOut {
            client.closeAfterFlushing()
            return teardown(reason: "logout")
        }
        count("imap.upstream_errors", account: account)
        logger.warning("IMAP upstream connection lost", metadata: ["reason": "\(reason ?? "closed")"])
        if upstreamSaidBye {
            // The client has the upstream's own BYE (with its reason): one BYE is what RFC 3501 §7.1.5 allows.
            client.closeAfterFlushing()
            return teardown(reason: "upstream said BYE")
        }

        bye("Connection to Microsoft 365 lost (\(sanitizeForLog(reason ?? "closed", maximumLength: 200)))", reason: "upstream lost")
    }

    // MARK: - Output and counters

    private func sendClient(_ text: String) {
        flushClientBatch()
        let bytes = Array(text.utf8)
        count(bytesToClient: bytes.count)
        client.write(bytes)
    }

    private func count(bytesToClient: Int) { bytesToClientUncounted += bytesToClient }
    private func count(bytesToUpstream: Int) { bytesToUpstreamUncounted += bytesToUpstream }

    private func flushCounters() {
        let commands = commandsUncounted
        let toUpstream = bytesToUpstreamUncounted
        let toClient = bytesToClientUncounted
        commandsUncounted = 0
        bytesToUpstreamUncounted = 0
        bytesToClientUncounted = 0
        guard let counters = environment.counters as? any GatewayAmountCounters else { return }
        let account = self.account
        let listener = environment.configuration.listenerName
        DispatchQueue.global(qos: .utility).async {
            counters.add("imap.commands", amount: commands, account: account, listener: listener)
            counters.add("imap.bytes_from_client", amount: toUpstream, account: account, listener: listener)
            counters.add("imap.bytes_to_client", amount: toClient, account: account, listener: listener)
        }
    }

    private func count(_ name: String, account: String? = nil) {
        let counters = environment.counters
        let listener = environment.configuration.listenerName
        DispatchQueue.global(qos: .utility).async { counters.increment(name, account: account, listener: listener) }
    }
}

// MARK: - Slowloris bounds (CommandClock)

extension IMAPSession {
    /// Times the command line in progress. A literal (an APPEND message) is not a command line; neither are
    /// bytes the session holds back itself (commands in flight, an upstream not ready for more).
    fileprivate func observeCommandLine(_ bytes: [UInt8]) {
        guard !isEnded else { return }
        switch phase {
        case .preLogin, .loggingIn:
            commandClock.observe(bytes, streaming: false)
        case .relaying, .idling, .reconnecting:
            commandClock.observe(bytes, streaming: scanner.isInLiteral || clientPausedByUs)
        case .ended:
            return
        }
    }

    fileprivate func commandClockExpired(_ expiry: CommandClock.Expiry) {
        guard !isEnded else { return }
        switch expiry {
        case .commandLine:
            logger.info("IMAP client command line timeout (slowloris)")
            bye(
                "Autologout; a command line was not completed within \(Int(limits.commandLineTimeoutSeconds)) seconds",
                reason: "command line timeout")
        case .unauthenticated:
            logger.info("IMAP client did not log in in time")
            bye(
                "Autologout; not logged in within \(Int(limits.unauthenticatedTimeoutSeconds)) seconds",
                reason: "login timeout")
        }
    }
}
