// Transport: the thin layer over Glibc sockets (non-blocking, close-on-exec, TCP_NODELAY, no SIGPIPE).

#if canImport(Glibc)
    import Glibc
#endif
import Dispatch

/// A socket address as the kernel wants it, plus conversions to `HostPort` and `IPAddress`.
struct SocketAddress: @unchecked Sendable {
    // @unchecked Sendable: a plain value copy of C structs with no pointers inside.
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    init() {}

    /// A numeric IPv4 or IPv6 host and a port, or nil if `host` is not an IP literal.
    init?(numericHost host: String, port: Int) {
        guard let ip = IPAddress(parsing: host) else { return nil }
        self.init(ip: ip, port: port)
    }

    init(ip: IPAddress, port: Int) {
        if ip.isIPv4 {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port)).bigEndian
            withUnsafeMutableBytes(of: &addr.sin_addr) { $0.copyBytes(from: ip.bytes) }
            withUnsafeMutableBytes(of: &storage) { raw in
                withUnsafeBytes(of: addr) { raw.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port)).bigEndian
            withUnsafeMutableBytes(of: &addr.sin6_addr) { $0.copyBytes(from: ip.bytes) }
            withUnsafeMutableBytes(of: &storage) { raw in
                withUnsafeBytes(of: addr) { raw.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    var family: Int32 { Int32(storage.ss_family) }

    var ipAddress: IPAddress? {
        switch family {
        case AF_INET:
            let addr = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            return IPAddress(bytes: withUnsafeBytes(of: addr.sin_addr) { Array($0) })
        case AF_INET6:
            let addr = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            return IPAddress(bytes: withUnsafeBytes(of: addr.sin6_addr) { Array($0) })
        default:
            return nil
        }
    }

    var port: Int {
        switch family {
        case AF_INET: Int(UInt16(bigEndian: withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }.sin_port))
        case AF_INET6:
            Int(UInt16(bigEndian: withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }.sin6_port))
        default: 0
        }
    }

    var hostPort: HostPort? {
        guard let ip = ipAddress else { return nil }
        return HostPort(host: ip.description, port: port)
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// Socket system calls with MailGate's defaults; each returns a `TransportError` text on failure.
enum Socket {
    /// The system's text for an errno value.
    static func reason(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// A non-blocking, close-on-exec TCP socket with TCP_NODELAY set.
    static func makeStream(family: Int32) -> Result<Int32, TransportError> {
        ignoreSIGPIPEOnce
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = socket(family, type, 0)
        guard fd >= 0 else { return .failure(.io("socket: \(reason(errno))")) }
        setNoDelay(fd)
        return .success(fd)
    }

    /// Mail protocols are request/response with small writes: Nagle's delay would cost a round trip per command.
    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Asks the kernel to acknowledge what was just read at once instead of after the delayed-ACK timer (~40 ms).
    ///
    /// A peer that does not set TCP_NODELAY (Postfix, for one) holds its next small segment until our ACK: after
    /// STARTTLS its session ticket and its EHLO reply are two segments, and with a delayed ACK every upstream
    /// login would wait 40 ms for it. Linux resets quick-ack mode by itself, so this is set after every read.
    static func acknowledgeQuickly(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    static func makeNonBlockingAndCloseOnExec(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let descriptorFlags = fcntl(fd, F_GETFD)
        _ = fcntl(fd, F_SETFD, descriptorFlags | FD_CLOEXEC)
    }

    static func setReuseAddress(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    static func pendingError(_ fd: Int32) -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return errno }
        return code
    }

    /// Whether the peer has hung up or reset (POLLHUP, POLLERR or POLLRDHUP), asked without waiting.
    ///
    /// libdispatch on Linux unregisters a descriptor from epoll when EPOLLHUP arrives while none of its sources
    /// is armed — which is the case while a source's own event handler runs — and its re-arm after the handler
    /// then fails silently: the reset is never reported and a read waits for ever (issue 13). `Connection` asks
    /// this after each handler instead of trusting the next event.
    static func peerHungUp(_ fd: Int32) -> Bool {
        let rdhup: Int16 = 0x2000  // POLLRDHUP (Glibc's module map hides it behind _GNU_SOURCE)
        var entry = pollfd(fd: fd, events: Int16(POLLIN) | rdhup, revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        return entry.revents & (Int16(POLLHUP) | Int16(POLLERR) | rdhup) != 0
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var address = SocketAddress()
        address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &address.storage) { raw in
            getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &address.length)
        }
        return rc == 0 ? address : nil
    }

    static func remoteAddress(_ fd: Int32) -> SocketAddress? {
        var address = SocketAddress()
        address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &address.storage) { raw in
            getpeername(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &address.length)
        }
        return rc == 0 ? address : nil
    }

    /// Resolves `target` to socket addresses: IP literals at once on the calling queue, host names with
    /// `getaddrinfo` on a global queue (it blocks), the answer delivered on `queue`.
    static func resolve(
        _ target: HostPort, on queue: DispatchQueue,
        completion: @escaping @Sendable (Result<[SocketAddress], TransportError>) -> Void
    ) {
        if let numeric = SocketAddress(numericHost: target.host, port: target.port) {
            completion(.success([numeric]))
            return
        }
        DispatchQueue.global().async {
            let result = resolveBlocking(target)
            queue.async { completion(result) }
        }
    }

    static func resolveBlocking(_ target: HostPort, passive: Bool = false) -> Result<[SocketAddress], TransportError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard rc == 0, let first = list else {
            let text = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
            return .failure(.connectFailed(target, "cannot resolve the host name (\(text))"))
        }
        defer { freeaddrinfo(list) }
        var out: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let raw = entry.pointee.ai_addr,
                entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6
            {
                var address = SocketAddress()
                address.length = entry.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &address.storage) { dest in
                    dest.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: Int(entry.pointee.ai_addrlen)))
                }
                out.append(address)
            }
            cursor = entry.pointee.ai_next
        }
        guard !out.isEmpty else { return .failure(.connectFailed(target, "the host name has no IP address")) }
        return .success(out)
    }

    /// `send` with MSG_NOSIGNAL also covers this; ignoring SIGPIPE guards any write path that forgets it.
    private static let ignoreSIGPIPEOnce: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()
}
