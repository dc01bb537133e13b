// Gateway: `mailgate account test`, the manual's "test for the email configuration".
import MailCore
import SASL
import SMTP
import IMAP
import POP3
import Transport

/// Logs in to every upstream service of one account the way the gateway will, one step at a time.
///
/// Each step yields one line for the administrator: what was tested, and on failure the upstream's own reply
/// (sanitized), so that "535 5.7.139 … SmtpClientAuthentication is disabled" reaches the person who can fix it.
public struct AccountTester: Sendable {
    /// The outcome of one step.
    public struct Step: Sendable, Equatable {
        public var name: String
        public var passed: Bool
        public var detail: String
        /// The server refused the token itself (not a network or TLS problem): worth one forced refresh.
        var refusedLogin = false
    }

    /// The services to test.
    public struct Plan: Sendable {
        public var smtp: UpstreamEndpoint?
        public var incoming: Incoming?
        public var ehloHostname: String
        public var timeout: Double

        public enum Incoming: Sendable {
            case imap(UpstreamEndpoint)
            case pop3(UpstreamEndpoint)
        }

        public init(smtp: UpstreamEndpoint?, incoming: Incoming?, ehloHostname: String, timeout: Double = 30) {
            self.smtp = smtp
            self.incoming = incoming
            self.ehloHostname = ehloHostname
            self.timeout = timeout
        }
    }

    public let plan: Plan
    public let credentials: any UpstreamCredentials

    public init(plan: Plan, credentials: any UpstreamCredentials) {
        self.plan = plan
        self.credentials = credentials
    }

    /// Runs every step, reporting each as it finishes; true when all passed.
    public func run(account: String, report: @Sendable (Step) -> Void) async -> Bool {
        let identity: (user: String, token: Redacted<String>)
        do {
            identity = try await credentials.xoauth2(for: account)
            report(Step(name: "token", passed: true, detail: "an access token for \(identity.user) is ready"))
        } catch {
            report(Step(name: "token", passed: false, detail: "\(error)"))
            return false
        }
        var current = identity
        var allPassed = true
        var steps: [@Sendable (String, Redacted<String>) async -> Step] = []
        if let smtp = plan.smtp { steps.append { await testSMTP(smtp, user: $0, token: $1) } }
        switch plan.incoming {
        case .imap(let endpoint): steps.append { await testIMAP(endpoint, user: $0, token: $1) }
        case .pop3(let endpoint): steps.append { await testPOP3(endpoint, user: $0, token: $1) }
        case nil: break
        }
        for step in steps {
            var outcome = await step(current.user, current.token)
            if !outcome.passed, outcome.refusedLogin {
                // A token that looks valid can still be revoked: refresh once, forcibly, and try again before
                // reporting, as the gateway does.
                do {
                    current = try await credentials.xoauth2AfterRejection(for: account, rejected: current.token)
                    outcome = await step(current.user, current.token)
                } catch {
                    outcome.detail += "; refreshing the token failed too: \(error)"
                }
            }
            report(outcome)
            allPassed = allPassed && outcome.passed
        }
        return allPassed
    }

    // MARK: - SMTP

    /// EHLO, STARTTLS (per the endpoint), EHLO, AUTH XOAUTH2 in two steps, QUIT.
    func testSMTP(_ endpoint: UpstreamEndpoint, user: String, token: Redacted<String>) async -> Step {
        let name = "smtp \(endpoint.address)"
        do {
            var machine = try SMTPUpstreamSide(
                configuration: .init(
                    ehloHostname: plan.ehloHostname, security: .init(endpoint.security),
                    allowInsecure: endpoint.allowInsecure))
            let connection = try await endpoint.connect(timeout: plan.timeout)
            defer { connection.close() }
            var parser = SMTPReplyParser()
            var pending: [SMTPUpstreamSide.Action] = []
            var quitSent = false
            while true {
                if pending.isEmpty {
                    let line = try await connection.readLine(maximumLength: Limits.standard.upstreamLine)
                    guard let reply = try parser.feed(line: line) else { continue }
                    pending = machine.handle(.reply(reply))
                }
                let action = pending.removeFirst()
                switch action {
                case .send(let bytes):
                    try await connection.write(bytes)
                case .sendSecret(let secret):
                    try await connection.write(secret.revealed)
                case .startTLS:
                    try await connection.startTLS(context: try endpoint.tlsContext(), serverName: endpoint.serverName)
                    pending += machine.handle(.tlsEstablished)
                case .needToken:
                    pending += machine.handle(.token(try XOAuth2.initialResponse(user: user, accessToken: token)))
                case .ready:
                    if !quitSent {
                        quitSent = true
                        pending += machine.handle(.quit)
                        return Step(name: name, passed: true, detail: "AUTH XOAUTH2 accepted")
                    }
                case .authenticationFailed(let reply):
                    return Step(name: name, passed: false, detail: "AUTH XOAUTH2 refused: \(Self.text(of: reply))", refusedLogin: true)
                case .failed(let error):
                    return Step(name: name, passed: false, detail: "\(error)")
                case .replyForClient, .close:
                    return Step(name: name, passed: true, detail: "AUTH XOAUTH2 accepted")
                }
            }
        } catch {
            return Step(name: name, passed: false, detail: "\(error)")
        }
    }

