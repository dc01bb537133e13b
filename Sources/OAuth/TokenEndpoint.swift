// OAuth: the one seam between the grants and the network: POST a form, get an HTTP response.

/// An HTTP response from the identity platform, already bounded (headers and body) by whoever read it.
public struct HTTPResponse: Sendable {
    /// Status code, 100…599.
    public var status: Int
    /// Header fields in arrival order; names as sent (compare case-insensitively with `header(_:)`).
    public var headers: [(name: String, value: String)]
    /// The body after de-chunking.
    public var body: [UInt8]

    /// A response from its parts (the HTTP reader, or a fake endpoint in tests).
    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header field, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// Sends a form to a token or device-code endpoint.
///
/// Production uses `HTTPSTokenEndpoint`; tests inject a fake. Implementations map every transport failure to an
/// `OAuthError` (`.network`, `.invalidResponse`, `.responseTooLarge`, `.insecureEndpoint`) and must not put the
/// form (it carries codes, secrets and refresh tokens) into any error or log.
public protocol TokenEndpoint: Sendable {
    /// POSTs `form` as `application/x-www-form-urlencoded` to `url` and returns whatever status came back.
    func post(url: String, form: [(String, String)]) async throws(OAuthError) -> HTTPResponse
}
