// Gateway: accounts, their servers and their tokens, resolved from the configuration and the store.
public import Config
public import Logging
public import MailCore
public import OAuth
public import Store
import Foundation
import Transport

/// The one place that knows, for a local account, which `[server]` and `[oauth]` serve it and how to get its
/// XOAUTH2 identity. Shared by `serve`, `account connect` and `account test`.
public final class AccountDirectory: UpstreamCredentials {
    public let configuration: MailGateConfiguration
    public let database: MailGateDatabase
    public let tokenStore: VaultTokenStore
    /// One token service per `[oauth.NAME]`: single-flight refresh is per provider and account.
    public let tokenServices: [String: TokenService]
    private let logger: Logger

    public init(configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String, logger: Logger)
        throws
    {
        self.configuration = configuration
        self.database = database
        self.logger = logger
        tokenStore = VaultTokenStore(database: database, vault: try Vault.open(stateDirectory: stateDirectory))
        var services: [String: TokenService] = [:]
        for (name, settings) in configuration.oauth {
            let provider = try Self.providerSettings(settings)
            let endpoint = try HTTPSTokenEndpoint(caFile: settings.caFile)
            services[name] = TokenService(
                client: OAuthClient(settings: provider, endpoint: endpoint), store: tokenStore,
                logger: logger)
        }
        tokenServices = services
    }

    /// The same vault and token services under a reloaded configuration (SIGHUP): single-flight refresh stays
    /// per account across the reload, and `[oauth]` changes wait for a restart.
    public init(reloading previous: AccountDirectory, configuration: MailGateConfiguration) {
        self.configuration = configuration
        database = previous.database
        logger = previous.logger
        tokenStore = previous.tokenStore
        tokenServices = previous.tokenServices
    }

    /// Maps a configuration `[oauth.NAME]` to the OAuth module's settings (Microsoft's defaults already applied
    /// by the configuration loader).
    public static func providerSettings(_ settings: OAuthSettings) throws -> OAuthProviderSettings {
        guard let clientID = settings.clientID else {
            throw AccountError.notConfigured(
                "[oauth.\(settings.name)] has no client_id: register an app in Entra ID and set it (see README).")
        }
        let flow: OAuthProviderSettings.Flow =
            switch settings.flow {
            case .authorizationCode: .authorizationCode
            case .device: .device
            case .clientCredentials: .clientCredentials
            }
        return OAuthProviderSettings(
            authority: settings.authority, tenant: settings.tenant, clientID: clientID,
            clientSecret: settings.clientSecret, flow: flow, scopes: settings.scopes, caFile: settings.caFile)
    }

    /// The local account, refused with a sentence when it does not exist.
    public func account(_ email: String) throws -> Account {
        guard let account = try database.account(email: email) else {
            throw AccountError.unknownAccount(email.lowercased())
        }
        return account
    }

    /// The `[server]` section an account belongs to.
    public func server(for account: Account) throws -> ServerSettings {
        guard let server = configuration.servers[account.serverName] else {
            throw AccountError.notConfigured(
                "\(account.email) belongs to [server.\(account.serverName)], which the configuration no longer has.")
        }
        return server
    }

    /// The token service of the server's `[oauth]` section.
    public func tokenService(for server: ServerSettings) throws -> TokenService {
        guard let service = tokenServices[server.oauth] else {
            throw AccountError.notConfigured("[server.\(server.name)] names [oauth.\(server.oauth)], which does not exist.")
        }
        return service
    }

    // MARK: - UpstreamCredentials

    /// The token is stored under the mailbox (for a shared mailbox it is the delegate's); XOAUTH2 names the mailbox.
    public func xoauth2(for email: String) async throws -> (user: String, token: Redacted<String>) {
        let account = try account(email)
        let service = try tokenService(for: try server(for: account))
        return (account.email, try await service.accessToken(for: account.email))
    }

    public func xoauth2AfterRejection(for email: String, rejected: Redacted<String>) async throws
        -> (user: String, token: Redacted<String>)
    {
        let account = try account(email)
        let service = try tokenService(for: try server(for: account))
        return (account.email, try await service.forceRefresh(for: account.email, rejectedToken: rejected))
    }

    // MARK: - Upstream endpoints

    /// The upstream SMTP endpoint of a server.
    public static func smtpEndpoint(_ server: ServerSettings) -> UpstreamEndpoint? {
        endpoint(server.smtp, server.smtpSecurity, server.caFile, allowInsecure: server.allowInsecureUpstream)
    }

    /// The incoming service `account test` checks: IMAP (also for imap-download) or POP3.
    public static func incomingEndpoint(_ server: ServerSettings) -> AccountTester.Plan.Incoming? {
        switch server.incoming {
        case .imap, .imapDownload:
            server.imap.flatMap {
                endpoint($0, server.imapSecurity, server.caFile, allowInsecure: server.allowInsecureUpstream)
            }.map { .imap($0) }
        case .pop3:
            server.pop3.flatMap {
                endpoint($0, server.pop3Security, server.caFile, allowInsecure: server.allowInsecureUpstream)
            }.map { .pop3($0) }
        }
    }

    /// The IMAP endpoint (sent copy), if the server has one.
    public static func imapEndpoint(_ server: ServerSettings) -> UpstreamEndpoint? {
        server.imap.flatMap {
            endpoint($0, server.imapSecurity, server.caFile, allowInsecure: server.allowInsecureUpstream)
        }
    }

    static func endpoint(
        _ spec: HostPortSpec, _ security: SecurityMode, _ caFile: String?, allowInsecure: Bool = false
    ) -> UpstreamEndpoint? {
        guard let address = HostPort(host: spec.host, port: spec.port) else { return nil }
        let mode: UpstreamEndpoint.Security =
            switch security {
            case .tls: .tls
            case .starttls: .starttls
            case .none: .none
            }
        return UpstreamEndpoint(address: address, security: mode, caFile: caFile, allowInsecure: allowInsecure)
    }
}

/// Account problems an administrator can fix, each a sentence that says how.
public enum AccountError: MailGateError {
    case unknownAccount(String)
    case notConfigured(String)

    public var description: String {
        switch self {
        case .unknownAccount(let email):
            "There is no account \(email): add it with `mailgate account add \(email)`."
        case .notConfigured(let sentence): sentence
        }
    }
}
