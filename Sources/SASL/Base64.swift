// SASL: strict RFC 4648 base64, the only encoding SASL uses on the wire.

/// Standard base64 (RFC 4648 §4) with padding; strict on decode, because SASL responses are attacker input.
enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Encodes bytes with `=` padding.
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let value = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            out.append(alphabet[Int(value >> 18 & 0x3F)])
            out.append(alphabet[Int(value >> 12 & 0x3F)])
            out.append(second == nil ? UInt8(ascii: "=") : alphabet[Int(value >> 6 & 0x3F)])
            out.append(third == nil ? UInt8(ascii: "=") : alphabet[Int(value & 0x3F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded base64; `nil` for any byte outside the alphabet, a length not a multiple of 4,
    /// misplaced padding, or non-zero bits in the padding position (non-canonical encodings).
    static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            let c0 = decodeTable[Int(input[index])]
            let c1 = decodeTable[Int(input[index + 1])]
            guard c0 != 0xFF, c1 != 0xFF else { return nil }
            let p2 = input[index + 2] == UInt8(ascii: "=")
            let p3 = input[index + 3] == UInt8(ascii: "=")
            if p2 && !p3 { return nil }
            if (p2 || p3) && !isLast { return nil }
            let c2 = p2 ? 0 : decodeTable[Int(input[index + 2])]
            let c3 = p3 ? 0 : decodeTable[Int(input[index + 3])]
            guard c2 != 0xFF, c3 != 0xFF else { return nil }
            let value = UInt32(c0) << 18 | UInt32(c1) << 12 | UInt32(c2) << 6 | UInt32(c3)
            out.append(UInt8(value >> 16 & 0xFF))
            if p2 {
                guard value & 0xFFFF == 0 else { return nil }
            } else {
                out.append(UInt8(value >> 8 & 0xFF))
                if p3 {
                    guard value & 0xFF == 0 else { return nil }
                } else {
                    out.append(UInt8(value & 0xFF))
                }
            }
            index += 4
        }
        return out
    }
}
