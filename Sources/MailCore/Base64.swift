// MailCore: the one base64 codec (RFC 4648 §4 and §5, RFC 3501's modified alphabet) every module uses.

/// One base64 alphabet with canonical (strict) decoding.
///
/// SASL payloads, PKCE values, password-hash strings and IMAP mailbox names all use base64, with different
/// alphabets and padding rules; they are attacker input, so decoding accepts exactly one spelling per value:
/// only alphabet characters, padding only where the rule allows it, never a length of 1 mod 4, and zero
/// leftover bits.
public struct Base64Codec: Sendable {
    /// What to do with `=` padding.
    public enum Padding: Sendable {
        /// Encode with padding; decoding requires it (length a multiple of 4). SASL (RFC 4422) uses this.
        case required
        /// Encode without padding; decoding accepts exact padding or none.
        case optional
        /// Encode without padding; decoding refuses any `=`.
        case forbidden
    }

    /// RFC 4648 §4 (`+`, `/`).
    public static let standard = Base64Codec(last2: (UInt8(ascii: "+"), UInt8(ascii: "/")))
    /// RFC 4648 §5 (`-`, `_`): PKCE (RFC 7636), state parameters.
    public static let url = Base64Codec(last2: (UInt8(ascii: "-"), UInt8(ascii: "_")))
    /// RFC 3501 §5.1.3 modified base64 (`+`, `,`), always unpadded: IMAP mailbox names.
    public static let imapModified = Base64Codec(last2: (UInt8(ascii: "+"), UInt8(ascii: ",")))

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

    /// The 6-bit value of one alphabet character, `nil` for any other byte.
    public func value(of character: UInt8) -> UInt8? {
        let value = values[Int(character)]
        return value == 0xFF ? nil : value
    }

    /// Encodes `bytes`; `=` padding only with `.required`.
    public func encode(_ bytes: some Collection<UInt8>, padding: Padding) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = second == nil ? nil : iterator.next()
            let group = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            if second != nil {
                out.append(alphabet[Int(group >> 6 & 0x3F)])
            } else if padding == .required {
                out.append(UInt8(ascii: "="))
            }
            if third != nil {
                out.append(alphabet[Int(group & 0x3F)])
            } else if padding == .required {
                out.append(UInt8(ascii: "="))
            }
        }
        return out
    }

    /// `encode(_:padding:)` as text.
    public func encodeString(_ bytes: some Collection<UInt8>, padding: Padding) -> String {
        String(decoding: encode(bytes, padding: padding), as: UTF8.self)
    }

    /// Decodes strictly per `padding`; `nil` for anything that is not the one canonical spelling of a value.
    public func decode(_ text: some Collection<UInt8>, padding: Padding) -> [UInt8]? {
        var input = Array(text)
        if let firstPad = input.firstIndex(of: UInt8(ascii: "=")) {
            guard padding != .forbidden, input.count % 4 == 0 else { return nil }
            let padCount = input.count - firstPad
            guard padCount <= 2, input[firstPad...].allSatisfy({ $0 == UInt8(ascii: "=") }) else { return nil }
            input.removeLast(padCount)
            guard input.count % 4 != 0 else { return nil }  // "====" style padding with nothing before it
        } else if padding == .required {
            guard input.count % 4 == 0 else { return nil }
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

    /// `decode(_:padding:)` for text.
    public func decode(_ text: String, padding: Padding) -> [UInt8]? {
        decode(Array(text.utf8), padding: padding)
    }
}
