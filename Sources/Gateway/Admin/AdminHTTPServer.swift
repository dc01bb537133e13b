// Gateway: a minimal HTTP/1.1 server for the status page and metrics, on the project's Transport layer.
import Crypto
import Dispatch
public import Foundation
public import Logging
public import MailCore
public import TLS
public import Transport

/// A parsed request: method, path (without the query) and headers (names lower-cased).
public struct AdminRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    public var query: String
    public var headers: [String: String]
}

/// What a handler answers.
public struct AdminResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var extraHeaders: [(String, String)] = []

    public init(status: Int, contentType: String, body: [UInt8], extraHeaders: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.extraHeaders = extraHeaders
    }

    public static func text(_ status: Int, _ text: String) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array((text + "\n").utf8))
    }

    public static func == (lhs: AdminResponse, rhs: AdminResponse) -> Bool {
        lhs.status == rhs.status && lhs.contentType == rhs.contentType && lhs.body == rhs.body
            && lhs.extraHeaders.map { "\($0.0): \($0.1)" } == rhs.extraHeaders.map { "\($0.0): \($0.1)" }
    }
}

/// Reads one request head (bounded), nothing else: the status server answers GET and HEAD only.
///
/// Bounds: the request line and each header line at most `maximumLine` bytes, at most `maximumHeaders` headers;
/// a body is refused (`Content-Length` > 0 or `Transfer-Encoding`), so nothing unbounded is ever buffered.
public struct AdminRequestParser: Sendable {
    public enum Outcome: Sendable, Equatable {
        case needMore
        case request(AdminRequest)
        case failure(status: Int, reason: String)
    }

    public static let maximumLine = 8_192
    public static let maximumHeaders = 64

    private var requestLine: (method: String, target: String)?
    private var headers: [String: String] = [:]
    private var headerCount = 0

    public init() {}

