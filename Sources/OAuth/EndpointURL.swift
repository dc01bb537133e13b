// OAuth: the parts of an identity-platform URL that an HTTP/1.1 request needs (scheme, host, port, target).

/// An `https://host[:port]/path?query` URL split for a request line and a `Host` header.
///
/// Only `https` is accepted, except `http` to a loopback host when a test explicitly allows it; user info and
/// fragments are refused, so nothing in a configured authority can smuggle credentials or change the target.
struct EndpointURL: Sendable, Equatable {
    /// `https` or (loopback tests only) `http`.
    var scheme: String
    /// Host name or IP literal, without IPv6 brackets.
    var host: String
    /// Explicit port, else 443 for https and 80 for http.
    var port: Int
    /// Origin-form request target: path plus optional `?query`, always starting with `/`.
    var target: String

    /// The `Host` header value: the host (bracketed if IPv6) plus the port when it is not the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        return port == defaultPort ? name : "\(name):\(port)"
    }

    /// True for `localhost`, `127.0.0.0/8` and `::1`.
    var isLoopback: Bool {
        let lower = host.lowercased()
        return lower == "localhost" || lower.hasPrefix("127.") || lower == "::1"
    }

    init(parsing url: String, allowInsecureLoopback: Bool) throws(OAuthError) {
        guard url.utf8.count <= 2_048,
            url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            let colon = url.firstIndex(of: ":"),
            url[colon...].hasPrefix("://")
        else { throw .invalidURL(url: url) }
        let scheme = url[..<colon].lowercased()
        let rest = url[url.index(colon, offsetBy: 3)...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.contains("#") || authority.contains("@") || authority.isEmpty { throw .invalidURL(url: url) }
        if target.isEmpty { target = "/" }
        if target.hasPrefix("?") { target = "/" + target }

        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(url: url) }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL(url: url) }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        if host.isEmpty { throw .invalidURL(url: url) }
        var port: Int
        switch scheme {
        case "https": port = 443
        case "http": port = 80
        default: throw .invalidURL(url: url)
        }
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, let value = Int(portText), value > 0, value <= 65_535
            else { throw .invalidURL(url: url) }
            port = value
        }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.target = target
        if scheme == "http" && !(allowInsecureLoopback && isLoopback) {
            throw .insecureEndpoint(url: url)
        }
    }
}
