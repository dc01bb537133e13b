// Gateway: the SMTP listener (plain + STARTTLS, or implicit TLS) that starts one SMTPSession per client.
import Dispatch
public import Logging
public import MailCore
import SMTP
import Synchronization
public import TLS
public import Transport

/// What one SMTP listener needs from the configuration (`[listen]`), mapped by the lead from `ListenSettings`.
public struct SMTPGatewayConfiguration: Sendable {
    /// Name for counters and logs (`smtp`, `smtps`).
    public var listenerName: String
    /// Our host name in the greeting and EHLO reply.
    public var hostname: String
    /// `allow_plaintext`: offer AUTH without TLS on non-loopback addresses.
    public var allowPlaintext: Bool
    /// `relay_account`: the account relay-network clients send as.
    public var relayAccount: String?
    /// Whether a client address is in `relay_networks` (clients there may send without AUTH as `relayAccount`).
    public var isRelayClient: @Sendable (IPAddress) -> Bool
    /// Recipients per message (Exchange Online's default is 500).
    public var maximumRecipients: Int
    /// Every bound (line lengths, buffers, timeouts).
    public var limits: Limits

    public init(
        listenerName: String, hostname: String, allowPlaintext: Bool = false, relayAccount: String? = nil,
        isRelayClient: @escaping @Sendable (IPAddress) -> Bool = { _ in false }, maximumRecipients: Int = 500,
        limits: Limits = .standard
    ) {
        self.listenerName = listenerName
        self.hostname = hostname
        self.allowPlaintext = allowPlaintext
        self.relayAccount = relayAccount
        self.isRelayClient = isRelayClient
        self.maximumRecipients = maximumRecipients
        self.limits = limits
    }
}

/// MailGate's SMTP submission service: legacy clients and LAN devices submit here; messages leave for Microsoft 365
/// over STARTTLS + AUTH XOAUTH2, each client connection with its own upstream connection on one serial queue.
public final class SMTPGateway: Sendable {
    private let listener: Listener
    private let table: SessionTable<SMTPSession>
    private let logger: Logger

    /// Binds `listen` and starts accepting.
    ///
    /// - Parameters:
    ///   - implicitTLS: the listener speaks TLS from the first byte (smtps); `tls` is then required.
    ///   - tls: the server certificate; on a plain listener it enables STARTTLS.
    ///   - resolver: an account's upstream server settings (nil: the account has no server).
    ///   - extensionsCache: shared between listeners so all advertise what the upstream offered last.
    /// - Throws: `TransportError` when the address cannot be bound; `SMTPGatewaySetupError` for implicit TLS
    ///   without a certificate.
    public init(
        listen: HostPort, implicitTLS: Bool, tls: TLSContext?, configuration: SMTPGatewayConfiguration,
        authenticator: LocalAuthenticator, credentials: any UpstreamCredentials, recorder: any MessageRecorder,
        resolver: @escaping SMTPUpstreamResolver, counters: any GatewayCounters = NoCounters(),
        extensionsCache: SMTPExtensionsCache = SMTPExtensionsCache(), sessionLimiter: SMTPSessionLimiter? = nil,
        logger: Logger
    ) throws {
        if implicitTLS && tls == nil { throw SMTPGatewaySetupError.implicitTLSWithoutCertificate(listen) }
        let environment = SMTPSessionEnvironment(
            configuration: configuration, implicitTLS: implicitTLS, serverTLS: tls, authenticator: authenticator,
            credentials: credentials, recorder: recorder, resolver: resolver, counters: counters,
            extensionsCache: extensionsCache, tlsContexts: UpstreamTLSContexts(), logger: logger)
        let box = SessionTable<SMTPSession>()
        let limiter = sessionLimiter ?? SMTPSessionLimiter(limits: configuration.limits)
        self.table = box
        self.logger = logger
        let listenerName = configuration.listenerName
        self.listener = try Listener(
            address: listen, tls: implicitTLS ? tls : nil, limits: configuration.limits
        ) { connection in
            let address = connection.remoteIPAddress
            if let refusal = limiter.admit(address) {
                // Refused before a session exists: no upstream connection, no state machine, one line and close.
                logger.warning(
                    "SMTP connection refused: \(refusal.logText)",
                    metadata: ["listener": "\(listenerName)", "client": "\(address?.description ?? "?")"])
                counters.increment("smtp.connection.refused_limit", account: nil, listener: listenerName)
                // The handler holds the connection until `.closed` (then cleared): nothing else owns it, and a
                // connection freed with live sources crashes.
                connection.onEvent = { event in
                    if case .closed = event { withExtendedLifetime(connection) {} }
                }
                connection.start()
                connection.write(Array(refusal.reply.utf8))
                connection.closeAfterFlushing()
                return
            }
            let session = SMTPSession(client: connection, environment: environment)
            guard box.add(session) else {
                limiter.release(address)
                connection.close()
                return
            }
            session.onEnd = {
                box.remove(session)
                limiter.release(address)
            }
            session.start()
        }
        logger.info("SMTP listener started", metadata: ["address": "\(listener.boundAddress)", "tls": "\(implicitTLS)"])
    }

