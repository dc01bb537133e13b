// GatewayTests/Faults: a TCP proxy between the gateway and a fake upstream that misbehaves on cue (issue 13 point 3):
// it resets both sides (RST, not FIN) or stalls (stops forwarding, keeps the sockets open) once a number of bytes has
// crossed it in one direction after the cue was armed. Byte counts work through TLS, so the SMTP fake's STARTTLS
// stays on.
import Dispatch
import Foundation
import Synchronization
import Transport

#if canImport(Glibc)
    import Glibc
#endif

final class FaultProxy: @unchecked Sendable {
    // @unchecked Sendable: the mutable state is in `state` (a Mutex); descriptors are owned by their pump threads
    // and closed under the lock.

    enum Direction: Sendable { case toUpstream, toClient }
    enum Fault: Sendable { case reset, stall }

    private struct Cue {
        var fault: Fault
        var direction: Direction
        var remaining: Int
    }

    private struct Pair {
        var client: Int32
        var upstream: Int32
        var stalled = false
        var resetting = false
        var pumpsDone = 0
    }

    private struct State {
        var cue: Cue?
        var pairs: [Int: Pair] = [:]
        var nextPair = 0
        var stopped = false
        var resets = 0
        var stalls = 0
        var accepted = 0
    }

    private let listenFD: Int32
    private let target: HostPort
    private let state = Mutex(State())
    let address: HostPort

    init(target: HostPort) throws {
        self.target = target
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProxyError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw ProxyError("bind/listen")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listenFD = fd
        self.address = HostPort(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))!
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// The next time `bytes` more bytes have crossed in `direction` (on any one connection), that connection pair
    /// gets `fault`; one-shot.
    func arm(_ fault: Fault, after bytes: Int, _ direction: Direction) {
        state.withLock { $0.cue = Cue(fault: fault, direction: direction, remaining: bytes) }
    }

    var resets: Int { state.withLock { $0.resets } }
    var stalls: Int { state.withLock { $0.stalls } }
    var accepted: Int { state.withLock { $0.accepted } }

    /// Closes the listener and every connection (stalled ones too).
    func stop() {
        let pairs = state.withLock { state -> [Pair] in
            state.stopped = true
            return Array(state.pairs.values)
        }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        for pair in pairs {
            shutdown(pair.client, Int32(SHUT_RDWR))
            shutdown(pair.upstream, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            guard let upstream = connectTarget() else {
                close(client)
                continue
            }
            let id = state.withLock { state -> Int? in
                guard !state.stopped else { return nil }
                let id = state.nextPair
                state.nextPair += 1
                state.accepted += 1
                state.pairs[id] = Pair(client: client, upstream: upstream)
                return id
            }
            guard let id else {
                close(client)
                close(upstream)
                return
            }
            Thread { [self] in pump(id, from: client, to: upstream, .toUpstream) }.start()
            Thread { [self] in pump(id, from: upstream, to: client, .toClient) }.start()
        }
    }

    private func connectTarget() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(target.port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    /// What to do with a chunk: forward `forward` bytes of it, then (maybe) the fault.
    private func decide(_ id: Int, _ count: Int, _ direction: Direction) -> (forward: Int, fault: Fault?) {
        state.withLock { state in
            guard var cue = state.cue, cue.direction == direction else { return (count, nil) }
            if count < cue.remaining {
                cue.remaining -= count
                state.cue = cue
                return (count, nil)
            }
            state.cue = nil
            return (cue.remaining, cue.fault)
        }
    }

    private func pump(_ id: Int, from source: Int32, to sink: Int32, _ direction: Direction) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if state.withLock({ $0.pairs[id]?.stalled ?? false }) {
                // Stalled: keep the sockets open, move nothing, until the proxy stops.
                while !state.withLock({ $0.stopped }) { usleep(20_000) }
                break
            }
            let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, 65_536, 0) }
            if n <= 0 { break }
            if state.withLock({ $0.pairs[id]?.stalled ?? false }) { continue }  // dropped; the loop top stalls
            let (forward, fault) = decide(id, n, direction)
            if forward > 0, !writeAll(sink, buffer, forward) { break }
            switch fault {
            case .reset?:
                reset(id)
                return
            case .stall?:
                state.withLock {
                    $0.pairs[id]?.stalled = true
                    $0.stalls += 1
                }
            case nil:
                break
            }
        }
        // One side ended: pass the end on (FIN) unless the pair is being reset, and let the other pump finish.
        if !state.withLock({ $0.pairs[id]?.resetting ?? true }) { shutdown(sink, Int32(SHUT_WR)) }
        finish(id)
    }

    private func writeAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let sent = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// RST to both sides: SO_LINGER 0, wake the other pump, and close once both pumps are out.
    private func reset(_ id: Int) {
        let pair = state.withLock { state -> Pair? in
            guard var pair = state.pairs[id], !pair.resetting else { return nil }
            pair.resetting = true
            state.pairs[id] = pair
            state.resets += 1
            return pair
        }
        guard let pair else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        for fd in [pair.client, pair.upstream] {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            shutdown(fd, Int32(SHUT_RD))  // the other pump's recv returns; no FIN is sent
        }
        finish(id)
    }

    /// Each pump calls this once on its way out; the second closes both descriptors.
    private func finish(_ id: Int) {
        let done = state.withLock { state -> Pair? in
            guard var pair = state.pairs[id] else { return nil }
            pair.pumpsDone += 1
            if pair.pumpsDone < 2 {
                state.pairs[id] = pair
                return nil
            }
            state.pairs[id] = nil
            return pair
        }
        if let done {
            close(done.client)
            close(done.upstream)
        }
    }

    struct ProxyError: Error, CustomStringConvertible {
        let description: String
        init(_ what: String) { description = "fault proxy: \(what) failed (\(errno))" }
    }
}
