// GatewayTests/Service: a blocking line client (plain TCP on loopback) for SMTP and IMAP sessions that must stay
// open across a signal to `serve`.
import Foundation

/// One TCP connection with CRLF lines, a receive timeout, and raw writes for message data.
final class LineClient {
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port`; nil when nothing listens there.
    init?(port: Int, timeout: Double = 30) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Writes all of `bytes`; false when the peer has gone.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    @discardableResult
    func send(_ line: String) -> Bool { write(Array((line + "\r\n").utf8)) }

    /// The next line without its CRLF; nil at end of stream or timeout.
    func line() -> String? {
        while true {
            if let end = buffer.firstIndex(of: 0x0A) {
                let line = buffer[..<end]
                buffer.removeSubrange(...end)
                return String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<count])
        }
    }

    /// An SMTP reply (continuation lines skipped): its last line; nil at end of stream.
    func smtpReply() -> String? {
        while let line = line() {
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { return line }
        }
        return nil
    }

    /// Sends an IMAP command and reads up to its tagged reply: (untagged lines, tagged line).
    func imap(_ tag: String, _ command: String) -> (untagged: [String], tagged: String?) {
        send("\(tag) \(command)")
        var untagged: [String] = []
        while let line = line() {
            if line.hasPrefix("\(tag) ") { return (untagged, line) }
            untagged.append(line)
        }
        return (untagged, nil)
    }

    /// True when the peer closed the connection (reads return end of stream within `timeout`).
    func closedByPeer(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
        return false
    }
}
