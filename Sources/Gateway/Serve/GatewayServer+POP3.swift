// Gateway: building the POP3 listeners of `mailgate serve` (kept out of GatewayServer.swift, a shared file).
import Config
import Logging
import TLS
import Transport

extension GatewayServer {
    /// One POP3Gateway per configured `pop3` / `pop3s` listener, named by listener. Accounts, servers and tokens are
    /// read from `live` per login, so a SIGHUP's `[server]` changes reach POP3 like SMTP and IMAP.
    static func makePOP3Gateways(
        configuration: MailGateConfiguration, tls: TLSContext?, authenticator: LocalAuthenticator,
        live: LiveDirectory, counters: any GatewayCounters, localMaildrops: (any LocalMaildropProvider)?,
        imapSessionCap: IMAPUpstreamSessionCap?, logger: Logger
    ) throws -> [(name: String, gateway: POP3Gateway)] {
        let listen = configuration.listen
        let locks = POP3MaildropLocks()
        let resolver = makePOP3Resolver(live: live)
        var gateways: [(name: String, gateway: POP3Gateway)] = []
        for (name, spec, implicitTLS) in [("pop3", listen.pop3, false), ("pop3s", listen.pop3s, true)] {
            guard let spec, let address = HostPort(host: spec.host, port: spec.port) else { continue }
            let gateway = try POP3Gateway(
                listen: address, implicitTLS: implicitTLS, tls: tls,
                configuration: POP3GatewayConfiguration(
                    listenerName: name, allowPlaintext: listen.allowPlaintext, limits: configuration.limits),
                authenticator: authenticator, credentials: live, resolver: resolver,
                localMaildrops: localMaildrops, locks: locks, imapSessionCap: imapSessionCap, counters: counters,
                logger: logger)
            gateways.append((name, gateway))
            logger.notice("\(name) listener on \(gateway.boundAddress)")
        }
        return gateways
    }

    /// Account → where its POP3 sessions are served from: the server's POP3 (incoming = "pop3") or its INBOX over
    /// IMAP (incoming = "imap" / "imap-download"; the local store, when it serves the account, is asked first).
    /// The directory in force is read at each call (a reload swaps it).
    static func makePOP3Resolver(live: LiveDirectory) -> POP3UpstreamResolver {
        return { email in
            let directory = live.directory
            guard let account = try? directory.account(email), let server = try? directory.server(for: account) else {
                return nil
            }
            switch server.incoming {
            case .pop3:
                return server.pop3.flatMap {
                    AccountDirectory.endpoint($0, server.pop3Security, server.caFile, allowInsecure: server.allowInsecureUpstream)
                }.map { POP3AccountSettings(source: .pop3($0)) }
            case .imap, .imapDownload:
                return AccountDirectory.imapEndpoint(server).map { POP3AccountSettings(source: .imap($0)) }
            }
        }
    }
}
