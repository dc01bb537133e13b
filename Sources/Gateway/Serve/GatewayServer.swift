// Gateway: `mailgate serve`: every listener, the sent-mail worker and the token refresher in one process.
public import Config
public import Logging
public import Store
import Foundation
import MailCore
import OAuth
import SMTP
import TLS
public import Transport
import Policy
import Synchronization

/// The running gateway: SMTP, IMAP and POP3 listeners relaying to Microsoft 365, the sent-copy worker and the
/// background token refresher.
public final class GatewayServer: @unchecked Sendable {
    // @unchecked: the mutable parts (gateways, services, tasks) are set in start() and changed only by start(),
    // reload() and stop()/drainAndStop(), which `mailgate serve` calls from one serial queue; everything they hold
    // is itself Sendable.
    /// The configuration in force (SIGHUP replaces it; sessions already open keep what they started with).
    public var configuration: MailGateConfiguration { live.configuration }
    /// Accounts, servers and token services of the configuration in force.
    public var directory: AccountDirectory { live.directory }
    /// Configuration and directory, swapped as one by a reload; resolvers and credentials read it per session.
    let live: LiveDirectory
    let database: MailGateDatabase
    let stateDirectory: String
    let logger: Logger
    let recorder: SentMailRecorder
    let authenticator: LocalAuthenticator
    /// Shared by every listener of the process (counts and caches span listeners and reloads).
    let hostname: String
    let counters: StoreCounters
    let extensions: SMTPExtensionsCache
    let sessionLimiter: SMTPSessionLimiter
    let sessionCap: IMAPUpstreamSessionCap
    /// The server certificate for client TLS (nil: none configured), loaded by start().
    var tls: TLSContext?
    /// Listeners in service by name (`smtp`, `imaps`, …).
    var smtpGateways: [String: SMTPGateway] = [:]
    var imapGateways: [String: IMAPGateway] = [:]
    /// Listeners a reload replaced: no longer accepting, their sessions still open until they end or a drain.
    var retiredSMTPGateways: [SMTPGateway] = []
    var retiredIMAPGateways: [IMAPGateway] = []
    var refreshers: [Task<Void, Never>] = []
    /// Batched counters and the admin status server (GatewayServer+Admin.swift).
    let statistics: ServeStatistics
    var pop3Gateways: [POP3Gateway] = []
    /// The local download store's maildrops (set before `start()`); POP3 sessions of the accounts it serves read it.
    public var localMaildrops: (any LocalMaildropProvider)?
    var journalCheckpointer: JournalCheckpointer?

    public init(configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String, logger: Logger)
        throws
    {
        self.database = database
        self.stateDirectory = stateDirectory
        self.logger = logger
        statistics = ServeStatistics(database: database, logger: logger)
        let directory = try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        live = LiveDirectory(directory)
        // Looked up once: the host name can cost a resolver call, and every session needs it.
        hostname = ProcessInfo.processInfo.hostName
        counters = statistics.sessionCounters
        extensions = SMTPExtensionsCache(defaultMaximumSize: configuration.limits.messageSize)
        sessionLimiter = SMTPSessionLimiter(limits: configuration.limits)
        sessionCap = IMAPUpstreamSessionCap(maximum: configuration.limits.imapUpstreamSessions)
        recorder = SentMailRecorder(
            database: database, stateDirectory: stateDirectory, limits: configuration.limits, credentials: directory,
            logger: logger)
        var authSettings = LocalAuthenticator.Settings()
        authSettings.maximumWaitingVerifications = configuration.limits.passwordHashQueue
        authenticator = LocalAuthenticator(lookup: StorePasswordLookup(database: database), settings: authSettings)
    }

    /// The addresses actually bound, by listener name (port 0 in the configuration becomes the real port).
    public internal(set) var boundAddresses: [String: HostPort] = [:]

