// Transport: a listening socket that accepts without blocking and gives each connection its own serial queue.

#if canImport(Glibc)
    import Glibc
#endif
import Dispatch
public import MailCore
public import TLS

/// Accepts TCP connections on one address (IPv4 or IPv6), optionally speaking TLS from the first byte.
///
/// Each accepted connection gets a new serial queue (targeting the shared global pool, so idle connections
/// cost no thread) and is handed to `onAccept` on that queue, not yet started: set `onEvent`, then `start()`.
/// With `tls`, the server handshake begins on `start()`; a failed handshake ends in `.closed(.tls(…))`
/// and writes made before it completes are sent once it does.
public final class Listener: @unchecked Sendable {
    // @unchecked Sendable: the mutable state (`state`) is touched only on `acceptQueue`; everything else is
    // immutable after init.

    /// The address actually bound (port 0 resolved to the real port).
    public let boundAddress: HostPort

    private enum State {
        case listening
        /// Out of descriptors: the source is suspended for a moment instead of spinning on a failing accept.
        case backingOff
        case closed
    }

    private let descriptor: Int32
    private let acceptQueue: DispatchQueue
    private let source: any DispatchSourceRead
    private var state = State.listening
    private let tls: TLSContext?
    private let limits: Limits
    private let onAccept: @Sendable (Connection) -> Void

    /// Binds and listens (SO_REUSEADDR), then starts accepting.
    ///
    /// - Parameters:
    ///   - address: an IP literal and port (`0.0.0.0:25`, `[::1]:0`); a host name is resolved here, once, blocking.
    ///   - tls: a server context for implicit TLS (SMTPS 465, IMAPS 993, POP3S 995), or nil for plaintext.
    /// - Throws: `.addressInUse` if another socket holds the port, `.bindFailed` for other refusals.
    public init(
        address: HostPort, tls: TLSContext?, backlog: Int = 256, limits: Limits = .standard,
        onAccept: @escaping @Sendable (Connection) -> Void
    ) throws(TransportError) {
        let socketAddress: SocketAddress
        if let numeric = SocketAddress(numericHost: address.host, port: address.port) {
            socketAddress = numeric
        } else {
            switch Socket.resolveBlocking(address, passive: true) {
            case .success(let list): socketAddress = list[0]
            case .failure: throw .bindFailed(address, "the host name does not resolve to a local address")
            }
        }
        let descriptor: Int32
        switch Socket.makeStream(family: socketAddress.family) {
        case .success(let fd): descriptor = fd
        case .failure(let error): throw error
        }
        Socket.setReuseAddress(descriptor)
        let bound = socketAddress.withSockaddr { bind(descriptor, $0, $1) }
        if bound != 0 {
            let code = errno
            _ = Glibc.close(descriptor)  // never handed to a source, so closed here
            if code == EADDRINUSE { throw .addressInUse(address) }
            throw .bindFailed(address, Socket.reason(code))
        }
        guard listen(descriptor, Int32(backlog)) == 0 else {
            let code = errno
            _ = Glibc.close(descriptor)  // never handed to a source, so closed here
            throw .bindFailed(address, Socket.reason(code))
        }
        self.descriptor = descriptor
        self.boundAddress = Socket.localAddress(descriptor)?.hostPort ?? address
        self.tls = tls
        self.limits = limits
        self.onAccept = onAccept
        self.acceptQueue = DispatchQueue(label: "mailgate.listener.\(boundAddress)")
        self.source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: acceptQueue)
        source.setEventHandler { [self] in acceptPending() }
        source.setCancelHandler { [descriptor] in _ = Glibc.close(descriptor) }
        source.activate()
    }

    /// Stops accepting and closes the listening socket; connections already accepted are not affected.
    ///
    /// Also while backing off: the suspended source is cancelled and resumed once (a suspended source never
    /// runs its cancel handler, so the socket would stay open), and the back-off timer then finds `.closed`.
    public func close() {
        acceptQueue.async { [self] in
            let wasBackingOff: Bool
            switch state {
            case .closed: return
            case .listening: wasBackingOff = false
            case .backingOff: wasBackingOff = true
            }
            state = .closed
            source.cancel()
            if wasBackingOff { source.resume() }
        }
    }

    /// Whether the listening socket is still accepting (false once closed); read on the accept queue.
    var isAccepting: Bool { acceptQueue.sync { state != .closed } }

    /// For tests: enters the back-off that running out of descriptors causes, as `acceptPending` does.
    func backOffForTesting(seconds: Double = 0.1) {
        acceptQueue.sync { if state == .listening { backOff(seconds: seconds) } }
    }

    /// Suspends accepting for a moment; the pending connections stay in the kernel's backlog.
    private func backOff(seconds: Double) {
        state = .backingOff
        source.suspend()
        acceptQueue.asyncAfter(deadline: .now() + seconds) { [self] in
            guard state == .backingOff else { return }
            state = .listening
            source.resume()
        }
    }

    /// Accepts up to a batch of waiting connections per wakeup, so one busy listener cannot starve the queue.
    private func acceptPending() {
        guard state == .listening else { return }
        for _ in 0..<64 {
            var address = SocketAddress()
            address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutableBytes(of: &address.storage) { raw in
                accept(descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &address.length)
            }
            if fd < 0 {
                let code = errno
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    // The pending connection stays in the backlog; retry once descriptors may be free again.
                    backOff(seconds: 0.1)
                }
                // EAGAIN: drained. ECONNABORTED and friends: that connection is gone; the next wakeup goes on.
                return
            }
            // Glibc's module map hides accept4 (it needs _GNU_SOURCE), so set the flags right after accept.
            Socket.makeNonBlockingAndCloseOnExec(fd)
            Socket.setNoDelay(fd)
            let queue = DispatchQueue(label: "mailgate.connection", target: .global())
            let connection = Connection(descriptor: fd, queue: queue, lifecycle: .idle, limits: limits)
            let tls = self.tls
            let onAccept = self.onAccept
            queue.async {
                if let tls { connection.startServerTLS(context: tls) }
                onAccept(connection)
            }
        }
    }
}
