// Gateway: where an upstream service lives and how to reach it securely.
public import MailCore
public import SMTP
public import Transport
public import TLS

/// One upstream service (SMTP, IMAP or POP3 of a `[server.NAME]`), resolved from the configuration.
public struct UpstreamEndpoint: Sendable {
    /// How the connection is secured (`smtp_security`, `imap_security`, `pop3_security`).
    public enum Security: String, Sendable {
        /// TLS from the first byte (993, 995, SMTP "SSL").
        case tls
        /// Plain connect, then STARTTLS / STLS; refused if the server does not offer it.
        case starttls
        /// No TLS at all; only allowed with `allow_insecure_upstream = true`.
        case none
    }

    public var address: HostPort
    public var security: Security
    /// Extra trust anchors (`ca_file`); the system store is always used too and verification is never off.
    public var caFile: String?
    /// `allow_insecure_upstream` of the server: whether `security == .none` may be used at all. Users of the
    /// endpoint pass it on to the protocol machines, whose own guard then refuses plaintext unless it is true.
    public var allowInsecure: Bool

    public init(address: HostPort, security: Security, caFile: String?, allowInsecure: Bool = false) {
        self.address = address
        self.security = security
        self.caFile = caFile
        self.allowInsecure = allowInsecure
    }

    /// The name the certificate must carry: the configured host.
    public var serverName: String { address.host }

    /// The client TLS context for this endpoint (system trust store plus `caFile`), shared by every
    /// connection with the same `caFile` (the trust store is parsed once per process).
    public func tlsContext() throws(TLSError) -> TLSContext {
        try TLSContext.sharedClient(caFile: caFile)
    }

    /// Connects, with TLS from the first byte when `security == .tls`.
    public func connect(timeout: Double, limits: Limits = .standard) async throws -> AsyncConnection {
        let context = security == .none ? nil : try tlsContext()
        return try await AsyncConnection.connect(
            to: address, tls: security == .tls ? context : nil, serverName: serverName, timeout: timeout,
            limits: limits)
    }
}

extension SMTPUpstreamSide.Security {
    /// The SMTP state machine's view of an endpoint's `smtp_security`.
    public init(_ security: UpstreamEndpoint.Security) {
        switch security {
        case .tls: self = .tls
        case .starttls: self = .starttls
        case .none: self = .none
        }
    }
}