    /// The address actually bound (port 0 resolved).
    public var boundAddress: HostPort { listener.boundAddress }

    /// Client sessions currently open.
    public var activeSessionCount: Int { table.count }

    /// Stops accepting. Without `drain`, every session gets `421 4.3.2` and is closed now; with `drain`, idle
    /// sessions are closed and busy ones after the message in flight.
    public func stop(drain: Bool) {
        let current = table.stopAdmitting()
        listener.close()
        for session in current {
            session.queue.async { session.shutdown(drain: drain) }
        }
        logger.info("SMTP listener stopped", metadata: ["sessions": "\(current.count)", "drain": "\(drain)"])
    }

    /// Closes the listening socket only: sessions already open go on (a reload that rebinds this listener).
    public func stopAccepting() {
        listener.close()
    }

    /// For tests: runs `body` on each open session's queue and collects the results.
    func inspectSessions<T: Sendable>(_ body: @escaping @Sendable (SMTPSession) -> T) -> [T] {
        let current = table.sessions
        return current.map { session in session.queue.sync { body(session) } }
    }
}

/// Counts open SMTP client sessions, in total and per client address, against `[limits]` `smtp_sessions` and
/// `smtp_sessions_per_address`; one limiter is shared by all SMTP listeners so the total is over all of them.
public final class SMTPSessionLimiter: Sendable {
    /// Why a connection was refused.
    public enum Refusal: Sendable, Equatable {
        case total(Int)
        case perAddress(Int)

        /// The line sent to the client before closing (RFC 5321 §3.8: 421 may be sent in place of the greeting).
        var reply: String {
            switch self {
            case .total(let limit):
                "421 4.7.0 Too many connections (\(limit) open); try again later\r\n"
            case .perAddress(let limit):
                "421 4.7.0 Too many connections from your address (\(limit) open); try again later\r\n"
            }
        }

        var logText: String {
            switch self {
            case .total(let limit): "smtp_sessions (\(limit)) reached"
            case .perAddress(let limit): "smtp_sessions_per_address (\(limit)) reached"
            }
        }
    }

    private struct Counts {
        var total = 0
        var byAddress: [IPAddress: Int] = [:]
    }

    private let total: Int
    private let perAddress: Int
    private let counts = Mutex(Counts())

    public init(limits: Limits) {
        total = limits.smtpSessions
        perAddress = limits.smtpSessionsPerAddress
    }

    /// Takes a slot for a new session from `address`, or says which limit refuses it (taking nothing).
    func admit(_ address: IPAddress?) -> Refusal? {
        counts.withLock { counts in
            if counts.total >= total { return .total(total) }
            if let address, counts.byAddress[address, default: 0] >= perAddress { return .perAddress(perAddress) }
            counts.total += 1
            if let address { counts.byAddress[address, default: 0] += 1 }
            return nil
        }
    }

    /// Gives back the slot of a session from `address` that has ended.
    func release(_ address: IPAddress?) {
        counts.withLock { counts in
            counts.total -= 1
            guard let address, let current = counts.byAddress[address] else { return }
            counts.byAddress[address] = current > 1 ? current - 1 : nil
        }
    }

    /// Sessions holding a slot now (for tests and diagnostics).
    public var openSessions: Int { counts.withLock { $0.total } }
}

/// A listener that cannot be set up as configured.
public enum SMTPGatewaySetupError: MailGateError {
    /// `smtps` without `certificate` and `private_key`.
    case implicitTLSWithoutCertificate(HostPort)

    public var description: String {
        switch self {
        case .implicitTLSWithoutCertificate(let address):
            "The implicit-TLS SMTP listener \(address) needs a certificate; set certificate and private_key in [listen]."
        }
    }
}
