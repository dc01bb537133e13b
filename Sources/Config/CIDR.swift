// Config: IPv4 and IPv6 address ranges (relay_networks) and the address parsing they need.
internal import Glibc

/// An address range such as `192.168.10.0/24` or `fd00::/8`; a bare address is a single-host range.
///
/// Host bits below the prefix are cleared on parsing, so `192.168.10.7/24` and `192.168.10.0/24` are equal.
/// An IPv4 range also contains the IPv4-mapped IPv6 form of its addresses (`::ffff:192.168.10.7`), which is how a
/// dual-stack listener reports IPv4 clients.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// Network address bytes: 4 for IPv4, 16 for IPv6, host bits cleared.
    public let network: [UInt8]
    /// Prefix length: 0–32 for IPv4, 0–128 for IPv6.
    public let prefixLength: Int

    /// Parses `address/prefix` or a bare `address`; `nil` when either part is malformed or the prefix is too long.
    public init?(parsing text: String) {
        guard text.utf8.count <= 64 else { return nil }
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let bytes = IPAddress.parse(String(parts[0])) else { return nil }
        let maximum = bytes.count * 8
        var prefix = maximum
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(digits), value <= maximum
            else { return nil }
            prefix = value
        }
        self.network = Self.mask(bytes, prefix: prefix)
        self.prefixLength = prefix
    }

    /// Whether `ipAddress` (textual, IPv4 or IPv6, optionally with a `%zone`) lies inside this range.
    /// Unparsable text is never contained.
    public func contains(ipAddress: String) -> Bool {
        var text = Substring(ipAddress)
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }
        guard var bytes = IPAddress.parse(String(text)) else { return false }
        if network.count == 4, bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF,
            bytes[11] == 0xFF
        {
            bytes = Array(bytes[12..<16])
        }
        guard bytes.count == network.count else { return false }
        return Self.mask(bytes, prefix: prefixLength) == network
    }

    public var description: String { "\(IPAddress.format(network))/\(prefixLength)" }

    private static func mask(_ bytes: [UInt8], prefix: Int) -> [UInt8] {
        var out = bytes
        for index in out.indices {
            let bitsHere = max(0, min(8, prefix - index * 8))
            let keep: UInt8 = bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
            out[index] &= keep
        }
        return out
    }
}

/// Textual IP addresses through the C library's own parser (`inet_pton`), so that what we accept is what the
/// socket layer accepts.
enum IPAddress {
    /// 4 bytes for a dotted-quad IPv4 address, 16 for IPv6, `nil` for anything else (names included).
    static func parse(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// The canonical text of 4 or 16 address bytes.
    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
