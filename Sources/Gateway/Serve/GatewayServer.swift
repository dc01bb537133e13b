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

/// The running gateway: SMTP and IMAP listeners relaying to Microsoft 365, refusal listeners for POP3 (not served
/// yet), the sent-copy worker and the background token refresher.
public final class GatewayServer: @unchecked Sendable {
    // @unchecked: the mutable parts (gateways, services, tasks) are set in start() and read in stop(), both
    // called from the main thread of `mailgate serve`; everything they hold is itself Sendable.
    public let configuration: MailGateConfiguration
    public let directory: AccountDirectory
    private let database: MailGateDatabase
    private let stateDirectory: String
    private let logger: Logger
    private let recorder: SentMailRecorder
    private let authenticator: LocalAuthenticator
    private var smtpGateways: [SMTPGateway] = []
    private var imapGateways: [IMAPGateway] = []
    private var unavailable: [UnavailableService] = []
    private var refreshers: [Task<Void, Never>] = []

    public init(configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String, logger: Logger)
        throws
    {
        self.configuration = configuration
        self.database = database
        self.stateDirectory = stateDirectory
        self.logger = logger
        directory = try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        recorder = SentMailRecorder(
            database: database, stateDirectory: stateDirectory, limits: configuration.limits, credentials: directory,
            logger: logger)
        var authSettings = LocalAuthenticator.Settings()
        authSettings.maximumWaitingVerifications = configuration.limits.passwordHashQueue
        authenticator = LocalAuthenticator(lookup: StorePasswordLookup(database: database), settings: authSettings)
    }

    /// The addresses actually bound, by listener name (port 0 in the configuration becomes the real port).
    public private(set) var boundAddresses: [String: HostPort] = [:]

    /// Binds every listener and starts the workers; throws (binding nothing further) if a listener cannot bind.
    public func start() throws {
        let interrupted = try database.markInterruptedJournalEntries()
        if !interrupted.isEmpty {
            logger.warning(
                "journal entries whose fate is unknown after an interruption: \(interrupted.map(String.init).joined(separator: ", ")); `mailgate journal verify` lists them")
        }
        recorder.start()
        let listen = configuration.listen
        let tls = try serverTLS()
        // Looked up once: the host name can cost a resolver call, and every session needs it.
        let hostname = ProcessInfo.processInfo.hostName
        let resolver = makeResolver(ehloHostname: hostname)
        let relayNetworks = listen.relayNetworks
        let counters = StoreCounters(database: database)
        let extensions = SMTPExtensionsCache(defaultMaximumSize: configuration.limits.messageSize)
        let sessionLimiter = SMTPSessionLimiter(limits: configuration.limits)
        for (name, spec, implicitTLS) in [("smtp", listen.smtp, false), ("smtps", listen.smtps, true)] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let gateway = try SMTPGateway(
                listen: address, implicitTLS: implicitTLS, tls: tls,
                configuration: SMTPGatewayConfiguration(
                    listenerName: name, hostname: hostname, allowPlaintext: listen.allowPlaintext,
                    relayAccount: listen.relayAccount,
                    isRelayClient: { ip in relayNetworks.contains { $0.contains(ipAddress: ip.description) } },
                    limits: configuration.limits),
                authenticator: authenticator, credentials: directory, recorder: recorder, resolver: resolver,
                counters: counters, extensionsCache: extensions, sessionLimiter: sessionLimiter, logger: logger)
            smtpGateways.append(gateway)
            boundAddresses[name] = gateway.boundAddress
            logger.notice("\(name) listener on \(gateway.boundAddress)")
        }
        let sessionCap = IMAPUpstreamSessionCap(maximum: configuration.limits.imapUpstreamSessions)
        let imapResolver = makeIMAPResolver()
        for (name, spec, implicitTLS) in [("imap", listen.imap, false), ("imaps", listen.imaps, true)] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let gateway = try IMAPGateway(
                listen: address, implicitTLS: implicitTLS, tls: tls,
                configuration: IMAPGatewayConfiguration(
                    listenerName: name, allowPlaintext: listen.allowPlaintext, limits: configuration.limits),
                authenticator: authenticator, credentials: directory, resolver: imapResolver, sessionCap: sessionCap,
                counters: counters, journal: StoreSentJournal(database: database), logger: logger,
                sentCopyCanceller: recorder.service as? any SentCopyCancelling)
            imapGateways.append(gateway)
            boundAddresses[name] = gateway.boundAddress
            logger.notice("\(name) listener on \(gateway.boundAddress)")
        }
        for (name, spec, implicitTLS, kind) in [
            ("pop3", listen.pop3, false, UnavailableService.Kind.pop3), ("pop3s", listen.pop3s, true, .pop3),
        ] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let service = try UnavailableService(
                kind: kind, address: address, tls: implicitTLS ? tls : nil, logger: logger)
            unavailable.append(service)
            boundAddresses[name] = service.boundAddress
        }
        startRefreshers()
    }

    /// Stops accepting; with `drain`, sessions finish the message in flight. Waits at most `timeout` seconds.
    public func stop(drain: Bool, timeout: Double = 30) {
        for gateway in smtpGateways { gateway.stop(drain: drain) }
        for service in unavailable { service.close() }
        for gateway in imapGateways { gateway.stop() }
        for task in refreshers { task.cancel() }
        let deadline = Date().addingTimeInterval(timeout)
        while drain, smtpGateways.contains(where: { $0.activeSessionCount > 0 }), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        recorder.stop(timeout: max(1, deadline.timeIntervalSinceNow))
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
        let directory = directory
        return { email in
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
        let directory = directory
        return { email in
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
