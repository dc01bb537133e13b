// Transport: host:port and IP address values parsed from configuration and taken from sockets.

/// A host name or IP literal plus a TCP port, as written in configuration (`"127.0.0.1:1587"`, `"[::1]:25"`,
/// `"outlook.office365.com:993"`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// A host name, an IPv4 literal, or an IPv6 literal without brackets.
    public var host: String
    /// 0 through 65535; 0 asks a listener for any free port.
    public var port: Int

    /// Creates a value from parts; the port must be 0...65535 and the host non-empty.
    public init?(host: String, port: Int) {
        guard !host.isEmpty, (0...65_535).contains(port) else { return nil }
        guard !host.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") }) else { return nil }
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `a.b.c.d:port` or `[v6]:port`; an IPv6 literal needs brackets, so `::1:25` is refused.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        let hostPart: [UInt8]
        let portPart: [UInt8]
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")),
                close + 1 < bytes.count, bytes[close + 1] == UInt8(ascii: ":")
            else { return nil }
            hostPart = Array(bytes[1..<close])
            portPart = Array(bytes[(close + 2)...])
            guard hostPart.contains(UInt8(ascii: ":")),
                IPAddress(parsing: String(decoding: hostPart, as: UTF8.self)) != nil
            else { return nil }
        } else {
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
                bytes.lastIndex(of: UInt8(ascii: ":")) == colon
            else { return nil }
            hostPart = Array(bytes[..<colon])
            portPart = Array(bytes[(colon + 1)...])
        }
        guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        let port = portPart.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        self.init(host: String(decoding: hostPart, as: UTF8.self), port: port)
    }

    /// `host:port`, with brackets around an IPv6 literal so the text parses back.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address in network byte order, for `relay_networks` CIDR checks.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 or 16 bytes, most significant first.
    public let bytes: [UInt8]

    /// Wraps raw address bytes; only 4 or 16 bytes make an address.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses a numeric IPv4 or IPv6 literal (no brackets, no zone); host names are refused.
    public init?(parsing text: String) {
        if let v4 = IPAddress.parseIPv4(Array(text.utf8)) {
            self.bytes = v4
        } else if let v6 = IPAddress.parseIPv6(Array(text.utf8)) {
            self.bytes = v6
        } else {
            return nil
        }
    }

    /// True for 4-byte addresses.
    public var isIPv4: Bool { bytes.count == 4 }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports) as plain IPv4;
    /// any other address unchanged. Compare client addresses only after this.
    public var unmapped: IPAddress {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else {
            return self
        }
        return IPAddress(bytes: Array(bytes[12..<16]))!
    }

    /// True if the first `prefixLength` bits equal those of `network` (same family after unmapping).
    public func isIn(network: IPAddress, prefixLength: Int) -> Bool {
        let mine = unmapped.bytes
        let theirs = network.unmapped.bytes
        guard mine.count == theirs.count, prefixLength >= 0, prefixLength <= mine.count * 8 else { return false }
        var bits = prefixLength
        var index = 0
        while bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if mine[index] & mask != theirs[index] & mask { return false }
            bits -= 8
            index += 1
        }
        return true
    }

    /// Dotted quad for IPv4; lower-case hex groups with the longest zero run as `::` for IPv6 (RFC 5952).
    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = (0..<8).map { Int(bytes[$0 * 2]) << 8 | Int(bytes[$0 * 2 + 1]) }
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    private static func parseIPv4(_ text: [UInt8]) -> [UInt8]? {
        let parts = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            guard part.count == 1 || part.first != 0x30 else { return nil }
            let value = part.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            guard value <= 255 else { return nil }
            out.append(UInt8(value))
        }
        return out
    }

    private static func parseIPv6(_ text: [UInt8]) -> [UInt8]? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        let colon = UInt8(ascii: ":")
        var head: [Int] = []
        var tail: [Int] = []
        var sawGap = false
        var rest = text[...]
        if rest.starts(with: [colon, colon]) {
            sawGap = true
            rest = rest.dropFirst(2)
            if rest.isEmpty { return [UInt8](repeating: 0, count: 16) }
        } else if rest.first == colon {
            return nil
        }
        var embeddedV4: [UInt8]? = nil
        while !rest.isEmpty {
            let end = rest.firstIndex(of: colon) ?? rest.endIndex
            let piece = rest[rest.startIndex..<end]
            if piece.contains(UInt8(ascii: ".")) {
                guard end == rest.endIndex, let v4 = parseIPv4(Array(piece)) else { return nil }
                embeddedV4 = v4
                rest = rest[end...]
                break
            }
            guard !piece.isEmpty, piece.count <= 4 else { return nil }
            var value = 0
            for byte in piece {
                guard let digit = hexValue(byte) else { return nil }
                value = value * 16 + digit
            }
            if sawGap { tail.append(value) } else { head.append(value) }
            rest = rest[end...]
            if rest.starts(with: [colon, colon]) {
                guard !sawGap else { return nil }
                sawGap = true
                rest = rest.dropFirst(2)
            } else if rest.first == colon {
                rest = rest.dropFirst()
                if rest.isEmpty { return nil }
            }
        }
        var groups = head + tail
        if let v4 = embeddedV4 {
            groups.append(Int(v4[0]) << 8 | Int(v4[1]))
            groups.append(Int(v4[2]) << 8 | Int(v4[3]))
        }
        let tailGroups = tail.count + (embeddedV4 == nil ? 0 : 2)
        if sawGap {
            guard groups.count < 8 else { return nil }
            let zeros = [Int](repeating: 0, count: 8 - groups.count)
            groups =
                Array(groups[0..<(groups.count - tailGroups)]) + zeros + Array(groups[(groups.count - tailGroups)...])
        } else if groups.count != 8 {
            return nil
        }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }
}
