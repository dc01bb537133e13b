// Gateway: one connection to an account's upstream SMTP server, driving SMTPUpstreamSide on the session's queue.
import Dispatch
import MailCore
import SMTP
import TLS
import Transport

/// The client TLS contexts of upstream connections: the process-wide one per `ca_file`
/// (`TLSContext.sharedClient`), so the system trust store is parsed once, not per listener or per copy.
final class UpstreamTLSContexts: Sendable {
    init() {}

    func context(caFile: String?) throws(TLSError) -> TLSContext {
        try TLSContext.sharedClient(caFile: caFile)
    }
}

/// The upstream half of a session: connect, greeting, EHLO, STARTTLS, EHLO, AUTH XOAUTH2, then envelope and message.
///
/// Everything runs on the session's queue (the connection is created on it). The link reports to its owner through
/// `onEvent`; `.ended` is always the last event and comes exactly once.
final class SMTPUpstreamLink: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is used only on `queue` (the session's), closures merely hop onto it.
    enum Event {
        /// The machine wants the XOAUTH2 initial response: answer with `supplyToken(_:)`.
        case needToken
        /// Authenticated; envelope commands may be fed.
        case ready(SMTPExtensions)
        /// The upstream refused the token.
        case authenticationFailed(SMTPReply)
        /// The upstream's answer to MAIL, RCPT, DATA or the message.
        case replyForClient(SMTPReply)
        /// The write queue drained below the low-water mark.
        case writable
        /// The link is finished: `reason` is nil after an orderly QUIT, else safe-to-log text.
        case ended(reason: String?)
    }

    let account: String
    let settings: SMTPUpstreamSettings
    private let queue: DispatchQueue
    private let limits: Limits
    private let tlsContexts: UpstreamTLSContexts
    private var machine: SMTPUpstreamSide
    private var parser: SMTPReplyParser
    private(set) var connection: Connection?
    private var finished = false
    private var performing = false
    private var pendingInputs: [SMTPUpstreamSide.Input] = []
    /// Nesting depth of `batch`: while above zero, writes collect in `outgoing` and go out as one.
    private var corkDepth = 0
    private var outgoing: [UInt8] = []
    var onEvent: ((Event) -> Void)?

    init(
        account: String, settings: SMTPUpstreamSettings, queue: DispatchQueue, limits: Limits,
        tlsContexts: UpstreamTLSContexts
    ) throws(SMTPUpstreamError) {
        self.account = account
        self.settings = settings
        self.queue = queue
        self.limits = limits
        self.tlsContexts = tlsContexts
        self.machine = try SMTPUpstreamSide(
            configuration: SMTPUpstreamSide.Configuration(
                ehloHostname: settings.ehloHostname, security: settings.security, allowInsecure: settings.allowInsecure,
                authenticate: settings.authenticate, maximumBufferedMessage: limits.spoolMemory))
        self.parser = SMTPReplyParser(maximumLineLength: limits.upstreamLine)
    }

    /// Whether envelope commands may be fed (authenticated and not ended).
    var isReady: Bool { !finished && connection != nil && machineIsPastAuthentication }
    private var machineIsPastAuthentication = false

    /// Whether the link has ended.
    var isEnded: Bool { finished }

    /// Bytes waiting to be written upstream.
    var pendingWriteBytes: Int { outgoing.count + (connection.map { $0.isClosed ? 0 : $0.pendingWriteBytes } ?? 0) }

    private var serverName: String { settings.serverName ?? settings.server.host }

    /// Connects (and for `.tls` handshakes) within the connect timeout; the conversation then starts by itself.
    func open() {
        var tls: TLSContext?
        if settings.security == .tls {
            do throws(TLSError) {
                tls = try tlsContexts.context(caFile: settings.caFile)
            } catch {
                queue.async { [self] in finish(error.description) }
                return
            }
        }
        Connection.connect(
            to: settings.server, on: queue, timeout: limits.connectTimeoutSeconds, tls: tls, serverName: serverName,
            limits: limits
        ) { [self] result in
            switch result {
            case .failure(let error):
                finish(error.description)
            case .success(let connection):
                guard !finished else {
                    connection.close()
                    return
                }
                self.connection = connection
                connection.readMode = .lines(maximumLength: limits.upstreamLine + 2)
                connection.onEvent = { [self] event in connectionEvent(event) }
                connection.setIdleTimeout(seconds: limits.idleTimeoutSeconds)
                connection.start()
            }
        }
    }

    /// Feeds the machine (queued if called while its previous actions are being performed).
    func feed(_ input: SMTPUpstreamSide.Input) {
        guard !finished else { return }
        pendingInputs.append(input)
        guard !performing else { return }
        performing = true
        defer { performing = false }
        while !pendingInputs.isEmpty, !finished {
            let next = pendingInputs.removeFirst()
            for action in machine.handle(next) {
                perform(action)
                if finished { break }
            }
        }
        pendingInputs = []
    }

    /// Runs `body` (which feeds the link) and writes everything it produced upstream in one write: a pipelined
    /// envelope (RFC 2920) becomes one TLS record and one segment, not one per command.
    func batch(_ body: () -> Void) {
        corkDepth += 1
        body()
        corkDepth -= 1
        if corkDepth == 0 { flushOutgoing() }
    }

    private func write(_ bytes: [UInt8]) {
        guard corkDepth > 0 else {
            connection?.write(bytes)
            return
        }
        if outgoing.isEmpty {
            outgoing = bytes  // no copy: the array is shared until the next append
        } else {
            outgoing.append(contentsOf: bytes)
        }
    }

    private func flushOutgoing() {
        guard !outgoing.isEmpty else { return }
        let bytes = outgoing
        outgoing = []
        if !finished { connection?.write(bytes) }
    }

    /// The XOAUTH2 initial response (base64) answering `.needToken`.
    func supplyToken(_ response: Redacted<String>) { feed(.token(response)) }

    /// Ends politely: QUIT when the machine can send it, then close after flushing. No further events but `.ended`.
    func quit() {
        guard !finished else { return }
        if let connection, machine.state == .ready || machine.state == .authenticationFailed {
            flushOutgoing()
            connection.write(SMTPCommand.quit.encode())
            connection.closeAfterFlushing()
        }
        finish(nil, graceful: true)
    }

    /// Ends at once, dropping unsent bytes (a DATA that must not complete).
    func close() { finish(nil, graceful: false) }

    // MARK: - Internals

    private func connectionEvent(_ event: ConnectionEvent) {
        switch event {
        case .line(let line):
            let reply: SMTPReply?
            do throws(SMTPReplyParseError) {
                reply = try parser.feed(line: line)
            } catch {
                finish(error.description)
                return
            }
            if let reply { batch { feed(.reply(reply)) } }
        case .lineTooLong(let limit):
            finish("the upstream sent a line longer than \(limit) bytes")
        case .writable:
            onEvent?(.writable)
        case .closed(let error):
            finish(error?.description ?? "the upstream server closed the connection")
        case .idleTimeout:
            finish("the upstream connection was idle for \(Int(limits.idleTimeoutSeconds)) seconds")
        case .raw, .bytes:
            break
        }
    }

    private func perform(_ action: SMTPUpstreamSide.Action) {
        switch action {
        case .send(let bytes):
            write(bytes)
        case .sendSecret(let bytes):
            flushOutgoing()
            connection?.write(bytes.revealed)
        case .startTLS:
            flushOutgoing()
            guard let connection else { return finish("STARTTLS without a connection") }
            let context: TLSContext
            do throws(TLSError) {
                context = try tlsContexts.context(caFile: settings.caFile)
            } catch {
                return finish(error.description)
            }
            connection.startTLS(context: context, serverName: serverName) { [self] error in
                if let error {
                    finish(error.description)
                } else {
                    feed(.tlsEstablished)
                }
            }
        case .needToken:
            onEvent?(.needToken)
        case .ready(let extensions):
            machineIsPastAuthentication = true
            onEvent?(.ready(extensions))
        case .authenticationFailed(let reply):
            onEvent?(.authenticationFailed(reply))
        case .replyForClient(let reply):
            onEvent?(.replyForClient(reply))
        case .failed(let error):
            finish(error.description)
        case .close:
            finish(nil, graceful: true)
        }
    }

    private func finish(_ reason: String?, graceful: Bool = false) {
        guard !finished else { return }
        if graceful { flushOutgoing() }
        finished = true
        pendingInputs = []
        outgoing = []
        if let connection, !connection.isClosed {
            if graceful { connection.closeAfterFlushing() } else { connection.close() }
        }
        let handler = onEvent
        onEvent = nil
        handler?(.ended(reason: reason))
    }
}
