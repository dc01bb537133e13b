// IMAP: the two base64 alphabets IMAP needs (RFC 4648 for SASL, RFC 3501's modified one for mailbox names).

/// Base64 without Foundation: standard (`+/` with `=` padding) for SASL payloads, modified (`+,` unpadded)
/// for mailbox names.
enum IMAPBase64 {
    static let standardAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let modifiedAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,".utf8)

    static func encode(_ bytes: some Collection<UInt8>, alphabet: [UInt8], pad: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = second == nil ? nil : iterator.next()
            let group = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            if second != nil { out.append(alphabet[Int(group >> 6 & 0x3F)]) } else if pad { out.append(UInt8(ascii: "=")) }
            if third != nil { out.append(alphabet[Int(group & 0x3F)]) } else if pad { out.append(UInt8(ascii: "=")) }
        }
        return out
    }

    /// Decodes standard base64, padding optional; nil on any byte outside the alphabet or a dangling sextet.
    static func decodeStandard(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        var sawPadding = false
        for byte in text {
            if byte == UInt8(ascii: "=") {
                sawPadding = true
                continue
            }
            guard !sawPadding, let value = sextet(byte, alphabet62: UInt8(ascii: "+"), alphabet63: UInt8(ascii: "/"))
            else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard bits < 6 else { return nil }
        return out
    }

    static func sextet(_ byte: UInt8, alphabet62: UInt8, alphabet63: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
        case alphabet62: return 62
        case alphabet63: return 63
        default: return nil
        }
    }
}
