// OAuthTests: a one-connection HTTP server on 127.0.0.1 that records the request and plays back a response.
import Foundation
import Synchronization
import TLS
import Transport

@testable import OAuth

/// Accepts one connection, reads one request (head plus Content-Length body), writes `response` in pieces.
final class FakeHTTPServer: Sendable {
    let listener: AsyncListener
    let port: Int
    private let recorded = Mutex<[UInt8]?>(nil)
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// `response` nil: accept and never answer (for timeouts).
    init(tls: TLSContext? = nil, response: String?, pieceSize: Int = 1 << 20) throws {
        listener = try AsyncListener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: tls)
        port = listener.boundAddress.port
        let started = Task { [listener, self] in
            guard let connection = try? await listener.accept() else { return }
            var request: [UInt8] = []
            while request.count < 100_000, let bytes = try? await connection.readAvailable() {
                request += bytes
                if let complete = Self.completeLength(request), request.count >= complete { break }
            }
            self.recorded.withLock { $0 = request }
            guard let response else {
                // Hold the connection open without answering until the client gives up.
                while (try? await connection.readAvailable()) != nil {}
                return
            }
            let bytes = Array(response.utf8)
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + pieceSize, bytes.count)
                try? await connection.write(Array(bytes[offset..<end]))
                offset = end
            }
            connection.shutdownWrite()
            while (try? await connection.readAvailable()) != nil {}
            connection.close()
        }
        task.withLock { $0 = started }
    }

    /// The request as received, once it has been read.
    var request: String? { recorded.withLock { $0.map { String(decoding: $0, as: UTF8.self) } } }

    func close() {
        listener.close()
        task.withLock { $0?.cancel() }
    }

    var url: String { "http://127.0.0.1:\(port)/contoso.com/oauth2/v2.0/token" }

    private static func completeLength(_ bytes: [UInt8]) -> Int? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<end.lowerBound].lowercased()
        var length = 0
        for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound) + length
    }
}
