// Gateway: where and how an account's mail is relayed upstream, as the lead's resolver hands it to the SMTP gateway.
import MailCore
public import SMTP
public import Transport

/// The upstream SMTP server of one account (`[server.NAME]`: `smtp`, `smtp_security`, `ca_file`, …).
public struct SMTPUpstreamSettings: Sendable {
    /// `smtp = "smtp.office365.com:587"`.
    public var server: HostPort
    /// `smtp_security`: STARTTLS (default), implicit TLS, or none (only with `allowInsecure`).
    public var security: SMTPUpstreamSide.Security
    /// `allow_insecure_upstream`.
    public var allowInsecure: Bool
    /// `ca_file`: extra trust anchors on top of the system store.
    public var caFile: String?
    /// The name the certificate must match (and SNI); `nil` means `server.host`.
    public var serverName: String?
    /// The name MailGate gives in its EHLO to the upstream.
    public var ehloHostname: String
    /// `smtp_auth`: authenticate with XOAUTH2 (default true).
    public var authenticate: Bool
    /// What the sent-mail recorder must do with messages of this server.
    public var sentMailPolicy: SMTPSentMailPolicy

    public init(
        server: HostPort, security: SMTPUpstreamSide.Security = .starttls, allowInsecure: Bool = false,
        caFile: String? = nil, serverName: String? = nil, ehloHostname: String, authenticate: Bool = true,
        sentMailPolicy: SMTPSentMailPolicy
    ) {
        self.server = server
        self.security = security
        self.allowInsecure = allowInsecure
        self.caFile = caFile
        self.serverName = serverName
        self.ehloHostname = ehloHostname
        self.authenticate = authenticate
        self.sentMailPolicy = sentMailPolicy
    }

    /// The key under which this server's EHLO offer is cached.
    var cacheKey: String { server.description }
}

/// Finds an account's upstream settings; `nil` when the account (or its server) is unknown.
public typealias SMTPUpstreamResolver = @Sendable (_ account: String) -> SMTPUpstreamSettings?
