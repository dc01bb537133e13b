// OAuth: a one-shot HTTP listener on 127.0.0.1 that catches the browser's redirect with the authorization code.
import MailCore
import Synchronization
import Transport

/// Listens on `127.0.0.1:<free port>` for the redirect of one sign-in (RFC 8252 §7.3).
///
/// Microsoft is told `http://localhost:<port>/` (it ignores the port when matching loopback redirect URIs, so
/// registering `http://localhost` suffices). Requests for other paths (favicon, probes) get 404 and waiting
/// goes on, up to `maximumRequests` connections; the first request on `/` with a code or an error ends it.
public final class LoopbackRedirectReceiver: Sendable {
    /// The redirect URI to put in the authorize URL and, identically, in the code redemption.
    public let redirectURI: String
    /// The port actually bound.
    public let port: Int
    private let listener: AsyncListener

    /// Binds `127.0.0.1:port` (0: any free port).
    public init(port: Int = 0) throws(OAuthError) {
        guard let address = HostPort(host: "127.0.0.1", port: port) else {
            throw .loopbackFailed(reason: "port \(port) is not valid")
        }
        do {
            listener = try AsyncListener(address: address, tls: nil)
        } catch {
            throw .loopbackFailed(reason: "cannot listen on 127.0.0.1:\(port): \(error)")
        }
        self.port = listener.boundAddress.port
        self.redirectURI = "http://localhost:\(self.port)/"
    }

    /// Stops listening (also done when `waitForRedirect` returns or throws).
    public func close() { listener.close() }

    /// Waits for the redirect and checks it: the code on success, else `.authorizationDenied`, `.stateMismatch`,
    /// `.timedOut` after `timeout` seconds, or `.loopbackFailed` after `maximumRequests` useless connections.
    public func waitForRedirect(expectedState: String, timeout: Double = 300, maximumRequests: Int = 32)
        async throws(OAuthError) -> AuthorizationRedirect
    {
        let open = OpenConnections()
        let result = await withTaskGroup(of: Event.self) { group -> Result<AuthorizationRedirect, OAuthError> in
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1_000_000_000))
                return .timer
            }
            group.addTask { await self.acceptOne() }
            var accepted = 1
            var ignored = 0
            var outcome: Result<AuthorizationRedirect, OAuthError> = .failure(.timedOut(seconds: timeout))
            loop: for await event in group {
                switch event {
                case .timer:
                    if !Task.isCancelled { outcome = .failure(.timedOut(seconds: timeout)) }
                    break loop
                case .acceptFailed(let reason):
                    outcome = .failure(.loopbackFailed(reason: reason))
                    break loop
                case .accepted(let connection):
                    open.add(connection)
                    group.addTask {
                        let handled = await Self.handle(connection, expectedState: expectedState)
                        open.remove(connection)
                        return .handled(handled)
                    }
                    if accepted < maximumRequests {
                        accepted += 1
                        group.addTask { await self.acceptOne() }
                    }
                case .handled(.final(let final)):
                    outcome = final
                    break loop
                case .handled(.ignored):
                    ignored += 1
                    if ignored >= maximumRequests {
                        outcome = .failure(
                            .loopbackFailed(reason: "\(ignored) requests arrived without a sign-in response"))
                        break loop
                    }
                }
            }
            // Unblock every child: the pending accept, handlers reading from idle (pre-connected) sockets, the timer.
            listener.close()
            open.closeAll()
            group.cancelAll()
            return outcome
        }
        return try result.get()
    }

    private enum Event: Sendable {
        case timer
        case accepted(AsyncConnection)
        case acceptFailed(String)
        case handled(Handled)
    }

    private enum Handled: Sendable {
        case ignored
        case final(Result<AuthorizationRedirect, OAuthError>)
    }

    private func acceptOne() async -> Event {
        do {
            return .accepted(try await listener.accept())
        } catch {
            return .acceptFailed("accepting a connection failed: \(error)")
        }
    }

    /// Reads one request, answers it, and says whether it ended the sign-in.
    private static func handle(_ connection: AsyncConnection, expectedState: String) async -> Handled {
        var reader = HTTPMessageReader(limits: .redirectRequest) { () async throws(OAuthError) -> [UInt8]? in
            do throws(TransportError) {
                return try await connection.readAvailable()
            } catch {
                throw .loopbackFailed(reason: "reading the request failed")
            }
        }
        let head: HTTPRequestHead
        do {
            guard let read = try await reader.readRequestHead() else {
                connection.close()
                return .ignored
            }
            head = read
        } catch {
            await respond(connection, status: "400 Bad Request", message: "MailGate: this request could not be read.")
            return .ignored
        }
        let decision = RedirectDecision.decide(head: head, expectedState: expectedState)
        await respond(connection, status: decision.status, message: decision.message)
        return decision.outcome.map(Handled.final) ?? .ignored
    }

    /// Sends a small HTML page with `Connection: close`, then half-closes and waits briefly for the browser to close.
    private static func respond(_ connection: AsyncConnection, status: String, message: String) async {
        let body = Array(
            ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>MailGate</title></head>"
                + "<body><p>\(htmlEscape(message))</p></body></html>\n").utf8)
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            + "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
        let watchdog = Watchdog(seconds: 3) { connection.close() }
        do {
            try await connection.write(Array(head.utf8) + body)
            connection.shutdownWrite()
            var drained = 0
            while drained < 16, let bytes = try await connection.readAvailable() {
                drained += 1
                _ = bytes
            }
        } catch {
            // The browser went away first; nothing more to tell it.
        }
        watchdog.cancel()
        connection.close()
    }

    static func htmlEscape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// Connections being handled, so that they can all be closed when the wait ends.
private final class OpenConnections: Sendable {
    private let connections = Mutex<[ObjectIdentifier: AsyncConnection]>([:])

    func add(_ connection: AsyncConnection) { connections.withLock { $0[ObjectIdentifier(connection)] = connection } }
    func remove(_ connection: AsyncConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }
    func closeAll() {
        for connection in connections.withLock({ $0.values }) { connection.close() }
    }
}
