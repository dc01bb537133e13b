// Config: "host:port" endpoints for listeners and upstreams, IPv6 in brackets.

/// A host and port as written in the configuration: `127.0.0.1:1587`, `[::1]:1143`, `smtp.office365.com:587`.
///
/// The host is kept as text (a name is resolved when connecting); the port is 1–65535 (0, "any port", is a test
/// facility and never valid in a configuration file).
public struct HostPortSpec: Sendable, Hashable, CustomStringConvertible {
    /// Host name, IPv4 address, or IPv6 address without brackets.
    public var host: String
    /// TCP port, 1–65535.
    public var port: Int

    /// The longest host accepted (a DNS name is at most 253 characters).
    public static let maximumHostLength = 253

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[ipv6]:port`; `nil` when malformed, when the host is not a valid name or address,
    /// or when the port is outside 1–65535.
    public init?(parsing text: String) {
        guard text.utf8.count <= Self.maximumHostLength + 8 else { return nil }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard IPAddress.parse(String(host))?.count == 16 else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            // An unbracketed host with a colon would be an IPv6 address whose port cannot be told apart.
            guard !host.contains(":"), Self.isValidHost(String(host)) else { return nil }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let port = Int(portText), (1...65_535).contains(port)
        else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Whether the host is a loopback address (127.0.0.0/8, ::1) or `localhost`: a listener there is reachable only
    /// from this machine, which is what lets it run without TLS (DESIGN §7).
    public var isLoopback: Bool {
        if host.lowercased() == "localhost" { return true }
        guard let bytes = IPAddress.parse(host) else { return false }
        if bytes.count == 4 { return bytes[0] == 127 }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        // IPv4-mapped loopback, ::ffff:127.x.y.z
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return bytes[12] == 127 }
        return false
    }

    /// A DNS name (letters, digits, hyphens, dots; labels of 1–63 characters) or an IPv4 address.
    static func isValidHost(_ host: String) -> Bool {
        guard !host.isEmpty, host.utf8.count <= maximumHostLength else { return false }
        if IPAddress.parse(host) != nil { return true }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-") else {
                return false
            }
            let ok = label.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
            guard ok else { return false }
        }
        return true
    }
}
