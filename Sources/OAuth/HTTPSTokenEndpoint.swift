// OAuth: a small HTTP/1.1 client for the token endpoint over Transport, with verified TLS and strict bounds.
import Synchronization
import TLS
import Transport

/// POSTs forms to the identity platform: one connection per request, `Connection: close`, bounded response.
///
/// Certificates are always verified against the system trust store plus `caFile`. Plain `http://` is refused
/// unless `allowInsecureLoopbackForTesting` is set and the host is loopback (the tests' stand-in servers).
public struct HTTPSTokenEndpoint: TokenEndpoint {
    private let tls: TLSContext
    /// Seconds for the whole exchange: connect, TLS handshake, request and response.
    public let timeout: Double
    /// Off by default; only tests set it, for servers on 127.0.0.1.
    public let allowInsecureLoopbackForTesting: Bool
    /// Bounds on what the server may send back.
    public let limits: HTTPLimits

    /// Uses the process's shared client context for `caFile` (system store plus `caFile`, parsed once); fails if
    /// `caFile` cannot be read.
    public init(
        caFile: String?, timeout: Double = 30, limits: HTTPLimits = .tokenResponse,
        allowInsecureLoopbackForTesting: Bool = false
    ) throws(OAuthError) {
        do {
            tls = try TLSContext.sharedClient(caFile: caFile)
        } catch {
            throw .invalidSettings(reason: "the TLS trust store for the token endpoint cannot be set up: \(error)")
        }
        self.timeout = timeout
        self.limits = limits
        self.allowInsecureLoopbackForTesting = allowInsecureLoopbackForTesting
    }

    public func post(url: String, form: [(String, String)]) async throws(OAuthError) -> HTTPResponse {
        try await exchange(url: url) { endpoint in Self.request(endpoint: endpoint, form: form) }
    }

    /// One request on a fresh connection to `url`'s host: `request` makes its bytes for the parsed URL.
    func exchange(url: String, request: (EndpointURL) -> [UInt8]) async throws(OAuthError) -> HTTPResponse {
        let endpoint = try EndpointURL(parsing: url, allowInsecureLoopback: allowInsecureLoopbackForTesting)
        guard let address = HostPort(host: endpoint.host, port: endpoint.port) else { throw .invalidURL(url: url) }
        let secure = endpoint.scheme == "https"
        let connection: AsyncConnection
        do {
            connection = try await AsyncConnection.connect(
                to: address, tls: secure ? tls : nil, serverName: secure ? endpoint.host : nil, timeout: timeout)
        } catch {
            throw .network(reason: Self.reason(error))
        }
        let watchdog = Watchdog(seconds: timeout) { connection.close() }
        defer {
            watchdog.cancel()
            connection.close()
        }
        do {
            try await connection.write(request(endpoint))
        } catch {
            throw watchdog.fired
                ? .network(reason: "no answer within \(Int(timeout)) seconds") : .network(reason: Self.reason(error))
        }
        var reader = HTTPMessageReader(limits: limits) { () async throws(OAuthError) -> [UInt8]? in
            do throws(TransportError) {
                return try await connection.readAvailable()
            } catch {
                throw .network(reason: Self.reason(error))
            }
        }
        do {
            return try await reader.readResponse()
        } catch {
            // The watchdog closing the socket shows up as an early end of stream; name the real cause.
            if watchdog.fired { throw .network(reason: "no answer within \(Int(timeout)) seconds") }
            throw error
        }
    }

    /// The request bytes: request line, headers, form body.
    static func request(endpoint: EndpointURL, form: [(String, String)]) -> [UInt8] {
        let body = Array(FormEncoding.encode(form).utf8)
        let head =
            "POST \(endpoint.target) HTTP/1.1\r\n"
            + "Host: \(endpoint.hostHeader)\r\n"
            + "Content-Type: application/x-www-form-urlencoded\r\n"
            + "Content-Length: \(body.count)\r\n"
            + "Accept: application/json\r\n"
            + "User-Agent: MailGate\r\n"
            + "Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// A short phrase for `OAuthError.network(reason:)`.
    static func reason(_ error: TransportError) -> String {
        switch error {
        case .connectFailed(let address, let why): return "connecting to \(address) failed: \(why)"
        case .timedOut(let what): return "timed out \(what)"
        case .tls(let tlsError): return "TLS: \(tlsError)"
        case .closedByPeer, .connectionClosed: return "the server closed the connection"
        case .io(let why): return why
        default: return "\(error)"
        }
    }
}

/// Runs `action` once after `seconds` unless cancelled first; tells afterwards whether it ran.
final class Watchdog: Sendable {
    private final class State: Sendable {
        let flags = Mutex<(fired: Bool, cancelled: Bool)>((false, false))
    }

    private let state = State()
    private let task: Task<Void, Never>

    init(seconds: Double, action: @escaping @Sendable () -> Void) {
        let state = self.state
        task = Task {
            try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1_000_000_000))
            let run = state.flags.withLock { flags -> Bool in
                if flags.cancelled { return false }
                flags.fired = true
                return true
            }
            if run { action() }
        }
    }

    /// True once the action has run.
    var fired: Bool { state.flags.withLock { $0.fired } }

    /// Stops the timer; the action will not run if it has not already.
    func cancel() {
        state.flags.withLock { $0.cancelled = true }
        task.cancel()
    }
}
