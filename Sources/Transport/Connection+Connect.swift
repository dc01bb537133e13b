// Transport: outbound connections: resolve, non-blocking connect with a deadline, optional TLS handshake.

#if canImport(Glibc)
    import Glibc
#endif
public import Dispatch
public import MailCore
public import TLS

extension Connection {
    /// Opens a TCP connection to `target` (and, with `tls`, completes the TLS handshake) within `timeout` seconds.
    ///
    /// IP literals connect at once; host names are resolved with `getaddrinfo` on a global queue, never on
    /// `queue`. Each resolved address is tried in turn until one answers. `completion` runs once, on `queue`,
    /// with a connection that is connected but not started: set `onEvent`, then call `start()`.
    /// Pass the session's queue to put an upstream connection on the same queue as its client connection.
    ///
    /// - Parameters:
    ///   - tls: a client context to speak TLS from the first byte (implicit TLS, e.g. port 993), or nil.
    ///   - serverName: the name the certificate must match (and SNI); defaults to `target.host`.
    public static func connect(
        to target: HostPort, on queue: DispatchQueue, timeout: Double, tls: TLSContext? = nil,
        serverName: String? = nil, limits: Limits = .standard,
        completion: @escaping (Result<Connection, TransportError>) -> Void
    ) {
        let attempt = ConnectAttempt(
            target: target, queue: queue, tls: tls, serverName: serverName ?? target.host, limits: limits,
            completion: completion)
        queue.async { attempt.begin(timeout: timeout) }
    }
}

/// One outbound connect: tries each address in turn under one deadline, then the TLS handshake.
private final class ConnectAttempt: @unchecked Sendable {
    // @unchecked Sendable: created on the caller's thread, then used only on `queue`.
    enum Phase { case resolving, connecting(Connection), handshaking(Connection), finished }

    let target: HostPort
    let queue: DispatchQueue
    let tls: TLSContext?
    let serverName: String
    let limits: Limits
    var completion: ((Result<Connection, TransportError>) -> Void)?
    var phase = Phase.resolving
    var timer: (any DispatchSourceTimer)?
    var lastFailure = "no address answered"

    init(
        target: HostPort, queue: DispatchQueue, tls: TLSContext?, serverName: String, limits: Limits,
        completion: @escaping (Result<Connection, TransportError>) -> Void
    ) {
        self.target = target
        self.queue = queue
        self.tls = tls
        self.serverName = serverName
        self.limits = limits
        self.completion = completion
    }

    func begin(timeout: Double) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [self] in timedOut() }
        timer.schedule(deadline: .now() + timeout)
        timer.activate()
        self.timer = timer
        Socket.resolve(target, on: queue) { [self] result in
            queue.async { [self] in
                switch result {
                case .success(let addresses): tryNext(addresses[...])
                case .failure(let error): finish(.failure(error))
                }
            }
        }
    }

    private func tryNext(_ addresses: ArraySlice<SocketAddress>) {
        guard case .resolving = phase else { return }
        guard let address = addresses.first else {
            finish(.failure(.connectFailed(target, lastFailure)))
            return
        }
        let remaining = addresses.dropFirst()
        let descriptor: Int32
        switch Socket.makeStream(family: address.family) {
        case .success(let fd): descriptor = fd
        case .failure(let error):
            finish(.failure(error))
            return
        }
        let rc = address.withSockaddr { Glibc.connect(descriptor, $0, $1) }
        let code = rc == 0 ? 0 : errno
        let connection = Connection(descriptor: descriptor, queue: queue, lifecycle: .connecting, limits: limits)
        if code != 0 && code != EINPROGRESS {
            lastFailure = Socket.reason(code)
            connection.close()
            tryNext(remaining)
            return
        }
        phase = .connecting(connection)
        connection.onConnected = { [self] error in
            guard case .connecting(let current) = phase, current === connection else { return }
            if let error {
                if case .io(let reason) = error { lastFailure = reason }
                phase = .resolving
                tryNext(remaining)
            } else {
                connected(connection)
            }
        }
        connection.awaitConnect()
    }

    private func connected(_ connection: Connection) {
        guard let tls else {
            finish(.success(connection))
            return
        }
        phase = .handshaking(connection)
        connection.startTLSEngine(context: tls, serverName: serverName) { [self] error in
            guard case .handshaking(let current) = phase, current === connection else { return }
            if let error {
                finish(.failure(error))
            } else {
                finish(.success(connection))
            }
        }
    }

    private func timedOut() {
        switch phase {
        case .connecting(let connection), .handshaking(let connection):
            phase = .finished
            connection.close()
        case .resolving, .finished:
            break
        }
        finish(.failure(.timedOut("connecting to \(target)")))
    }

    private func finish(_ result: Result<Connection, TransportError>) {
        phase = .finished
        timer?.cancel()
        timer = nil
        let callback = completion
        completion = nil
        if case .success(let connection) = result { connection.disarmDeadline() }
        callback?(result)
    }
}
