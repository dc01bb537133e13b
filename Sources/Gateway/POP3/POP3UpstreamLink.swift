// Gateway: the login half of a relayed POP3 session (incoming = "pop3"): connect, STLS, AUTH XOAUTH2 on the
// session's queue; afterwards the session owns the connection's bytes.
import Dispatch
import MailCore
import POP3
import TLS
import Transport

/// One connection to the account's upstream POP3 server, driven by `POP3UpstreamClient` until AUTH XOAUTH2 is
/// accepted (two steps: Exchange wants `AUTH XOAUTH2`, `+`, then the base64 line; RFC 5034's 255 octets rule out
/// an initial response anyway). Then `.ready`; from there on `connection` is the session's. All on `queue`.
final class POP3UpstreamLink: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is used only on `queue` (the session's).
    enum Event {
        /// Supply the XOAUTH2 raw response with `supplyToken(_:)`.
        case needToken
        /// Logged in; bytes that arrived behind the `+OK` are in `leftover`.
        case ready(leftover: [UInt8])
        /// The server refused the token (its `-ERR` reply).
        case authenticationFailed(POP3Reply)
        /// Finished before `.ready`; safe-to-log text.
        case ended(reason: String)
    }

    let account: String
    let endpoint: UpstreamEndpoint
    private let queue: DispatchQueue
    private let limits: Limits
    private let tlsContexts: UpstreamTLSContexts
    private var client: POP3UpstreamClient
    private(set) var connection: Connection?
    private var done = false
    private var awaitingToken = false
    var onEvent: ((Event) -> Void)?

    init(account: String, endpoint: UpstreamEndpoint, queue: DispatchQueue, limits: Limits, tlsContexts: UpstreamTLSContexts) {
        self.account = account
        self.endpoint = endpoint
        self.queue = queue
        self.limits = limits
        self.tlsContexts = tlsContexts
        self.client = POP3UpstreamClient(limits: POP3Limits(limits: limits))
    }

    func open() {
        if endpoint.security == .none && !endpoint.allowInsecure {
            queue.async { [self] in finish("pop3_security = \"none\" needs allow_insecure_upstream = true") }
            return
        }
        var tls: TLSContext?
        if endpoint.security == .tls {
            do throws(TLSError) {
                tls = try tlsContexts.context(caFile: endpoint.caFile)
            } catch {
                queue.async { [self] in finish(error.description) }
                return
            }
        }
        Connection.connect(
            to: endpoint.address, on: queue, timeout: limits.connectTimeoutSeconds, tls: tls,
            serverName: endpoint.serverName, limits: limits
        ) { [self] result in
            switch result {
            case .failure(let error):
                finish(error.description)
            case .success(let connection):
                guard !done else { return connection.close() }
                self.connection = connection
                connection.readMode = .raw
                connection.onEvent = { [self] event in connectionEvent(event) }
                connection.setIdleTimeout(seconds: limits.connectTimeoutSeconds)
                connection.start()
            }
        }
    }

    func supplyToken(_ response: Redacted<[UInt8]>) {
        guard awaitingToken, !done else { return }
        awaitingToken = false
        do throws(POP3Error) {
            perform(try client.authenticate(mechanism: "XOAUTH2", response: response))
        } catch {
            finish(error.description)
        }
    }

    /// Ends now (before `.ready`); no further events.
    func close() {
        done = true
        onEvent = nil
        connection?.close()
    }

    private func connectionEvent(_ event: ConnectionEvent) {
        switch event {
        case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
            perform(client.receive(bytes))
        case .closed(let error):
            finish(error?.description ?? "the upstream POP3 server closed the connection")
        case .idleTimeout:
            finish("the upstream POP3 server was silent for too long")
        case .writable, .lineTooLong:
            break
        }
    }

    private func perform(_ actions: [POP3UpstreamClient.Action]) {
        for action in actions {
            guard !done else { return }
            switch action {
            case .send(let bytes):
                connection?.write(bytes)
            case .greeting:
                if endpoint.security == .starttls {
                    do throws(POP3Error) { perform(try client.send(.stls)) } catch { finish(error.description) }
                } else {
                    askToken()
                }
            case .completed(.stls, let reply):
                guard reply.status == .ok else {
                    return finish("the upstream refused STLS (\(sanitizeForLog(reply.text))); check pop3_security")
                }
                startTLS()
            case .completed(.auth, let reply):
                if reply.status == .ok {
                    done = true
                    connection?.setIdleTimeout(seconds: nil)
                    let handler = onEvent
                    onEvent = nil
                    connection?.onEvent = nil
                    handler?(.ready(leftover: []))
                } else {
                    let handler = onEvent
                    done = true
                    onEvent = nil
                    connection?.close()
                    handler?(.authenticationFailed(reply))
                }
                return
            case .sessionEnded(let reason):
                return finish("the upstream ended the session (\(reason))")
            case .protocolViolation(let reason):
                return finish("the upstream broke the protocol: \(sanitizeForLog(reason))")
            case .completed, .multilineBegan, .multilineData, .multilineEnded, .authenticationErrorDetails:
                continue
            }
        }
    }

    private func askToken() {
        awaitingToken = true
        onEvent?(.needToken)
    }

    private func startTLS() {
        guard let connection else { return }
        let context: TLSContext
        do throws(TLSError) {
            context = try tlsContexts.context(caFile: endpoint.caFile)
        } catch {
            return finish(error.description)
        }
        connection.startTLS(context: context, serverName: endpoint.serverName) { [self] error in
            if let error { return finish(error.description) }
            askToken()
        }
    }

    private func finish(_ reason: String) {
        guard !done else { return }
        done = true
        connection?.close()
        let handler = onEvent
        onEvent = nil
        handler?(.ended(reason: reason))
    }
}
