// GatewayTests/Support: reading a fake server's peer by lines or by octet counts.
import Transport

/// The buffered reads both scripted upstreams (SMTP and IMAP) need: a line without its line end, or exactly
/// `count` octets (a BDAT chunk, an IMAP literal). Protocol-specific reads extend it in each fake's file.
final class PeerReader: @unchecked Sendable {
    // @unchecked Sendable: used only by the one task that serves the connection.
    let connection: AsyncConnection
    var buffer: [UInt8] = []

    init(_ connection: AsyncConnection) { self.connection = connection }

    /// The next line, without its LF and an optional CR before it.
    func line() async throws -> String {
        while true {
            if let lf = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<lf])
                buffer.removeFirst(lf + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard let more = try await connection.readAvailable() else { throw TransportError.closedByPeer }
            buffer += more
        }
    }

    /// Exactly `count` octets.
    func bytes(_ count: Int) async throws -> [UInt8] {
        while buffer.count < count {
            guard let more = try await connection.readAvailable() else { throw TransportError.closedByPeer }
            buffer += more
        }
        let chunk = Array(buffer[..<count])
        buffer.removeFirst(count)
        return chunk
    }
}
