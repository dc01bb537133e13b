// TransportTests: Relay.pump between connection pairs on loopback: echo, half-close, back-pressure.

import Dispatch
import Foundation
import MailCore
import Synchronization
import Testing
@testable import Transport

@Suite(.timeLimit(.minutes(1))) struct RelayTests {
    /// An upstream that greets, then echoes until the client half-closes, then says goodbye and closes.
    private func echoUpstream() throws -> AsyncListener {
        let upstream = try AsyncListener(address: loopback(), tls: nil)
        Task {
            let connection = try await upstream.accept()
            try await connection.write(bytes("220 upstream ready\r\n"))
            while let chunk = try await connection.readAvailable() {
                try await connection.write(chunk)
            }
            try await connection.write(bytes("221 bye\r\n"))
            connection.close()
        }
        return upstream
    }

    @Test func echoThroughRelayIsByteExactBothWays() async throws {
        let upstream = try echoUpstream()
        defer { upstream.close() }
        let front = try RelayFront(upstream: upstream.boundAddress)
        defer { front.listener.close() }
        let client = try await AsyncConnection.connect(
            to: front.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        #expect(try await client.readLine(maximumLength: 100) == bytes("220 upstream ready"))
        var generator = PayloadGenerator(seed: 7)
        let payload = generator.next(3 << 20)
        let writer = Task {
            var offset = 0
            while offset < payload.count {
                let end = min(offset + 40_000, payload.count)
                try await client.write(Array(payload[offset..<end]))
                offset = end
            }
        }
        let echoed = try await client.readExactly(payload.count)
        try await writer.value
        #expect(echoed == payload)
        client.shutdownWrite()
        #expect(try await client.readLine(maximumLength: 100) == bytes("221 bye"))
        #expect(try await client.readAvailable() == nil)
        try await front.finished.next(within: 5, "the relay to finish")
    }

    @Test func halfClosePropagatesThroughTheRelay() async throws {
        let upstream = try AsyncListener(address: loopback(), tls: nil)
        defer { upstream.close() }
        let front = try RelayFront(upstream: upstream.boundAddress)
        defer { front.listener.close() }
        let client = try await AsyncConnection.connect(
            to: front.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let server = try await upstream.accept()
        try await client.write(bytes("request"))
        client.shutdownWrite()
        var received: [UInt8] = []
        while let chunk = try await server.readAvailable() { received += chunk }
        #expect(received == bytes("request"))
        // The upstream still writes after the client's FIN: the other direction stays open.
        try await server.write(bytes("response"))
        server.shutdownWrite()
        var answer: [UInt8] = []
        while let chunk = try await client.readAvailable() { answer += chunk }
        #expect(answer == bytes("response"))
        try await front.finished.next(within: 5, "the relay to finish")
    }

    @Test func stalledPeerPausesTheSourceInsteadOfBuffering() async throws {
        let upstream = try AsyncListener(address: loopback(), tls: nil)
        defer { upstream.close() }
        let front = try RelayFront(upstream: upstream.boundAddress)
        defer { front.listener.close() }
        let client = try await AsyncConnection.connect(
            to: front.listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
        defer { client.close() }
        let stalled = try await upstream.accept()  // never reads
        defer { stalled.close() }
        let (clientSide, upstreamSide) = try await front.pairs.next()
        let written = Mutex(0)
        let writer = Task {
            let chunk = [UInt8](repeating: 0x5A, count: 65_536)
            for _ in 0..<4_000 {  // 250 MiB cap: far more than all socket buffers together
                try await client.write(chunk)
                written.withLock { $0 += chunk.count }
            }
        }
        // Wait until the writer makes no progress for half a second.
        var last = -1
        while true {
            try await Task.sleep(nanoseconds: 500_000_000)
            let now = written.withLock { $0 }
            if now == last { break }
            last = now
        }
        let total = written.withLock { $0 }
        #expect(total < 200 << 20, "the writer was never held back")
        let limits = Limits.standard
        let pending = await onQueue(upstreamSide) { $0.pendingWriteBytes }
        let paused = await onQueue(clientSide) { $0.isReadingPaused }
        #expect(pending > limits.writeBufferHighWater)
        #expect(pending <= limits.writeBufferHighWater + limits.readChunk)
        #expect(paused)
        writer.cancel()
        client.close()
    }
}