    /// Feeds one line (without its line ending).
    public mutating func line(_ bytes: [UInt8]) -> Outcome {
        guard let (method, target) = requestLine else {
            if bytes.isEmpty { return .needMore }  // RFC 9112 §2.2: empty lines before the request line are ignored
            let parts = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard parts.count == 3, let version = String(bytes: parts[2], encoding: .ascii),
                version == "HTTP/1.1" || version == "HTTP/1.0",
                let method = String(bytes: parts[0], encoding: .ascii), !method.isEmpty,
                method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
                let target = String(bytes: parts[1], encoding: .ascii), target.hasPrefix("/"),
                target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else { return .failure(status: 400, reason: "malformed request line") }
            requestLine = (method, target)
            return .needMore
        }
        if bytes.isEmpty {
            if headers["transfer-encoding"] != nil || (headers["content-length"].map { $0 != "0" } ?? false) {
                return .failure(status: 413, reason: "this server takes no request body")
            }
            let path: String
            let query: String
            if let mark = target.firstIndex(of: "?") {
                path = String(target[..<mark])
                query = String(target[target.index(after: mark)...])
            } else {
                path = target
                query = ""
            }
            return .request(AdminRequest(method: method, path: path, query: query, headers: headers))
        }
        headerCount += 1
        guard headerCount <= Self.maximumHeaders else { return .failure(status: 431, reason: "too many header fields") }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            let name = String(bytes: bytes[..<colon], encoding: .ascii),
            name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") })
        else { return .failure(status: 400, reason: "malformed header field") }
        let value = String(decoding: bytes[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        let key = name.lowercased()
        if let previous = headers[key] {
            // A repeated Content-Length or Authorization is ambiguous: refuse rather than guess (RFC 9112 §6.3).
            if key == "content-length" || key == "authorization" || key == "host" {
                return .failure(status: 400, reason: "repeated \(key) header")
            }
            headers[key] = previous + ", " + value
        } else {
            headers[key] = value
        }
        return .needMore
    }
}

/// One request per connection, `Connection: close`: enough for a status page, a scraper and curl, and nothing to
/// keep track of between requests.
public final class AdminHTTPServer: Sendable {
    public typealias Handler = @Sendable (AdminRequest) -> AdminResponse

    private let listener: Listener
    public var boundAddress: HostPort { listener.boundAddress }

    /// `token`: when set, every request needs `Authorization: Bearer TOKEN` (or Basic with TOKEN as password).
    /// The handler runs on a global queue (it reads the database), never on the connection's queue.
    public init(
        address: HostPort, tls: TLSContext?, token: Redacted<String>?, logger: Logger, handler: @escaping Handler
    ) throws {
        let expected = token.map { Array($0.revealed.utf8) }
        listener = try Listener(address: address, tls: tls) { connection in
            connection.queue.async {
                var parser = AdminRequestParser()
                var answered = false
                func answer(_ response: AdminResponse, head: Bool) {
                    answered = true
                    connection.pauseReading()
                    connection.write(Self.serialize(response, head: head))
                    connection.closeAfterFlushing()
                }
                connection.readMode = .lines(maximumLength: AdminRequestParser.maximumLine)
                connection.setIdleTimeout(seconds: 15)
                connection.onEvent = { event in
                    guard !answered else { return }
                    switch event {
                    case .line(let bytes):
                        switch parser.line(bytes) {
                        case .needMore:
                            break
                        case .failure(let status, let reason):
                            answer(.text(status, "Bad request: \(reason)."), head: false)
                        case .request(let request):
                            let head = request.method == "HEAD"
                            guard request.method == "GET" || head else {
                                return answer(
                                    AdminResponse(
                                        status: 405, contentType: "text/plain; charset=utf-8",
                                        body: Array("Only GET and HEAD are served.\n".utf8),
                                        extraHeaders: [("Allow", "GET, HEAD")]), head: false)
                            }
                            if let expected, !Self.authorized(request.headers["authorization"], expected: expected) {
                                return answer(
                                    AdminResponse(
                                        status: 401, contentType: "text/plain; charset=utf-8",
                                        body: Array("A token is required: Authorization: Bearer TOKEN.\n".utf8),
                                        extraHeaders: [("WWW-Authenticate", "Bearer, Basic realm=\"MailGate\"")]),
                                    head: head)
                            }
                            answered = true
                            connection.pauseReading()
                            DispatchQueue.global(qos: .utility).async {
                                let response = handler(request)
                                connection.queue.async {
                                    connection.write(Self.serialize(response, head: head))
                                    connection.closeAfterFlushing()
                                }
                            }
                        }
                    case .lineTooLong:
                        answer(.text(431, "Bad request: a line is longer than \(AdminRequestParser.maximumLine) bytes."), head: false)
                    case .idleTimeout:
                        answer(.text(408, "Request timeout."), head: false)
                    case .raw, .bytes, .writable, .closed:
                        break
                    }
                }
                connection.start()
            }
        }
        logger.notice("admin status server on \(listener.boundAddress)\(tls == nil ? "" : " (HTTPS)")")
    }

    public func close() { listener.close() }

    /// Bearer TOKEN, or Basic with any user and TOKEN as the password (what a browser's login prompt sends).
    static func authorized(_ header: String?, expected: [UInt8]) -> Bool {
        guard let header else { return false }
        let parts = header.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return false }
        switch parts[0].lowercased() {
        case "bearer":
            return constantTimeEqual(Array(parts[1].utf8), expected)
        case "basic":
            guard let decoded = Base64Codec.standard.decode(parts[1], padding: .optional),
                let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
            else { return false }
            return constantTimeEqual(Array(decoded[(colon + 1)...]), expected)
        default:
            return false
        }
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        default: "Status"
        }
    }

    static func serialize(_ response: AdminResponse, head: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
        text += "Content-Type: \(response.contentType)\r\n"
        text += "Content-Length: \(response.body.count)\r\n"
        text += "Connection: close\r\n"
        text += "Cache-Control: no-store\r\n"
        text += "X-Content-Type-Options: nosniff\r\n"
        text += "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:\r\n"
        for (name, value) in response.extraHeaders { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (head ? [] : response.body)
    }
}
