// TransportTests: helpers for loopback tests (event streams, deadlines, deterministic payloads).

import Dispatch
import Foundation
import MailCore
import Synchronization
import Testing
@testable import Transport

struct TestTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

func loopback(_ port: Int = 0) -> HostPort { HostPort(host: "127.0.0.1", port: port)! }

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Runs `body` on the connection's queue and returns its result.
func onQueue<T: Sendable>(_ connection: Connection, _ body: @escaping @Sendable (Connection) -> T) async -> T {
    await withCheckedContinuation { continuation in
        connection.queue.async { continuation.resume(returning: body(connection)) }
    }
}

/// A FIFO of values put from any queue and taken by the test with a deadline (polls; never cancels a producer).
final class Inbox<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    init() {}

    func put(_ element: Element) { items.withLock { $0.append(element) } }

    /// The next element, or throws `TestTimeout` after `seconds`.
    func next(within seconds: Double = 10, _ what: String = "an event") async throws -> Element {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while true {
            let item = items.withLock { list -> Element? in list.isEmpty ? nil : list.removeFirst() }
            if let item { return item }
            guard DispatchTime.now().uptimeNanoseconds < deadline else { throw TestTimeout(what: what) }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
    }
}

/// Accepts plain or TLS connections and hands each one, with its event inbox, to the test.
final class RecordingServer: Sendable {
    let listener: Listener
    let accepted = Inbox<(Connection, Inbox<ConnectionEvent>)>()

    init(
        readMode: ReadMode = .lines(maximumLength: 1_024), idleTimeout: Double? = nil,
        reply: (@Sendable (Connection, ConnectionEvent) -> Void)? = nil
    ) throws {
        let accepted = self.accepted
        listener = try Listener(address: loopback(), tls: nil) { connection in
            let events = Inbox<ConnectionEvent>()
            connection.readMode = readMode
            connection.onEvent = { event in
                events.put(event)
                reply?(connection, event)
            }
            if let idleTimeout { connection.setIdleTimeout(seconds: idleTimeout) }
            connection.start()
            accepted.put((connection, events))
        }
    }
}

/// A deterministic byte stream (xorshift64*) so both ends can produce and check the same 50 MiB.
struct PayloadGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var index = 0
            while index < count {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                var word = state &* 0x2545_F491_4F6C_DD1D
                let take = min(8, count - index)
                withUnsafeBytes(of: &word) { wordBytes in
                    raw.baseAddress!.advanced(by: index).copyMemory(from: wordBytes.baseAddress!, byteCount: take)
                }
                index += take
            }
        }
        return out
    }
}

/// Threads of this process, from /proc/self/status.
func currentThreadCount() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("Threads:") {
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// A front listener that relays every accepted connection to `upstream` on the accepted connection's queue.
final class RelayFront: Sendable {
    let listener: Listener
    let finished = Inbox<Void>()
    let pairs = Inbox<(Connection, Connection)>()

    init(upstream: HostPort, frontTLS: TLSContextBox? = nil, upstreamTLS: TLSContextBox? = nil) throws {
        let finished = self.finished
        let pairs = self.pairs
        listener = try Listener(address: loopback(), tls: frontTLS?.context) { client in
            Connection.connect(
                to: upstream, on: client.queue, timeout: 10, tls: upstreamTLS?.context,
                serverName: upstreamTLS == nil ? nil : "localhost"
            ) { result in
                switch result {
                case .success(let server):
                    pairs.put((client, server))
                    Relay.pump(client, server) { finished.put(()) }
                case .failure:
                    client.close()
                }
            }
        }
    }
}

import TLS

/// Carries a TLS context into @Sendable closures (TLSContext is Sendable; this keeps optionals tidy).
struct TLSContextBox: Sendable {
    let context: TLSContext
}
