// OAuth: a bounded HTTP/1.1 reader for the token client's responses and the loopback listener's one request.

/// Bounds for reading one HTTP message; every buffer has one (STYLE.md rule 3).
public struct HTTPLimits: Sendable, Equatable {
    /// Status or request line plus all header lines, CRLFs included.
    public var headerBytes: Int
    /// Header field lines (trailers of a chunked body count as well).
    public var headerLines: Int
    /// Body after de-chunking.
    public var bodyBytes: Int

    /// Limits from their parts.
    public init(headerBytes: Int, headerLines: Int, bodyBytes: Int) {
        self.headerBytes = headerBytes
        self.headerLines = headerLines
        self.bodyBytes = bodyBytes
    }

    /// Token and device-code responses: 16 KiB of headers in at most 100 lines, 64 KiB of body.
    public static let tokenResponse = HTTPLimits(headerBytes: 16_384, headerLines: 100, bodyBytes: 65_536)
    /// The browser's redirect request: 8 KiB of request line and headers; a GET has no body.
    public static let redirectRequest = HTTPLimits(headerBytes: 8_192, headerLines: 100, bodyBytes: 0)
}

/// The request line and headers of one request (the loopback listener only needs these).
struct HTTPRequestHead: Sendable {
    var method: String
    /// Origin-form target, e.g. `/?code=…&state=…`.
    var target: String
    var headers: [(name: String, value: String)]

    /// The path without the query.
    var path: String {
        guard let mark = target.firstIndex(of: "?") else { return target }
        return String(target[..<mark])
    }

    /// The raw query after `?` (empty when there is none).
    var query: String {
        guard let mark = target.firstIndex(of: "?") else { return "" }
        return String(target[target.index(after: mark)...])
    }
}

/// Reads HTTP/1.1 messages from a source of byte chunks, never holding more than the limits allow.
///
/// The source returns `nil` at end of stream. Bare LF line ends are tolerated, obsolete line folding and
/// control characters in header lines are not.
struct HTTPMessageReader {
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEOF = false
    private let limits: HTTPLimits
    private let source: () async throws(OAuthError) -> [UInt8]?

    init(limits: HTTPLimits, source: @escaping () async throws(OAuthError) -> [UInt8]?) {
        self.limits = limits
        self.source = source
    }

    // MARK: - Responses

