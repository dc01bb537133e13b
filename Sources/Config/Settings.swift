// Config: the typed, validated configuration every other module reads (DESIGN.md §5).
public import MailCore

/// The whole configuration, decoded from TOML, validated, with relative paths made absolute.
///
/// It is a plain value: load it once, hand it to the gateway and the commands; nothing re-reads the file.
public struct MailGateConfiguration: Sendable {
    /// Absolute path of the configuration file (relative paths inside it are resolved against its directory).
    public var sourceFile: String
    /// Absolute path of the state directory (database, vault key, archive); default `state` beside the file.
    public var stateDirectory: String
    /// Where the gateway listens for clients.
    public var listen: ListenSettings
    /// OAuth providers by name (`[oauth.NAME]`).
    public var oauth: [String: OAuthSettings]
    /// Upstream servers by name (`[server.NAME]`).
    public var servers: [String: ServerSettings]
    /// The download schedule (`[download]`).
    public var download: DownloadSettings
    /// Bounds on lines, messages, buffers and waits: `MailCore.Limits` defaults unless `[limits]` says otherwise.
    public var limits: Limits
    /// Log level: trace, debug, info, notice, warning, error or critical (default info).
    public var logLevel: String
    /// Legal but suspicious settings (e.g. the sample's placeholder client id), to print to stderr.
    public var warnings: [ConfigWarning]
    /// The status server (`[admin]`); none by default.
    public var admin = AdminSettings()
    /// Journal checkpoints and time-stamps (`[journal]`).
    public var journal = JournalSettings()

    public init(
        sourceFile: String, stateDirectory: String, listen: ListenSettings, oauth: [String: OAuthSettings],
        servers: [String: ServerSettings], download: DownloadSettings, limits: Limits = .standard,
        logLevel: String = "info", warnings: [ConfigWarning] = []
    ) {
        self.sourceFile = sourceFile
        self.stateDirectory = stateDirectory
        self.listen = listen
        self.oauth = oauth
        self.servers = servers
        self.download = download
        self.limits = limits
        self.logLevel = logLevel
        self.warnings = warnings
    }
}

/// `[listen]`: client-facing listeners and who may relay without logging in.
public struct ListenSettings: Sendable {
    /// Plain SMTP submission (STARTTLS offered when a certificate is set).
    public var smtp: HostPortSpec?
    /// Plain IMAP (STARTTLS offered when a certificate is set).
    public var imap: HostPortSpec?
    /// Plain POP3 (STLS offered when a certificate is set).
    public var pop3: HostPortSpec?
    /// SMTP with implicit TLS (needs a certificate).
    public var smtps: HostPortSpec?
    /// IMAP with implicit TLS (needs a certificate).
    public var imaps: HostPortSpec?
    /// POP3 with implicit TLS (needs a certificate).
    public var pop3s: HostPortSpec?
    /// Absolute path of the PEM certificate chain shown to clients.
    public var certificate: String?
    /// Absolute path of the PEM private key for `certificate`.
    public var privateKey: String?
    /// Client addresses that may send over SMTP without logging in, as `relayAccount`.
    public var relayNetworks: [CIDR]
    /// The account whose token sends mail relayed for `relayNetworks`.
    public var relayAccount: String?
    /// Allows a non-loopback listener without TLS (DESIGN §7): passwords then cross the network in clear.
    public var allowPlaintext: Bool

    public init(
        smtp: HostPortSpec? = nil, imap: HostPortSpec? = nil, pop3: HostPortSpec? = nil, smtps: HostPortSpec? = nil,
        imaps: HostPortSpec? = nil, pop3s: HostPortSpec? = nil, certificate: String? = nil, privateKey: String? = nil,
        relayNetworks: [CIDR] = [], relayAccount: String? = nil, allowPlaintext: Bool = false
    ) {
        self.smtp = smtp
        self.imap = imap
        self.pop3 = pop3
        self.smtps = smtps
        self.imaps = imaps
        self.pop3s = pop3s
        self.certificate = certificate
        self.privateKey = privateKey
        self.relayNetworks = relayNetworks
        self.relayAccount = relayAccount
        self.allowPlaintext = allowPlaintext
    }

