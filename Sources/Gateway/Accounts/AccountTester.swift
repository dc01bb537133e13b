// Gateway: `mailgate account test`, the manual's "test for the email configuration".
import MailCore
import SASL
import SMTP
import IMAP
import POP3
import Transport
import Dispatch
import Policy

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

    /// EHLO, STARTTLS (per the endpoint), EHLO, AUTH XOAUTH2 in two steps, QUIT, driven by `SMTPUpstreamLink`:
    /// the same driver that relays mail, so the test exercises exactly what a client's login will.
    func testSMTP(_ endpoint: UpstreamEndpoint, user: String, token: Redacted<String>) async -> Step {
        let name = "smtp \(endpoint.address)"
        let settings = SMTPUpstreamSettings(
            server: endpoint.address, security: .init(endpoint.security), allowInsecure: endpoint.allowInsecure, caFile: endpoint.caFile,
            ehloHostname: plan.ehloHostname,
            sentMailPolicy: SentMailPolicy(lockAfterSend: false, sentCopy: .never, messageIDDomain: plan.ehloHostname, imap: nil))
        let limits = {
            var limits = Limits.standard
            limits.connectTimeoutSeconds = plan.timeout
            limits.idleTimeoutSeconds = plan.timeout
            return limits
        }()
        let queue = DispatchQueue(label: "mailgate.account-test.smtp")
        let outcome: SMTPLoginOutcome = await withCheckedContinuation { continuation in
            queue.async {
                let once = SMTPLoginOnce(continuation)
                let link: SMTPUpstreamLink
                do throws(SMTPUpstreamError) {
                    link = try SMTPUpstreamLink(
                        account: user, settings: settings, queue: queue, limits: limits, tlsContexts: UpstreamTLSContexts())
                } catch {
                    return once.resume(.failed("\(error)"))
                }
                link.onEvent = { [link] event in
                    switch event {
                    case .needToken:
                        do {
                            link.supplyToken(try XOAuth2.initialResponse(user: user, accessToken: token))
                        } catch {
                            once.resume(.failed("\(error)"))
                            link.close()
                        }
                    case .ready:
                        once.resume(.accepted)
                        link.quit()
                    case .authenticationFailed(let reply):
                        once.resume(.refused(reply))
                        link.quit()
                    case .ended(let reason):
                        once.resume(.failed(reason ?? "the upstream server closed the connection"))
                    case .replyForClient, .writable:
                        break
                    }
                }
                link.open()
            }
        }
        switch outcome {
        case .accepted:
            return Step(name: name, passed: true, detail: "AUTH XOAUTH2 accepted")
        case .refused(let reply):
            return Step(name: name, passed: false, detail: "AUTH XOAUTH2 refused: \(Self.text(of: reply))", refusedLogin: true)
        case .failed(let reason):
            return Step(name: name, passed: false, detail: reason)
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

/// How an SMTP login test ended.
private enum SMTPLoginOutcome: Sendable {
    case accepted
    case refused(SMTPReply)
    case failed(String)
}

/// Resumes the test's continuation with the first outcome only (the link reports `.ended` after every other).
private final class SMTPLoginOnce: @unchecked Sendable {
    // @unchecked Sendable: used only on the test's serial queue.
    private var continuation: CheckedContinuation<SMTPLoginOutcome, Never>?

    init(_ continuation: CheckedContinuation<SMTPLoginOutcome, Never>) { self.continuation = continuation }

    func resume(_ outcome: SMTPLoginOutcome) {
        continuation?.resume(returning: outcome)
        continuation = nil
    }
}
