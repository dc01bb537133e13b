// Gateway: the POP3 listener (plain + STLS, or implicit TLS) that starts one POP3Session per client.
import Dispatch
public import Logging
public import MailCore
import Synchronization
public import TLS
public import Transport

/// Where an account's POP3 sessions are served from (per `[server]` `incoming`), resolved per login.
public struct POP3AccountSettings: Sendable {
    public enum Source: Sendable {
        /// incoming = "pop3": the server's POP3, relayed after AUTH XOAUTH2.
        case pop3(UpstreamEndpoint)
        /// incoming = "imap" / "imap-download": the server's INBOX over IMAP.
        case imap(UpstreamEndpoint)
    }

    public var source: Source

    public init(source: Source) { self.source = source }
}

/// The account's upstream for POP3 (nil: the account has no incoming server).
public typealias POP3UpstreamResolver = @Sendable (_ account: String) -> POP3AccountSettings?

/// What one POP3 listener needs from the configuration.
public struct POP3GatewayConfiguration: Sendable {
    /// Name for counters and logs (`pop3`, `pop3s`).
    public var listenerName: String
    /// `allow_plaintext`: USER/PASS without TLS on non-loopback addresses.
    public var allowPlaintext: Bool
    /// Every bound (error budget, timeouts, write buffer).
    public var limits: Limits

    public init(listenerName: String, allowPlaintext: Bool = false, limits: Limits = .standard) {
        self.listenerName = listenerName
        self.allowPlaintext = allowPlaintext
        self.limits = limits
    }
}

/// One POP3 session per maildrop at a time (RFC 1939 §8: the maildrop is locked in the TRANSACTION state), over
/// every POP3 listener of a process; a second login gets `-ERR [IN-USE]`.
public final class POP3MaildropLocks: Sendable {
    private let held = Mutex<Set<String>>([])

    public init() {}

    func acquire(_ account: String) -> Bool { held.withLock { $0.insert(account).inserted } }
    func release(_ account: String) { _ = held.withLock { $0.remove(account) } }
}

/// MailGate's POP3 service: legacy clients log in with their local password; the session is then served from the
/// local download store, the server's INBOX over IMAP, or relayed to the server's POP3 (`incoming`).
public final class POP3Gateway: Sendable {
    private let listener: Listener
    private let table: SessionTable<POP3Session>
    private let logger: Logger

    /// Binds `listen` and starts accepting.
    public init(
        listen: HostPort, implicitTLS: Bool, tls: TLSContext?, configuration: POP3GatewayConfiguration,
        authenticator: LocalAuthenticator, credentials: any UpstreamCredentials, resolver: @escaping POP3UpstreamResolver,
        localMaildrops: (any LocalMaildropProvider)? = nil, locks: POP3MaildropLocks = POP3MaildropLocks(),
        imapSessionCap: IMAPUpstreamSessionCap? = nil, counters: any GatewayCounters = NoCounters(), logger: Logger
    ) throws {
        if implicitTLS && tls == nil { throw POP3GatewaySetupError.implicitTLSWithoutCertificate(listen) }
        let environment = POP3SessionEnvironment(
            configuration: configuration, implicitTLS: implicitTLS, serverTLS: tls, authenticator: authenticator,
            credentials: credentials, resolver: resolver, localMaildrops: localMaildrops, locks: locks,
            imapSessionCap: imapSessionCap, counters: counters, tlsContexts: UpstreamTLSContexts(), logger: logger)
        let box = SessionTable<POP3Session>()
        self.table = box
        self.logger = logger
        // [limits] pop3_sessions_per_address, per listener: one more gets a refusal in place of the greeting.
        let perAddress = configuration.limits.pop3SessionsPerAddress
        let perAddressLimiter = AddressSessionLimiter(maximum: perAddress)
        let listenerName = configuration.listenerName
        self.listener = try Listener(
            address: listen, tls: implicitTLS ? tls : nil, limits: IMAPSession.connectionLimits(configuration.limits)
        ) { connection in
            perAddressLimiter.accept(
                connection, into: box,
                refusal: {
                    AddressSessionLimiter.refuse(
                        $0, line: "-ERR [SYS/TEMP] Too many connections from your address (\(perAddress) open); try again later\r\n", logger: logger, what: "POP3", counters: counters,
                        counter: "pop3.connection.refused_limit", listenerName: listenerName)
                },
                make: { POP3Session(client: $0, environment: environment) })
        }
        logger.info("POP3 listener started", metadata: ["address": "\(listener.boundAddress)", "tls": "\(implicitTLS)"])
    }

    public var boundAddress: HostPort { listener.boundAddress }

    public var activeSessionCount: Int { table.count }

    /// Stops accepting and ends every session without UPDATE (nothing is deleted; clients reconnect).
    public func stop() {
        let current = table.stopAdmitting()
        listener.close()
        for session in current {
            session.queue.async { session.shutdown() }
        }
        logger.info("POP3 listener stopped", metadata: ["sessions": "\(current.count)"])
    }
}

public enum POP3GatewaySetupError: MailGateError {
    case implicitTLSWithoutCertificate(HostPort)

    public var description: String {
        switch self {
        case .implicitTLSWithoutCertificate(let address):
            "The implicit-TLS POP3 listener \(address) needs a certificate; set certificate and private_key in [listen]."
        }
    }
}