    /// Reads one response to a POST, skipping up to 4 interim (1xx) responses.
    mutating func readResponse() async throws(OAuthError) -> HTTPResponse {
        var headerBudget = limits.headerBytes
        var lineBudget = limits.headerLines
        for _ in 0..<5 {
            guard let statusLine = try await readLine(budget: &headerBudget, what: "response headers") else {
                throw .invalidResponse(reason: "the connection closed before a status line arrived")
            }
            let status = try Self.parseStatusLine(statusLine)
            let headers = try await readHeaderFields(budget: &headerBudget, lines: &lineBudget)
            if (100..<200).contains(status) {
                if status == 101 { throw .invalidResponse(reason: "unexpected protocol switch") }
                continue
            }
            let body = try await readBody(status: status, headers: headers, budget: &headerBudget, lines: &lineBudget)
            return HTTPResponse(status: status, headers: headers, body: body)
        }
        throw .invalidResponse(reason: "too many interim responses")
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]` (RFC 9112 §4).
    static func parseStatusLine(_ line: [UInt8]) throws(OAuthError) -> Int {
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, Array(line[0..<7]) == prefix,
            line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"),
            line[8] == UInt8(ascii: " "),
            line.count == 12 || line[12] == UInt8(ascii: " ")
        else { throw .invalidResponse(reason: "malformed status line") }
        var status = 0
        for byte in line[9..<12] {
            guard byte >= 0x30 && byte <= 0x39 else { throw .invalidResponse(reason: "malformed status code") }
            status = status * 10 + Int(byte - 0x30)
        }
        guard (100...599).contains(status) else { throw .invalidResponse(reason: "status code out of range") }
        for byte in line.dropFirst(13) where byte < 0x20 && byte != 0x09 || byte == 0x7F {
            throw .invalidResponse(reason: "control character in the status line")
        }
        return status
    }

    private mutating func readBody(
        status: Int, headers: [(name: String, value: String)], budget: inout Int, lines: inout Int
    ) async throws(OAuthError) -> [UInt8] {
        if status == 204 || status == 304 { return [] }
        let transferEncodings = headers.filter { $0.name.lowercased() == "transfer-encoding" }
        let lengths = headers.filter { $0.name.lowercased() == "content-length" }
        if !transferEncodings.isEmpty {
            if !lengths.isEmpty {
                throw .invalidResponse(reason: "both Transfer-Encoding and Content-Length are present")
            }
            let codings = transferEncodings.flatMap { $0.value.split(separator: ",") }
                .map { $0.trimmingASCIISpaces().lowercased() }
            if codings.last == "chunked" {
                guard codings.dropLast().allSatisfy({ $0 == "identity" }) else {
                    throw .invalidResponse(reason: "unsupported transfer coding")
                }
                return try await readChunkedBody(budget: &budget, lines: &lines)
            }
            return try await readToEOF()
        }
        if !lengths.isEmpty {
            var length: Int?
            for field in lengths {
                for piece in field.value.split(separator: ",", omittingEmptySubsequences: false) {
                    let value = try Self.parseDecimal(Array(piece.trimmingASCIISpaces().utf8))
                    if let known = length, known != value {
                        throw .invalidResponse(reason: "conflicting Content-Length values")
                    }
                    length = value
                }
            }
            guard let length else { throw .invalidResponse(reason: "empty Content-Length") }
            if length > limits.bodyBytes { throw .responseTooLarge(what: "response body", limit: limits.bodyBytes) }
            return try await readExactly(length)
        }
        return try await readToEOF()
    }

    /// Non-negative decimal without sign, overflow-safe (nginx's `len > MAX / 10` guard, here at 18 digits).
    static func parseDecimal(_ digits: [UInt8]) throws(OAuthError) -> Int {
        guard !digits.isEmpty, digits.count <= 18 else { throw .invalidResponse(reason: "malformed Content-Length") }
        var value = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { throw .invalidResponse(reason: "malformed Content-Length") }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    /// RFC 9112 §7.1: `chunk-size [;ext] CRLF data CRLF` … `0 CRLF [trailers] CRLF`.
    private mutating func readChunkedBody(budget: inout Int, lines: inout Int) async throws(OAuthError) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            var sizeBudget = 1_024
            guard let sizeLine = try await readLine(budget: &sizeBudget, what: nil) else {
                throw .invalidResponse(reason: "the connection closed inside a chunked body")
            }
            let sizeDigits = sizeLine.prefix { $0 != UInt8(ascii: ";") }.filter {
                $0 != UInt8(ascii: " ") && $0 != 0x09
            }
            guard !sizeDigits.isEmpty, sizeDigits.count <= 15 else {
                throw .invalidResponse(reason: "malformed chunk size")
            }
            var size = 0
            for byte in sizeDigits {
                guard let digit = FormEncoding.hexValue(byte) else {
                    throw .invalidResponse(reason: "malformed chunk size")
                }
                size = size << 4 | Int(digit)
            }
            if size == 0 { break }
            if size > limits.bodyBytes - body.count {
                throw .responseTooLarge(what: "response body", limit: limits.bodyBytes)
            }
            body += try await readExactly(size)
            var crlfBudget = 2  // CRLF, or a bare LF
            guard let end = try await readLine(budget: &crlfBudget, what: nil), end.isEmpty else {
                throw .invalidResponse(reason: "chunk data not followed by CRLF")
            }
        }
        _ = try await readHeaderFields(budget: &budget, lines: &lines)  // trailers, bounded and discarded
        return body
    }

    // MARK: - Requests

    /// Reads a request line and headers; used by the loopback listener, which answers GET only.
    mutating func readRequestHead() async throws(OAuthError) -> HTTPRequestHead? {
        var headerBudget = limits.headerBytes
        var lineBudget = limits.headerLines
        var requestLine: [UInt8]?
        // RFC 9112 §2.2: ignore at least one empty line before the request line.
        for _ in 0..<2 {
            guard let line = try await readLine(budget: &headerBudget, what: "request headers") else { return nil }
            if !line.isEmpty {
                requestLine = line
                break
            }
        }
        guard let requestLine else { throw .invalidResponse(reason: "empty request") }
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3,
            let method = String(validating: parts[0], as: UTF8.self), !method.isEmpty,
            method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
            let target = String(validating: parts[1], as: UTF8.self), target.hasPrefix("/"),
            target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            Array(parts[2]) == Array("HTTP/1.1".utf8) || Array(parts[2]) == Array("HTTP/1.0".utf8)
        else { throw .invalidResponse(reason: "malformed request line") }
        let headers = try await readHeaderFields(budget: &headerBudget, lines: &lineBudget)
        return HTTPRequestHead(method: method, target: target, headers: headers)
    }

    // MARK: - Lines and bytes

    /// Header fields up to the empty line, each `name: value` with a token name.
    private mutating func readHeaderFields(budget: inout Int, lines: inout Int) async throws(OAuthError)
        -> [(name: String, value: String)]
    {
        var fields: [(name: String, value: String)] = []
        while true {
            guard let line = try await readLine(budget: &budget, what: "headers") else {
                throw .invalidResponse(reason: "the connection closed inside the headers")
            }
            if line.isEmpty { return fields }
            if lines == 0 { throw .responseTooLarge(what: "number of header lines", limit: limits.headerLines) }
            lines -= 1
            if line[0] == UInt8(ascii: " ") || line[0] == 0x09 {
                throw .invalidResponse(reason: "obsolete header line folding")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
                throw .invalidResponse(reason: "header line without a name")
            }
            let name = line[..<colon]
            guard name.allSatisfy(Self.isTokenByte) else { throw .invalidResponse(reason: "malformed header name") }
            let value = line[(colon + 1)...]
            guard value.allSatisfy({ ($0 >= 0x20 && $0 != 0x7F) || $0 == 0x09 }) else {
                throw .invalidResponse(reason: "control character in a header value")
            }
            fields.append(
                (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self).trimmingASCIISpaces()))
        }
    }

    /// RFC 9110 §5.6.2 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) {
            return true
        }
        return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }

    /// One line without its CRLF (or bare LF); nil at a clean end of stream; charged against `budget`.
    ///
    /// Header lines past the budget are `.responseTooLarge`; framing lines (`what` nil) are `.invalidResponse`.
    private mutating func readLine(budget: inout Int, what: String?) async throws(OAuthError) -> [UInt8]? {
        var searchFrom = start
        while true {
            if let newline = buffer[searchFrom...].firstIndex(of: 0x0A) {
                let consumed = newline + 1 - start
                if consumed > budget { throw overLimit(what) }
                budget -= consumed
                var line = Array(buffer[start..<newline])
                if line.last == 0x0D { line.removeLast() }
                start = newline + 1
                compact()
                return line
            }
            if buffer.count - start > budget { throw overLimit(what) }
            searchFrom = buffer.count
            if try await !fill() {
                if buffer.count == start { return nil }
                throw .invalidResponse(reason: "the connection closed in the middle of a line")
            }
        }
    }

    private func overLimit(_ what: String?) -> OAuthError {
        guard let what else { return .invalidResponse(reason: "malformed chunked framing") }
        return .responseTooLarge(what: what, limit: limits.headerBytes)
    }

    private mutating func readExactly(_ count: Int) async throws(OAuthError) -> [UInt8] {
        while buffer.count - start < count {
            if try await !fill() {
                throw .invalidResponse(reason: "the connection closed before the body was complete")
            }
        }
        let bytes = Array(buffer[start..<(start + count)])
        start += count
        compact()
        return bytes
    }

    private mutating func readToEOF() async throws(OAuthError) -> [UInt8] {
        while try await fill() {
            if buffer.count - start > limits.bodyBytes {
                throw .responseTooLarge(what: "response body", limit: limits.bodyBytes)
            }
        }
        if buffer.count - start > limits.bodyBytes {
            throw .responseTooLarge(what: "response body", limit: limits.bodyBytes)
        }
        let bytes = Array(buffer[start...])
        start = buffer.count
        compact()
        return bytes
    }

    /// Appends the next chunk; false at end of stream.
    private mutating func fill() async throws(OAuthError) -> Bool {
        if atEOF { return false }
        guard let chunk = try await source() else {
            atEOF = true
            return false
        }
        buffer += chunk
        return true
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 4_096 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}

extension StringProtocol {
    /// Drops leading and trailing spaces and tabs (HTTP's OWS), without Foundation.
    func trimmingASCIISpaces() -> String {
        var scalars = Substring(self)[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
