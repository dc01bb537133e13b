// Gateway: one connection to an account's upstream IMAP server (Microsoft 365) on the client session's queue:
// connect, STARTTLS, CAPABILITY, AUTHENTICATE XOAUTH2, then raw lines and literal chunks for the proxy.
import Dispatch
import Synchronization
import IMAP
import MailCore
import SASL
import TLS
import Transport

/// Where and how an account's upstream IMAP server is reached.
struct IMAPUpstreamSettings: Sendable {
    var endpoint: UpstreamEndpoint
    var allowInsecure: Bool
}

/// The upstream half of an IMAP session.
///
/// Login phase: whole responses are cut by `IMAPStreamScanner`, parsed by `IMAPResponseParser` and driven through
/// `IMAPUpstreamClient` (which knows SASL-IR vs. the continuation form and answers an error challenge `+ …` with an
/// empty line). After `.ready` the same scanner keeps going, so bytes that arrived behind the tagged OK are not lost,
/// and every line and literal chunk goes to the session as `.stream` unparsed. Everything runs on `queue`;
/// `.ended` is the last event and comes exactly once.
final class IMAPUpstreamLink: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is used only on `queue` (the session's); closures only hop onto it.
    enum Event {
        /// Supply the XOAUTH2 raw response with `supplyToken(_:)`.
        case needToken
        /// Authenticated; the upstream's capabilities after login.
        case ready([Capability])
        /// The upstream refused the token (its tagged NO text).
        case authenticationFailed(String)
        /// Proxy phase: one scanner event from upstream.
        case stream(IMAPStreamScanner.Event)
        /// Proxy phase: the bytes read so far are all handed out as `.stream` (the session writes what it
        /// gathered from them to the client in one piece, not one small send per line).
        case burstEnd
        /// The write queue drained.
        case writable
        /// Finished; nil after an orderly close, else safe-to-log text.
        case ended(reason: String?)
    }

    private enum Phase {
        case connecting
        case awaitingGreeting
        case startingTLS
        case capability(tag: String)
        case awaitingToken
        case authenticating(tag: String)
        case postLoginCapability(tag: String)
        case proxying
        case ended
    }

    let account: String
    let settings: IMAPUpstreamSettings
    private let queue: DispatchQueue
    private let limits: Limits
    private let tlsContexts: UpstreamTLSContexts
    private var phase = Phase.connecting
    private var client = IMAPUpstreamClient(tagPrefix: "MGL")
    private var scanner: IMAPStreamScanner
    private let parser: IMAPResponseParser
    private var frame: [UInt8] = []
    private var pendingTLSGreeting: IMAPResponse?
    private(set) var connection: Connection?
    private(set) var capabilities: [Capability] = []
    var onEvent: ((Event) -> Void)?

    init(account: String, settings: IMAPUpstreamSettings, queue: DispatchQueue, limits: Limits, tlsContexts: UpstreamTLSContexts) {
        self.account = account
        self.settings = settings
        self.queue = queue
        self.limits = limits
        self.tlsContexts = tlsContexts
        self.scanner = IMAPStreamScanner(maximumLine: max(limits.upstreamLine, limits.imapLine))
        self.parser = IMAPResponseParser(limits: IMAPLimits(limits: limits))
    }

    var isEnded: Bool { if case .ended = phase { true } else { false } }
    var pendingWriteBytes: Int { connection.map { $0.isClosed ? 0 : $0.pendingWriteBytes } ?? 0 }
    var hasLiteralPlus: Bool { capabilities.contains(.literalPlus) }

    /// Connects (TLS from the first byte for `tls`) within the connect timeout.
    func open() {
        let endpoint = settings.endpoint
        var tls: TLSContext?
        if endpoint.security == .none && !settings.allowInsecure {
            queue.async { [self] in
                finish("imap_security = \"none\" needs allow_insecure_upstream = true")
            }
            return
        }
        if endpoint.security == .tls {
            do throws(TLSError) {
                tls = try tlsContexts.context(caFile: endpoint.caFile)
            } catch {
                queue.async { [self] in finish(error.description) }
                return
            }
        }
        Connection.connect(
            to: endpoint.address, on: queue, timeout: limits.connectTimeoutSeconds, tls: tls,
            serverName: endpoint.serverName, limits: limits
        ) { [self] result in
            switch result {
            case .failure(let error):
                finish(error.description)
            case .success(let connection):
                guard !isEnded else { return connection.close() }
                self.connection = connection
                phase = .awaitingGreeting
                connection.readMode = .raw
                connection.onEvent = { [self] event in connectionEvent(event) }
                connection.setIdleTimeout(seconds: limits.connectTimeoutSeconds)
                connection.start()
            }
        }
    }

    /// The XOAUTH2 raw response (`user=…^Aauth=Bearer …^A^A`) answering `.needToken`.
    func supplyToken(_ response: Redacted<[UInt8]>) {
        guard case .awaitingToken = phase else { return }
        do throws(IMAPError) {
            let (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: response)
            phase = .authenticating(tag: tag)
            perform(actions)
        } catch {
            finish(error.description)
        }
    }

    /// Proxy phase: writes bytes upstream as they are.
    func write(_ bytes: [UInt8]) {
        guard case .proxying = phase, let connection else { return }
        connection.write(bytes)
    }

    /// Sets the idle timeout of the upstream connection (proxy phase: the IDLE re-issue keeps it busy).
    func setIdleTimeout(seconds: Double?) { connection?.setIdleTimeout(seconds: seconds) }

    func pauseReading() { connection?.pauseReading() }
    func resumeReading() { connection?.resumeReading() }

    /// Ends politely: LOGOUT when logged in, then close after flushing. No further events but `.ended`.
    func logout() {
        if case .proxying = phase, let connection {
            connection.write(Array("MGL9999 LOGOUT\r\n".utf8))
        }
        finish(nil, graceful: true)
    }

    /// Ends at once.
    func close() { finish(nil, graceful: false) }

    // MARK: - Internals

    private func connectionEvent(_ event: ConnectionEvent) {
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            scanner.append(bytes)
            drain()
        case .writable:
            onEvent?(.writable)
        case .closed(let error):
            finish(error?.description ?? "the upstream server closed the connection")
        case .idleTimeout:
            finish("the upstream connection was silent for too long")
        case .lineTooLong:
            break
        }
    }

    private func drain() {
        while !isEnded {
            let event: IMAPStreamScanner.Event?
            do throws(IMAPStreamScanner.ScanError) {
                event = try scanner.next()
            } catch {
                return finish("the upstream sent \(error.description)")
            }
            guard let event else {
                if case .proxying = phase { onEvent?(.burstEnd) }
                return
            }
            if case .proxying = phase {
                onEvent?(.stream(event))
                continue
            }
            // Login phase: collect whole responses (capability lists, challenges: small).
            switch event {
            case .line(let line, _, let literal):
                frame += line
                if literal == nil {
                    let whole = frame
                    frame = []
                    loginResponse(whole)
                }
            case .literalBytes(let bytes):
                frame += bytes
                if frame.count > 1_048_576 { return finish("the upstream sent a response too large before login") }
            case .literalEnd:
                break
            }
        }
    }

    private func loginResponse(_ bytes: [UInt8]) {
        let response: IMAPResponse
        do throws(IMAPError) {
            guard let parsed = try parser.parseResponse(bytes) else {
                return finish("the upstream sent an incomplete response")
            }
            response = parsed.response
        } catch {
            return finish("the upstream sent a response MailGate cannot read: \(error.description)")
        }
        switch phase {
        case .awaitingGreeting:
            if settings.endpoint.security == .starttls {
                guard case .untagged(.ok) = response else {
                    return perform(client.receive(response))
                }
                pendingTLSGreeting = response
                phase = .startingTLS
                connection?.write(Array("MGS0 STARTTLS\r\n".utf8))
                return
            }
            perform(client.receive(response))
            guard !isEnded else { return }
            if client.capabilities.isEmpty { runCapability() } else { phase = .awaitingToken; onEvent?(.needToken) }
        case .startingTLS:
            guard case .tagged(let tagged) = response, tagged.tag == "MGS0" else { return }
            guard tagged.status == .ok else {
                return finish("the upstream refused STARTTLS (\(sanitizeForLog(tagged.text))); check imap_security")
            }
            startTLS()
        case .proxying, .ended, .connecting:
            break
        default:
            perform(client.receive(response))
        }
    }

    private func startTLS() {
        guard let connection else { return }
        let context: TLSContext
        do throws(TLSError) {
            context = try tlsContexts.context(caFile: settings.endpoint.caFile)
        } catch {
            return finish(error.description)
        }
        connection.startTLS(context: context, serverName: settings.endpoint.serverName) { [self] error in
            if let error { return finish(error.description) }
            scanner = IMAPStreamScanner(maximumLine: scanner.maximumLine)
            // Capabilities seen before TLS are not trusted (RFC 3501 §6.2.1): ask again.
            if case .untagged(.ok(var text))? = pendingTLSGreeting {
                text.code = nil
                perform(client.receive(.untagged(.ok(text))))
            }
            pendingTLSGreeting = nil
            runCapability()
        }
    }

    private func runCapability() {
        do throws(IMAPError) {
            let (tag, actions) = try client.send(.capability)
            if case .authenticating = phase { phase = .postLoginCapability(tag: tag) } else { phase = .capability(tag: tag) }
            perform(actions)
        } catch {
            finish(error.description)
        }
    }

    private func perform(_ actions: [IMAPUpstreamClient.Action]) {
        for action in actions {
            guard !isEnded else { return }
            switch action {
            case .send(let bytes):
                connection?.write(bytes)
            case .completed(let tag, let response, _):
                completed(tag: tag, response: response)
            case .sessionEnded(let reason):
                finish("the upstream ended the session (\(reason))")
            case .protocolViolation(let reason):
                finish("the upstream broke the protocol: \(sanitizeForLog(reason))")
            case .greeting(_, let preauthenticated):
                if preauthenticated { finish("the upstream greeted with PREAUTH; MailGate only logs in with XOAUTH2") }
            case .authenticationErrorDetails, .waitForContinuation, .unsolicited, .idleStarted:
                continue
            }
        }
    }

    private func completed(tag: String, response: TaggedResponse) {
        switch phase {
        case .capability(let expected) where expected == tag:
            guard response.status == .ok else { return finish("the upstream refused CAPABILITY") }
            phase = .awaitingToken
            onEvent?(.needToken)
        case .authenticating(let expected) where expected == tag:
            guard response.status == .ok else {
                let text = sanitizeForLog(response.text, maximumLength: 300)
                let handler = onEvent
                phase = .ended
                connection?.close()
                onEvent = nil
                handler?(.authenticationFailed(text))
                handler?(.ended(reason: "the upstream refused the token"))
                return
            }
            if case .capability(let list)? = response.code {
                becomeReady(list)
            } else {
                phase = .authenticating(tag: tag)
                runCapability()
            }
        case .postLoginCapability(let expected) where expected == tag:
            becomeReady(client.capabilities)
        default:
            break
        }
    }

    private func becomeReady(_ parsed: [Capability]) {
        let list = Self.sharedCapabilities(parsed)
        client.shareCapabilities(list)
        capabilities = list
        phase = .proxying
        connection?.setIdleTimeout(seconds: nil)
        onEvent?(.ready(list))
        // Bytes that came behind the last login response belong to the proxy phase.
        drain()
    }

    /// Capability lists seen after login, one array per distinct list (a few servers at most; bounded).
    private static let capabilityLists = Mutex<[[Capability]]>([])

    /// The stored array equal to `list` (stored first if new): 1,000 idle sessions of one server share one list.
    static func sharedCapabilities(_ list: [Capability]) -> [Capability] {
        capabilityLists.withLock { lists in
            if let known = lists.first(where: { $0 == list }) { return known }
            if lists.count >= 16 { lists.removeFirst() }
            lists.append(list)
            return list
        }
    }

    private func finish(_ reason: String?, graceful: Bool = false) {
        guard !isEnded else { return }
        phase = .ended
        if let connection, !connection.isClosed {
            if graceful { connection.closeAfterFlushing() } else { connection.close() }
        }
        let handler = onEvent
        onEvent = nil
        handler?(.ended(reason: reason))
    }
}