    /// Binds every listener and starts the workers; throws (binding nothing further) if a listener cannot bind.
    public func start() throws {
        let interrupted = try database.markInterruptedJournalEntries()
        if !interrupted.isEmpty {
            logger.warning(
                "journal entries whose fate is unknown after an interruption: \(interrupted.map(String.init).joined(separator: ", ")); `mailgate journal verify` lists them")
        }
        raiseDescriptorLimit()
        recorder.start()
        try startAdmin()
        journalCheckpointer = Self.startJournalCheckpoints(configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        let listen = configuration.listen
        tls = try serverTLS()
        for (name, spec, implicitTLS) in [("smtp", listen.smtp, false), ("smtps", listen.smtps, true)] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let gateway = try startSMTPListener(name, address, implicitTLS: implicitTLS, configuration: configuration)
            smtpGateways[name] = gateway
            boundAddresses[name] = gateway.boundAddress
            logger.notice("\(name) listener on \(gateway.boundAddress)")
        }
        for (name, spec, implicitTLS) in [("imap", listen.imap, false), ("imaps", listen.imaps, true)] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let gateway = try startIMAPListener(name, address, implicitTLS: implicitTLS, configuration: configuration)
            imapGateways[name] = gateway
            boundAddresses[name] = gateway.boundAddress
            logger.notice("\(name) listener on \(gateway.boundAddress)")
        }
        if localMaildrops == nil {
            // POP3 clients of imap-download accounts read the local store (while forbid_manual_refresh is on).
            localMaildrops = DownloadMaildropProvider(
                live: live, configuration: configuration, database: database, stateDirectory: stateDirectory)
        }
        for (name, gateway) in try Self.makePOP3Gateways(
            configuration: configuration, tls: tls, authenticator: authenticator, live: live,
            counters: counters, localMaildrops: localMaildrops, imapSessionCap: sessionCap, logger: logger)
        {
            pop3Gateways.append(gateway)
            boundAddresses[name] = gateway.boundAddress
        }
        startRefreshers()
        startDownloads(database: database, stateDirectory: stateDirectory)
    }

    /// Stops accepting; with `drain`, sessions finish the message in flight. Waits at most `timeout` seconds.
    public func stop(drain: Bool, timeout: Double = 30) {
        for gateway in smtpGateways.values { gateway.stop(drain: drain) }
        for gateway in imapGateways.values { gateway.stop() }
        for gateway in pop3Gateways { gateway.stop() }
        for task in refreshers { task.cancel() }
        stopDownloads()
        let deadline = Date().addingTimeInterval(timeout)
        while drain, smtpGateways.values.contains(where: { $0.activeSessionCount > 0 }), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        recorder.stop(timeout: max(1, deadline.timeIntervalSinceNow))
        journalCheckpointer?.stop()
        stopAdmin()
    }

    /// Binds one SMTP listener with `configuration`'s `[listen]` and `[limits]`; accounts and servers are read
    /// from the live directory per session.
    func startSMTPListener(
        _ name: String, _ address: HostPort, implicitTLS: Bool, configuration: MailGateConfiguration
    ) throws -> SMTPGateway {
        let listen = configuration.listen
        let relayNetworks = listen.relayNetworks
        return try SMTPGateway(
            listen: address, implicitTLS: implicitTLS, tls: tls,
            configuration: SMTPGatewayConfiguration(
                listenerName: name, hostname: hostname, allowPlaintext: listen.allowPlaintext,
                relayAccount: listen.relayAccount,
                isRelayClient: { ip in relayNetworks.contains { $0.contains(ipAddress: ip.description) } },
                limits: configuration.limits),
            authenticator: authenticator, credentials: live, recorder: recorder,
            resolver: makeResolver(ehloHostname: hostname), counters: counters, extensionsCache: extensions,
            sessionLimiter: sessionLimiter, logger: logger)
    }

    /// Binds one IMAP listener with `configuration`'s `[listen]` and `[limits]`.
    func startIMAPListener(
        _ name: String, _ address: HostPort, implicitTLS: Bool, configuration: MailGateConfiguration
    ) throws -> IMAPGateway {
        try IMAPGateway(
            listen: address, implicitTLS: implicitTLS, tls: tls,
            configuration: IMAPGatewayConfiguration(
                listenerName: name, allowPlaintext: configuration.listen.allowPlaintext, limits: configuration.limits),
            authenticator: authenticator, credentials: live, resolver: makeIMAPResolver(), sessionCap: sessionCap,
            counters: counters, journal: StoreSentJournal(database: database), logger: logger,
            sentCopyCanceller: recorder.service)
    }

    /// The server-side TLS context from `certificate` / `private_key`, if configured.
    private func serverTLS() throws -> TLSContext? {
        guard let certificate = configuration.listen.certificate, let key = configuration.listen.privateKey else {
            return nil
        }
        return try TLSContext.server(certificateChainFile: certificate, privateKeyFile: key)
    }

    /// Account → upstream SMTP settings and sent-mail policy, read from the store and configuration per session.
    private func makeResolver(ehloHostname: String) -> SMTPUpstreamResolver {
        let live = live
        return { email in
            let directory = live.directory
            guard let account = try? directory.account(email), let server = try? directory.server(for: account),
                let endpoint = AccountDirectory.smtpEndpoint(server)
            else { return nil }
            let domain = account.email.split(separator: "@").last.map(String.init) ?? "localhost"
            let policy = SentMailPolicy(
                lockAfterSend: server.lockAfterSend, sentCopy: SentCopyMode(rawValue: server.sentCopy.rawValue) ?? .auto,
                sentFolder: server.sentFolder, messageIDDomain: domain, imap: AccountDirectory.imapEndpoint(server))
            return SMTPUpstreamSettings(
                server: endpoint.address, security: .init(endpoint.security), allowInsecure: server.allowInsecureUpstream,
                caFile: endpoint.caFile,
                ehloHostname: ehloHostname, authenticate: server.smtpAuth, sentMailPolicy: policy)
        }
    }

    /// Account → upstream IMAP settings and folder policy, read from the store and configuration per login.
    private func makeIMAPResolver() -> IMAPUpstreamResolver {
        let live = live
        return { email in
            let directory = live.directory
            guard let account = try? directory.account(email), let server = try? directory.server(for: account),
                let endpoint = AccountDirectory.imapEndpoint(server)
            else { return nil }
            var settings = IMAPAccountSettings(
                endpoint: endpoint, allowInsecureUpstream: server.allowInsecureUpstream,
                lockAfterSend: server.lockAfterSend, sentFolder: server.sentFolder, trashFolder: server.trashFolder,
                spamFolder: server.spamFolder, showSentFolder: server.showSentFolder)
            settings.clientSentName = server.imapSentName
            settings.clientTrashName = server.imapTrashName
            settings.clientJunkName = server.imapSpamName
            settings.sentCopy = SentCopyMode(rawValue: server.sentCopy.rawValue) ?? .auto
            return settings
        }
    }

    /// One background refresher per `[oauth]`, over the connected accounts of the servers that use it.
    private func startRefreshers() {
        for (oauthName, service) in directory.tokenServices {
            let database = database
            let servers = Set(configuration.servers.values.filter { $0.oauth == oauthName }.map(\.name))
            let refresher = BackgroundRefresher(
                service: service,
                accounts: {
                    let accounts = (try? database.accounts()) ?? []
                    return accounts.filter { servers.contains($0.serverName) }.map(\.email)
                }, logger: logger)
            refreshers.append(Task { await refresher.run() })
        }
    }
}

/// The account directory in force, swapped whole by a reload: every session resolves its account and server
/// through it at login, so a reloaded `[server]` applies to the next login without rebinding any listener.
final class LiveDirectory: UpstreamCredentials {
    private let current: Mutex<AccountDirectory>

    init(_ directory: AccountDirectory) { current = Mutex(directory) }

    var directory: AccountDirectory {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    var configuration: MailGateConfiguration { directory.configuration }

    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>) {
        try await directory.xoauth2(for: account)
    }

    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws
        -> (user: String, token: Redacted<String>)
    {
        try await directory.xoauth2AfterRejection(for: account, rejected: rejected)
    }
}