    /// Every configured listener with its key name (`smtp`, `imaps`, …) in fixed order, for logs and `config check`.
    public var all: [(name: String, address: HostPortSpec)] {
        let pairs: [(String, HostPortSpec?)] = [
            ("smtp", smtp), ("imap", imap), ("pop3", pop3), ("smtps", smtps), ("imaps", imaps), ("pop3s", pop3s),
        ]
        return pairs.compactMap { name, address in address.map { (name, $0) } }
    }
}

/// How MailGate obtains tokens from the identity platform.
public enum OAuthFlow: String, Sendable, CaseIterable {
    /// Browser sign-in with PKCE and a loopback redirect (the default).
    case authorizationCode = "authorization_code"
    /// Device code: sign in on another device with a short code.
    case device = "device"
    /// App-only tokens with a client secret; needs a specific tenant and admin-granted permissions.
    case clientCredentials = "client_credentials"
}

/// `[oauth.NAME]`: an identity provider and the app registration MailGate signs in with.
public struct OAuthSettings: Sendable {
    /// The table's NAME.
    public var name: String
    /// Provider kind; only `microsoft365` exists.
    public var provider: String
    /// The site's own Entra ID app registration (application id).
    public var clientID: String?
    /// Client secret, needed only for `client_credentials` (or a confidential web app).
    public var clientSecret: Redacted<String>?
    /// Tenant id or domain, or `organizations` / `common` / `consumers`.
    public var tenant: String
    /// Which OAuth flow `account connect` uses.
    public var flow: OAuthFlow
    /// Base URL of the identity platform (tests point it at a stand-in).
    public var authority: String
    /// Scopes requested; defaults depend on the flow (see `OAuthSettings.defaultScopes(for:)`).
    public var scopes: [String]
    /// Absolute path of extra trust anchors (PEM) for the identity platform.
    public var caFile: String?
    /// Fixed loopback port for the authorization-code redirect; `nil` means any free port.
    public var redirectPort: Int?

    public init(
        name: String, provider: String = "microsoft365", clientID: String?, clientSecret: Redacted<String>? = nil,
        tenant: String = "organizations", flow: OAuthFlow = .authorizationCode,
        authority: String = OAuthSettings.defaultAuthority, scopes: [String]? = nil, caFile: String? = nil,
        redirectPort: Int? = nil
    ) {
        self.name = name
        self.provider = provider
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.tenant = tenant
        self.flow = flow
        self.authority = authority
        self.scopes = scopes ?? Self.defaultScopes(for: flow)
        self.caFile = caFile
        self.redirectPort = redirectPort
    }

    /// Microsoft's identity platform.
    public static let defaultAuthority = "https://login.microsoftonline.com"

    /// Delegated Outlook scopes for IMAP, POP and SMTP AUTH plus `offline_access` (for a refresh token); app-only
    /// flows ask for the resource's `.default` scope instead.
    public static func defaultScopes(for flow: OAuthFlow) -> [String] {
        switch flow {
        case .authorizationCode, .device:
            return [
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/POP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send",
                "offline_access",
            ]
        case .clientCredentials:
            return ["https://outlook.office365.com/.default"]
        }
    }

    /// The all-zero id the sample configuration ships: syntactically valid, never a real app.
    public static let placeholderClientID = "00000000-0000-0000-0000-000000000000"
}

/// Transport security towards an upstream server.
public enum SecurityMode: String, Sendable, CaseIterable {
    /// Plain connection upgraded with STARTTLS / STLS (refused if the server does not offer it).
    case starttls
    /// Implicit TLS from the first byte.
    case tls
    /// No TLS at all: only with `allow_insecure_upstream = true`.
    case none
}

/// Which protocol clients' incoming mail comes from.
public enum IncomingMode: String, Sendable, CaseIterable {
    /// Clients' IMAP/POP3 sessions are relayed to the upstream IMAP server.
    case imap
    /// Clients' POP3 sessions are relayed to the upstream POP3 server.
    case pop3
    /// Mail is downloaded over IMAP on a schedule into a local store that POP3 clients read.
    case imapDownload = "imap-download"
}

/// When the gateway appends a copy of a sent message to the Sent folder.
public enum SentCopyMode: String, Sendable, CaseIterable {
    /// Only if the server did not file the message itself (checked by Message-ID).
    case auto
    /// Always (still deduplicated against a copy the client appends itself).
    case always
    /// Never.
    case never
}

