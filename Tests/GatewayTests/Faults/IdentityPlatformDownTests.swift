// GatewayTests/Faults: the identity platform is down while an SMTP login needs a token refresh (issue 13 point 3).
// A real TokenService over the real HTTPS token endpoint client, pointed at a loopback port nobody listens on: the
// token in hand is used until it expires (the message goes out), then the client gets a clear temporary error.
import Dispatch
import Foundation
import Logging
import MailCore
import MailGateTesting
import Policy
import OAuth
import Synchronization
import SMTP
import Testing
import Transport

@testable import Gateway

/// A token store in memory (the vault is covered elsewhere).
private actor MemoryTokenStore: TokenStore {
    var tokens: [String: StoredToken]
    init(_ tokens: [String: StoredToken]) { self.tokens = tokens }
    func load(account: String) async throws -> StoredToken? { tokens[account] }
    func save(account: String, token: StoredToken) async throws { tokens[account] = token }
    func markNeedsReconnect(account: String, reason: String) async throws { tokens[account]?.needsReconnect = true }
}

/// `UpstreamCredentials` over a `TokenService`, as `AccountDirectory` does it (user = the account).
private struct ServiceCredentials: UpstreamCredentials {
    let service: TokenService
    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>) {
        (account, try await service.accessToken(for: account))
    }
    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws
        -> (user: String, token: Redacted<String>)
    {
        (account, try await service.forceRefresh(for: account, rejectedToken: rejected))
    }
}

/// A loopback port with nothing listening (bound, then closed).
private func closedPort() throws -> Int {
    let listener = try Listener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil) { $0.close() }
    let port = listener.boundAddress.port
    listener.close()
    return port
}

@Suite("Faults: the identity platform down during a token refresh", .serialized)
struct IdentityPlatformDownTests {
    @Test("a token inside the refresh margin is used while the token endpoint is down; past its expiry AUTH gets 454 4.7.0")
    func cachedTokenThenTemporaryError() async throws {
        let start = Date()
        let offset = Mutex<TimeInterval>(0)
        let account = "alice@contoso.com"
        // 200 s left: inside the 300 s margin, so every login tries a refresh first — and the endpoint is down.
        let store = MemoryTokenStore([
            account: StoredToken(
                accessToken: Redacted("token-1"), refreshToken: Redacted("refresh-1"),
                expiresAt: start.addingTimeInterval(200), scope: nil, issuedAt: start.addingTimeInterval(-3_400))
        ])
        let settings = OAuthProviderSettings(
            authority: "https://127.0.0.1:\(try closedPort())", tenant: "contoso.onmicrosoft.com", clientID: "app",
            scopes: ["https://outlook.office.com/SMTP.Send", "offline_access"])
        let service = TokenService(
            client: OAuthClient(settings: settings, endpoint: try HTTPSTokenEndpoint(caFile: nil, timeout: 5)),
            store: store, logger: Logger(label: "mailgate.test.oauth"),
            now: { start.addingTimeInterval(offset.withLock { $0 }) }, sleep: { _ in })
        let upstream = try FakeSMTPUpstream()
        defer { upstream.stop() }
        let passwords = InMemoryPasswords([account: InMemoryPasswords.secretHash])
        var authSettings = LocalAuthenticator.Settings()
        authSettings.initialFailureDelay = 0.05
        let caFile = upstream.certificates.caFile
        let address = upstream.address
        let recorder = FakeRecorder()
        let gateway = try SMTPGateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: false, tls: nil,
            configuration: SMTPGatewayConfiguration(
                listenerName: "smtp", hostname: "mailgate.test", relayAccount: nil, isRelayClient: { _ in false }),
            authenticator: LocalAuthenticator(lookup: passwords, settings: authSettings),
            credentials: ServiceCredentials(service: service), recorder: recorder,
            resolver: { _ in
                SMTPUpstreamSettings(
                    server: address, security: .starttls, caFile: caFile, serverName: "localhost",
                    ehloHostname: "mailgate.test",
                    sentMailPolicy: SentMailPolicy(
                        lockAfterSend: true, sentCopy: .never, messageIDDomain: "contoso.test", imap: nil))
            }, logger: Logger(label: "mailgate.test.smtp"))
        defer { gateway.stop(drain: false) }

        // 1. The refresh fails (connection refused, retried), the token in hand is still valid: it is used.
        let first = try await RawClient(gateway.boundAddress)
        defer { first.close() }
        #expect(try await first.login(password: "secret") == "235 2.7.0 Authentication successful")
        try await first.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        for expected in ["250", "250", "354"] { #expect(try await first.reply()?.hasPrefix(expected) == true) }
        try await first.send("Subject: during the outage\r\n\r\nstill sent\r\n.\r\n")
        #expect(try await first.reply()?.hasPrefix("250 ") == true)
        #expect(upstream.snapshot.authentications.map(\.token) == ["token-1"])
        #expect(upstream.snapshot.messages.count == 1)

        // 2. 180 s later the token has 20 s left (below the 30 s it must have): a clear temporary error, no upstream.
        offset.withLock { $0 = 180 }
        let second = try await RawClient(gateway.boundAddress)
        defer { second.close() }
        let reply = try await second.login(password: "secret")
        #expect(
            reply
                == "454 4.7.0 Temporary authentication failure: the Microsoft sign-in service is unavailable; try again later",
            "\(reply ?? "nil")")
        #expect(upstream.snapshot.authentications.count == 1, "no upstream login with an expiring token")
        #expect(!recorder.kinds.contains("commit") || upstream.snapshot.messages.count == 1)
        // The account was not marked as needing a reconnect: an outage is not a revoked sign-in.
        #expect(await store.tokens[account]?.needsReconnect == false)
    }
}
