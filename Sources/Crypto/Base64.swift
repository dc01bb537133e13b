// Crypto: strict base64 codecs (RFC 4648 §4 and §5) for password hash strings, PKCE and tokens.

/// Base64 with the URL and file name safe alphabet (RFC 4648 §5), written without padding:
/// PKCE verifiers and challenges (RFC 7636), JWT segments, state parameters.
public enum Base64URL {
    /// Encodes `bytes` with `-` and `_`, and no `=` padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        Base64Codec.url.encode(bytes)
    }

    /// Decodes unpadded (or correctly padded) base64url; `nil` for any other character, an impossible
    /// length, or non-zero leftover bits, so one value has exactly one accepted spelling.
    public static func decode(_ text: String) -> [UInt8]? {
        Base64Codec.url.decode(text, allowPadding: true)
    }
}

/// One base64 alphabet with strict decoding; shared by `Base64URL` and the password hash format.
struct Base64Codec: Sendable {
    /// RFC 4648 §4 (`+`, `/`), used unpadded inside "$scrypt$" strings as PHC strings do.
    static let standard = Base64Codec(last2: (UInt8(ascii: "+"), UInt8(ascii: "/")))
    /// RFC 4648 §5 (`-`, `_`).
    static let url = Base64Codec(last2: (UInt8(ascii: "-"), UInt8(ascii: "_")))

    private let alphabet: [UInt8]
    private let values: [UInt8]  // 256 entries, 0xFF = not in the alphabet

    private init(last2: (UInt8, UInt8)) {
        var alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        alphabet.append(last2.0)
        alphabet.append(last2.1)
        var values = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() { values[Int(character)] = UInt8(index) }
        self.alphabet = alphabet
        self.values = values
    }

    /// Encodes without padding.
    func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            out.append(alphabet[Int(group >> 6 & 0x3F)])
            out.append(alphabet[Int(group & 0x3F)])
            index += 3
        }
        let remaining = bytes.count - index
        if remaining == 1 {
            let group = UInt32(bytes[index]) << 16
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
        } else if remaining == 2 {
            let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            out.append(alphabet[Int(group >> 6 & 0x3F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes strictly: only alphabet characters, optional exact `=` padding when `allowPadding`,
    /// never a length of 1 mod 4, and zero leftover bits.
    func decode(_ text: String, allowPadding: Bool) -> [UInt8]? {
        var input = Array(text.utf8)
        if allowPadding, input.count % 4 == 0, let firstPad = input.firstIndex(of: UInt8(ascii: "=")) {
            let padCount = input.count - firstPad
            guard padCount <= 2, input[firstPad...].allSatisfy({ $0 == UInt8(ascii: "=") }) else { return nil }
            input.removeLast(padCount)
            guard input.count % 4 != 0 else { return nil }  // "====" style padding with nothing before it
        }
        guard input.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in input {
            let value = values[Int(character)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        guard accumulator == 0 else { return nil }  // leftover bits must be zero (canonical form)
        return out
    }
}