/// `[server.NAME]`: one upstream mail service and the policies applied to its accounts.
public struct ServerSettings: Sendable {
    /// The table's NAME.
    public var name: String
    /// Name of the `[oauth.NAME]` table whose tokens this server accepts.
    public var oauth: String
    /// Upstream SMTP submission endpoint.
    public var smtp: HostPortSpec
    public var smtpSecurity: SecurityMode
    /// Authenticate upstream SMTP with XOAUTH2.
    public var smtpAuth: Bool
    /// Upstream IMAP endpoint.
    public var imap: HostPortSpec?
    public var imapSecurity: SecurityMode
    /// Upstream POP3 endpoint.
    public var pop3: HostPortSpec?
    public var pop3Security: SecurityMode
    public var incoming: IncomingMode
    /// The server's folder names; `nil` means find them by SPECIAL-USE or known names.
    public var sentFolder: String?
    public var trashFolder: String?
    public var spamFolder: String?
    public var sentCopy: SentCopyMode
    /// Refuse changes to sent messages and journal every accepted message (DESIGN §6).
    public var lockAfterSend: Bool
    /// List the Sent folder to IMAP clients.
    public var showSentFolder: Bool
    /// POP3 / download: delete upstream messages once loaded.
    public var deleteAfterLoading: Bool
    /// POP3 / download: delete upstream messages this many days after loading; 0 keeps them.
    public var deleteAfterDays: Int
    /// Absolute path of extra trust anchors (PEM) for this server.
    public var caFile: String?
    /// Permits `*_security = "none"`; verification of TLS certificates is never switched off by this.
    public var allowInsecureUpstream: Bool
    /// The names IMAP clients see for the mapped Sent, Trash and Junk folders (`imap_sent_name`, …).
    public var imapSentName: String
    public var imapTrashName: String
    public var imapSpamName: String

    public init(
        name: String, oauth: String, smtp: HostPortSpec, smtpSecurity: SecurityMode = .starttls, smtpAuth: Bool = true,
        imap: HostPortSpec? = nil, imapSecurity: SecurityMode = .tls, pop3: HostPortSpec? = nil,
        pop3Security: SecurityMode = .tls, incoming: IncomingMode = .imap, sentFolder: String? = nil,
        trashFolder: String? = nil, spamFolder: String? = nil, sentCopy: SentCopyMode = .auto,
        lockAfterSend: Bool = true, showSentFolder: Bool = true, deleteAfterLoading: Bool = false,
        deleteAfterDays: Int = 0, caFile: String? = nil, allowInsecureUpstream: Bool = false,
        imapSentName: String = "Sent", imapTrashName: String = "Trash", imapSpamName: String = "Junk"
    ) {
        self.name = name
        self.oauth = oauth
        self.smtp = smtp
        self.smtpSecurity = smtpSecurity
        self.smtpAuth = smtpAuth
        self.imap = imap
        self.imapSecurity = imapSecurity
        self.pop3 = pop3
        self.pop3Security = pop3Security
        self.incoming = incoming
        self.sentFolder = sentFolder
        self.trashFolder = trashFolder
        self.spamFolder = spamFolder
        self.sentCopy = sentCopy
        self.lockAfterSend = lockAfterSend
        self.showSentFolder = showSentFolder
        self.deleteAfterLoading = deleteAfterLoading
        self.deleteAfterDays = deleteAfterDays
        self.caFile = caFile
        self.allowInsecureUpstream = allowInsecureUpstream
        self.imapSentName = imapSentName
        self.imapTrashName = imapTrashName
        self.imapSpamName = imapSpamName
    }
}

/// `[download]`: the schedule for `incoming = "imap-download"` servers.
public struct DownloadSettings: Sendable {
    /// Seconds between download runs (default 15 minutes).
    public var every: Int
    /// Clients read the local store only; their refresh does not trigger a download.
    public var forbidManualRefresh: Bool
    /// Mail already downloaded may be fetched again.
    public var allowReloading: Bool
    /// Bytes the local download store may hold over all accounts (`max_store_bytes`, default 10 GiB).
    public var maxStoreBytes: Int

    /// 10 GiB.
    public static let defaultMaxStoreBytes = 10_737_418_240

    public init(
        every: Int = 900, forbidManualRefresh: Bool = false, allowReloading: Bool = false,
        maxStoreBytes: Int = DownloadSettings.defaultMaxStoreBytes
    ) {
        self.every = every
        self.forbidManualRefresh = forbidManualRefresh
        self.allowReloading = allowReloading
        self.maxStoreBytes = maxStoreBytes
    }
}