    // MARK: - IMAP

    /// AUTHENTICATE XOAUTH2 (SASL-IR when offered), LOGOUT.
    func testIMAP(_ endpoint: UpstreamEndpoint, user: String, token: Redacted<String>) async -> Step {
        let name = "imap \(endpoint.address)"
        if let refusal = Self.plaintextRefusal(endpoint, key: "imap_security") {
            return Step(name: name, passed: false, detail: refusal)
        }
        do {
            let session = try await IMAPUpstreamSession.open(endpoint, timeout: plan.timeout)
            defer { session.close() }
            let result = try await session.authenticateXOAuth2(user: user, token: token)
            guard result.status == .ok else {
                return Step(name: name, passed: false, detail: "AUTHENTICATE XOAUTH2 refused: \(Self.text(of: result))", refusedLogin: true)
            }
            try? await session.logout()
            return Step(name: name, passed: true, detail: "AUTHENTICATE XOAUTH2 accepted")
        } catch {
            return Step(name: name, passed: false, detail: "\(error)")
        }
    }

    // MARK: - POP3

    /// AUTH XOAUTH2 in two steps, QUIT.
    func testPOP3(_ endpoint: UpstreamEndpoint, user: String, token: Redacted<String>) async -> Step {
        let name = "pop3 \(endpoint.address)"
        if let refusal = Self.plaintextRefusal(endpoint, key: "pop3_security") {
            return Step(name: name, passed: false, detail: refusal)
        }
        do {
            let connection = try await endpoint.connect(timeout: plan.timeout)
            defer { connection.close() }
            var client = POP3UpstreamClient()
            var greeted = false
            var authenticated = false
            var pending: [POP3UpstreamClient.Action] = []
            while true {
                if pending.isEmpty {
                    guard let bytes = try await connection.readAvailable() else {
                        pending = client.connectionClosed()
                        if pending.isEmpty { throw TransportError.closedByPeer }
                        continue
                    }
                    pending = client.receive(bytes)
                    continue
                }
                switch pending.removeFirst() {
                case .send(let bytes):
                    try await connection.write(bytes)
                case .greeting:
                    greeted = true
                    if endpoint.security == .starttls {
                        pending += try client.send(.stls)
                    } else {
                        let response = try XOAuth2.rawResponse(user: user, accessToken: token)
                        pending += try client.authenticate(mechanism: "XOAUTH2", response: response)
                    }
                case .completed(.stls, let reply):
                    guard reply.status == .ok else {
                        return Step(name: name, passed: false, detail: "STLS refused: \(sanitizeForLog(reply.text))")
                    }
                    try await connection.startTLS(context: try endpoint.tlsContext(), serverName: endpoint.serverName)
                    let response = try XOAuth2.rawResponse(user: user, accessToken: token)
                    pending += try client.authenticate(mechanism: "XOAUTH2", response: response)
                case .completed(.auth, let reply):
                    guard reply.status == .ok else {
                        return Step(name: name, passed: false, detail: "AUTH XOAUTH2 refused: -ERR \(sanitizeForLog(reply.text))", refusedLogin: true)
                    }
                    authenticated = true
                    pending += try client.send(.quit)
                case .completed(.quit, _), .sessionEnded(.quit):
                    if authenticated { return Step(name: name, passed: true, detail: "AUTH XOAUTH2 accepted") }
                case .sessionEnded(let reason):
                    if authenticated { return Step(name: name, passed: true, detail: "AUTH XOAUTH2 accepted") }
                    return Step(name: name, passed: false, detail: greeted ? "the server ended the session (\(reason))" : "no greeting (\(reason))")
                case .protocolViolation(let reason):
                    return Step(name: name, passed: false, detail: "protocol violation: \(reason)")
                case .completed, .multilineBegan, .multilineData, .multilineEnded, .authenticationErrorDetails:
                    continue
                }
            }
        } catch {
            return Step(name: name, passed: false, detail: "\(error)")
        }
    }

    /// The test logs in exactly as the gateway would, so it honours the same guard: no plaintext upstream unless
    /// the server's `allow_insecure_upstream` says so (the SMTP machine checks this itself).
    static func plaintextRefusal(_ endpoint: UpstreamEndpoint, key: String) -> String? {
        guard endpoint.security == .none, !endpoint.allowInsecure else { return nil }
        return "\(key) is \"none\" but allow_insecure_upstream is not true; use \"starttls\" or \"tls\", or allow it "
            + "explicitly."
    }

    static func text(of reply: SMTPReply) -> String {
        sanitizeForLog(String(decoding: reply.encode().dropLast(2), as: UTF8.self), maximumLength: 300)
    }

    static func text(of response: TaggedResponse) -> String {
        sanitizeForLog("\(response.status) \(response.text)", maximumLength: 300)
    }
}
