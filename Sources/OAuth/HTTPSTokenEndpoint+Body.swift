// OAuth: the HTTPS client's POST of an arbitrary body (an RFC 3161 time-stamp query), same TLS and bounds.

extension HTTPSTokenEndpoint {
    /// Time-stamp responses: 16 KiB of headers, 256 KiB of body (a token with a certificate chain is a few KiB).
    public static let timeStampLimits = HTTPLimits(headerBytes: 16_384, headerLines: 100, bodyBytes: 262_144)

    /// POSTs `body` as `contentType` and returns the response, bounded by `limits` (e.g. `timeStampLimits`).
    public func post(url: String, contentType: String, accept: String, body: [UInt8]) async throws(OAuthError)
        -> HTTPResponse
    {
        try await exchange(url: url) { endpoint in
            let head =
                "POST \(endpoint.target) HTTP/1.1\r\n"
                + "Host: \(endpoint.hostHeader)\r\n"
                + "Content-Type: \(contentType)\r\n"
                + "Content-Length: \(body.count)\r\n"
                + "Accept: \(accept)\r\n"
                + "User-Agent: MailGate\r\n"
                + "Connection: close\r\n\r\n"
            return Array(head.utf8) + body
        }
    }
}
