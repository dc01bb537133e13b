// TransportTests: real loopback sockets on 127.0.0.1, port 0.

import Dispatch
import Foundation
import MailCore
import Synchronization
import Testing
@testable import Transport

@Suite(.timeLimit(.minutes(1))) struct ConnectionTests {
    @Test func exactRunFollowedByLinesInOneChunk() async throws {
        let server = try RecordingServer(reply: { connection, event in
            if case .line(let line) = event, line == bytes("A {5}") { connection.readMode = .exactly(5) }
        })
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        try await client.write(bytes("A {5}\r\nHELLOB next\r\nC {3}\r\n"))
        let (_, events) = try await server.accepted.next()
        var lines: [String] = []
        var literal: [UInt8] = []
        while lines.count < 3 {
            switch try await events.next() {
            case .line(let line): lines.append(String(decoding: line, as: UTF8.self))
            case .bytes(let chunk, let remaining):
                literal += chunk
                #expect(remaining == 5 - literal.count)
            default: Issue.record("unexpected event")
            }
        }
        #expect(lines == ["A {5}", "B next", "C {3}"])
        #expect(literal == bytes("HELLO"))
    }

    @Test func overlongLineIsReportedAndNotBuffered() async throws {
        let server = try RecordingServer(readMode: .lines(maximumLength: 64))
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let (connection, events) = try await server.accepted.next()
        for _ in 0..<100 {
            try await client.write([UInt8](repeating: UInt8(ascii: "x"), count: 1_024))
        }
        #expect(try await events.next() == .lineTooLong(limit: 64))
        try await Task.sleep(nanoseconds: 200_000_000)
        let buffered = await onQueue(connection) { $0.bufferedReadBytes }
        #expect(buffered < 64)
        try await client.write(bytes("end of the long line\r\nok\r\n"))
        #expect(try await events.next() == .line(bytes("ok")))
    }

    @Test func idleTimeoutFiresAndCloses() async throws {
        let server = try RecordingServer(
            idleTimeout: 0.3,
            reply: { connection, event in
                if case .idleTimeout = event { connection.write(bytes("421 idle timeout\r\n")) }
            })
        defer { server.listener.close() }
        let started = DispatchTime.now()
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let (_, events) = try await server.accepted.next()
        #expect(try await events.next(within: 5) == .idleTimeout)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        #expect(elapsed >= 0.29)
        guard case .closed(.timedOut?) = try await events.next() else {
            Issue.record("expected .closed(.timedOut)")
            return
        }
        #expect(try await client.readLine(maximumLength: 100) == bytes("421 idle timeout"))
        #expect(try await client.readAvailable() == nil)
    }

    @Test func connectToAClosedPortFailsFast() async throws {
        let listener = try Listener(address: loopback(), tls: nil) { $0.close() }
        let address = listener.boundAddress
        listener.close()
        try await Task.sleep(nanoseconds: 100_000_000)
        let started = DispatchTime.now()
        do {
            _ = try await AsyncConnection.connect(to: address, tls: nil, serverName: nil, timeout: 10)
            Issue.record("connected to a closed port")
        } catch {
            guard case .connectFailed(let target, _) = error else {
                Issue.record("expected connectFailed, got \(error)")
                return
            }
            #expect(target == address)
        }
        // A hang guard, not a speed test: a refused connect must not wait for a timeout.
        #expect(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds < 20_000_000_000)
    }

    @Test func closeDuringAcceptBackOffStopsAccepting() async throws {
        let accepted = Mutex(0)
        let listener = try Listener(address: loopback(), tls: nil) { connection in
            accepted.withLock { $0 += 1 }
            connection.close()
        }
        let address = listener.boundAddress
        listener.backOffForTesting(seconds: 0.2)
        listener.close()
        #expect(!listener.isAccepting)
        // Past the back-off timer: before the fix it resumed the source and accepting went on after close().
        try await Task.sleep(nanoseconds: 400_000_000)
        #expect(!listener.isAccepting)
        do {
            let client = try await AsyncConnection.connect(to: address, tls: nil, serverName: nil, timeout: 5)
            client.close()
            Issue.record("a closed listener still accepted a connection")
        } catch {
            guard case .connectFailed = error else {
                Issue.record("expected connectFailed, got \(error)")
                return
            }
        }
        #expect(accepted.withLock { $0 } == 0)
    }

    @Test func connectTimesOutWhenNobodyAnswers() async throws {
        // A listening socket that never accepts, with its backlog full: Linux drops further SYNs, so the
        // next connect hangs until our deadline.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        #expect(bound == 0)
        #expect(listen(fd, 0) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let target = loopback(Int(UInt16(bigEndian: address.sin_port)))
        var fillers: [AsyncConnection] = []
        defer { for filler in fillers { filler.close() } }
        var timedOut = false
        for _ in 0..<8 {
            let started = DispatchTime.now()
            do {
                fillers.append(try await AsyncConnection.connect(to: target, tls: nil, serverName: nil, timeout: 0.5))
            } catch {
                guard case .timedOut = error else {
                    Issue.record("expected timedOut, got \(error)")
                    return
                }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
                // Honours the 0.5 s timeout (never earlier); the upper bound only guards against a hang.
                #expect(elapsed >= 0.45 && elapsed < 30)
                timedOut = true
                break
            }
        }
        #expect(timedOut)
    }

    @Test func manyIdleConnectionsDoNotCostThreads() async throws {
        let held = Mutex<[Connection]>([])
        let count = Inbox<Int>()
        let listener = try Listener(address: loopback(), tls: nil) { connection in
            connection.onEvent = { _ in }
            connection.start()
            let total = held.withLock { list in
                list.append(connection)
                return list.count
            }
            count.put(total)
        }
        defer { listener.close() }
        var clients: [AsyncConnection] = []
        for _ in 0..<200 {
            clients.append(
                try await AsyncConnection.connect(to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5))
        }
        var accepted = 0
        while accepted < 200 { accepted = try await count.next() }
        try await Task.sleep(nanoseconds: 200_000_000)
        let threads = try #require(currentThreadCount())
        #expect(threads < 100, "threads: \(threads)")
        for client in clients { client.close() }
        for connection in held.withLock({ $0 }) { connection.queue.async { connection.close() } }
    }

    @Test func writesAfterCloseAreDroppedAndClosedIsDeliveredOnce() async throws {
        let server = try RecordingServer()
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        let (connection, events) = try await server.accepted.next()
        await onQueue(connection) { connection in
            connection.close()
            connection.close()
            connection.write(bytes("dropped\r\n"))
        }
        guard case .closed(nil) = try await events.next() else {
            Issue.record("expected .closed(nil)")
            return
        }
        await #expect(throws: TestTimeout.self) { try await events.next(within: 0.3) }
        #expect(try await client.readAvailable() == nil)
        await #expect(throws: TransportError.self) {
            try await client.write(bytes("x"))
            try await Task.sleep(nanoseconds: 100_000_000)
            try await client.write(bytes("x"))
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.timeLimit(.minutes(1))) struct ConnectionFlowTests {
    @Test func pausedConnectionDeliversBufferedLinesInOrderAfterResume() async throws {
        let server = try RecordingServer(reply: { connection, event in
            if case .line(let line) = event, line == bytes("A") { connection.pauseReading() }
        })
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let (connection, events) = try await server.accepted.next()
        try await client.write(bytes("A\r\nB\r\nC\r\n"))
        #expect(try await events.next() == .line(bytes("A")))
        await #expect(throws: TestTimeout.self) { try await events.next(within: 0.3) }
        #expect(await onQueue(connection) { $0.isReadingPaused && $0.bufferedReadBytes == 6 })
        await onQueue(connection) { $0.resumeReading() }
        #expect(try await events.next() == .line(bytes("B")))
        #expect(try await events.next() == .line(bytes("C")))
    }

    @Test func addressesAreReportedForBothEnds() async throws {
        let server = try RecordingServer()
        defer { server.listener.close() }
        let client = try await AsyncConnection.connect(
            to: server.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let (connection, _) = try await server.accepted.next()
        let (local, remote, ip) = await onQueue(connection) { ($0.localAddress, $0.remoteAddress, $0.remoteIPAddress) }
        #expect(local == server.listener.boundAddress)
        #expect(remote == (await client.localAddress))
        #expect(ip == IPAddress(parsing: "127.0.0.1"))
        #expect(ip?.isIn(network: IPAddress(parsing: "127.0.0.0")!, prefixLength: 8) == true)
    }

    @Test func getaddrinfoPathResolvesNumericHosts() throws {
        let addresses = try Socket.resolveBlocking(HostPort(host: "127.0.0.1", port: 25)!).get()
        #expect(addresses.first?.hostPort == HostPort(host: "127.0.0.1", port: 25))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/net/if_inet6")))
    func ipv6LoopbackListenerAndConnect() async throws {
        let listener = try AsyncListener(address: HostPort(parsing: "[::1]:0")!, tls: nil)
        defer { listener.close() }
        #expect(listener.boundAddress.host == "::1")
        #expect(listener.boundAddress.port != 0)
        let client = try await AsyncConnection.connect(to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let server = try await listener.accept()
        try await client.write(bytes("over v6\n"))
        #expect(try await server.readLine(maximumLength: 100) == bytes("over v6"))
    }

    @Test func bindingATakenPortReportsAddressInUse() throws {
        let first = try Listener(address: loopback(), tls: nil) { $0.close() }
        defer { first.close() }
        #expect(throws: TransportError.addressInUse(first.boundAddress)) {
            _ = try Listener(address: first.boundAddress, tls: nil) { $0.close() }
        }
    }
}
