// TransportTests: a client AsyncConnection whose peer answers and resets (closes with unread input) must see the
// answer and then the end, every time (issue 13: a read that sometimes never returned after a 100 KB line).

import Dispatch
import Foundation
import MailCore
import Synchronization
import Testing
@testable import Transport

/// A byte count used only on one connection's queue.
private final class Tally: @unchecked Sendable {
    // @unchecked Sendable: touched only on the connection's serial queue.
    var count = 0
}

@Suite("Transport: the peer resets", .serialized)
struct PeerResetTests {
    /// A server that, like the IMAP listener facing an overlong line before login, reads until `threshold` bytes
    /// came, writes one line and closes with the rest of the client's bytes unread (so the kernel sends RST).
    private static func resettingServer(threshold: Int) throws -> Listener {
        try Listener(address: loopback(), tls: nil) { connection in
            let seen = Tally()
            connection.readMode = .raw
            connection.onEvent = { event in
                switch event {
                case .raw(let chunk):
                    seen.count += chunk.count
                    let total = seen.count
                    if total >= threshold, total - chunk.count < threshold {
                        connection.write(bytes("* BYE Line too long\r\n"))
                        connection.closeAfterFlushing()
                    }
                case .closed:
                    withExtendedLifetime(connection) {}
                default:
                    break
                }
            }
            connection.start()
        }
    }

    /// Reads until the end of the stream (nil or an error); nil if that did not happen within `seconds`.
    private static func readToEnd(_ client: AsyncConnection, within seconds: Double) async -> [UInt8]? {
        let result = Mutex<[UInt8]?>(nil)
        let task = Task {
            var all: [UInt8] = []
            while let chunk = try? await client.readAvailable() { all += chunk }
            result.withLock { $0 = all }
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline {
            if let done = result.withLock({ $0 }) { return done }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        client.close()  // ends the stuck read (it then throws) so the task finishes
        _ = await task.value
        return nil
    }

    @Test("a 100 KB line without a line end, answered and reset: the client's read ends every time (100 rounds)")
    func overlongLineThenReset() async throws {
        let listener = try Self.resettingServer(threshold: 8_192)
        defer { listener.close() }
        var hung = 0
        var withoutAnswer = 0
        for _ in 0..<100 {
            let client = try await AsyncConnection.connect(
                to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
            try? await client.write([UInt8](repeating: 0x78, count: 100_000))
            guard let received = await Self.readToEnd(client, within: 5) else {
                hung += 1
                continue
            }
            // The answer may be lost to the reset (RFC 793: a reset discards what is queued); the end may not.
            if received != bytes("* BYE Line too long\r\n") { withoutAnswer += 1 }
            client.close()
        }
        #expect(hung == 0, "reads that never returned after the reset: \(hung) of 100")
        #expect(withoutAnswer < 100, "the answer never arrived before the reset")
    }

    @Test("a 1 MB write the peer stops reading and resets: the waiting write and the read both end (50 rounds)")
    func blockedWriteThenReset() async throws {
        let listener = try Self.resettingServer(threshold: 8_192)
        defer { listener.close() }
        var hung = 0
        for _ in 0..<50 {
            let client = try await AsyncConnection.connect(
                to: listener.boundAddress, tls: nil, serverName: nil, timeout: 5)
            let writer = Task { try? await client.write([UInt8](repeating: 0x78, count: 4_000_000)) }
            if await Self.readToEnd(client, within: 5) == nil { hung += 1 }
            client.close()
            _ = await writer.value
        }
        #expect(hung == 0, "reads that never returned after the reset: \(hung) of 50")
    }
}
