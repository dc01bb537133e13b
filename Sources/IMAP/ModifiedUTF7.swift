// IMAP: modified UTF-7, the encoding of mailbox names on the wire (RFC 3501 §5.1.3).
import MailCore

/// Converts mailbox names between Unicode (what users and the folder map see) and modified UTF-7 (the wire).
///
/// Printable US-ASCII stands for itself except `&`, which is written `&-`; every other run of characters is
/// `&`, the modified base64 (`,` for `/`, no padding) of its UTF-16BE code units, and `-`. Exchange Online offers
/// no `UTF8=ACCEPT`, so every name it lists is in this form: `Gelöschte Elemente` is `Gel&APY-schte Elemente`.
public enum ModifiedUTF7 {
    /// The wire form of `name`. Total: every Unicode string has exactly one minimal encoding.
    public static func encode(_ name: String) -> String {
        var out: [UInt8] = []
        var run: [UInt8] = []  // UTF-16BE bytes of the pending non-ASCII run
        func flush() {
            guard !run.isEmpty else { return }
            out.append(UInt8(ascii: "&"))
            out.append(contentsOf: Base64Codec.imapModified.encode(run, padding: .forbidden))
            out.append(UInt8(ascii: "-"))
            run.removeAll(keepingCapacity: true)
        }
        for scalar in name.unicodeScalars {
            if scalar.value >= 0x20 && scalar.value <= 0x7E {
                flush()
                out.append(UInt8(scalar.value))
                if scalar == "&" { out.append(UInt8(ascii: "-")) }
            } else {
                for unit in String(scalar).utf16 {
                    run.append(UInt8(unit >> 8))
                    run.append(UInt8(unit & 0xFF))
                }
            }
        }
        flush()
        return String(decoding: out, as: UTF8.self)
    }

    /// The Unicode name for the wire form `wire`, rejecting anything that is not the one minimal encoding:
    /// bytes outside printable ASCII, an `&` without `-`, characters outside the modified base64 alphabet,
    /// left-over bits that are not zero or make a whole sextet, printable ASCII that was encoded, unpaired
    /// surrogates, and two encoded runs written back to back.
    public static func decode(_ wire: String) throws(IMAPError) -> String {
        try decode(bytes: Array(wire.utf8))
    }

    /// `decode(_:)` for raw wire bytes (a `MailboxName`'s storage).
    public static func decode(bytes: [UInt8]) throws(IMAPError) -> String {
        var scalars = String.UnicodeScalarView()
        var index = 0
        var previousWasEncodedRun = false
        while index < bytes.count {
            let byte = bytes[index]
            guard byte >= 0x20 && byte <= 0x7E else {
                throw .invalidModifiedUTF7(reason: "byte 0x\(String(byte, radix: 16)) at offset \(index) is not printable ASCII")
            }
            guard byte == UInt8(ascii: "&") else {
                scalars.append(Unicode.Scalar(byte))
                previousWasEncodedRun = false
                index += 1
                continue
            }
            guard let dash = bytes[(index + 1)...].firstIndex(of: UInt8(ascii: "-")) else {
                throw .invalidModifiedUTF7(reason: "the \"&\" at offset \(index) is not terminated by \"-\"")
            }
            if dash == index + 1 {
                scalars.append("&")
                previousWasEncodedRun = false
                index = dash + 1
                continue
            }
            if previousWasEncodedRun {
                throw .invalidModifiedUTF7(reason: "two encoded runs meet at offset \(index); they must be one run")
            }
            let units = try decodeRun(bytes[(index + 1)..<dash], offset: index + 1)
            var iterator = units.makeIterator()
            var utf16 = UTF16()
            decoding: while true {
                switch utf16.decode(&iterator) {
                case .scalarValue(let scalar):
                    if scalar.value >= 0x20 && scalar.value <= 0x7E {
                        throw .invalidModifiedUTF7(reason: "printable ASCII \"\(Character(scalar))\" is encoded at offset \(index)")
                    }
                    scalars.append(scalar)
                case .emptyInput:
                    break decoding
                case .error:
                    throw .invalidModifiedUTF7(reason: "an unpaired UTF-16 surrogate is encoded at offset \(index)")
                }
            }
            previousWasEncodedRun = true
            index = dash + 1
        }
        return String(scalars)
    }

    /// Decodes the modified base64 between `&` and `-` into UTF-16 code units.
    private static func decodeRun(_ text: ArraySlice<UInt8>, offset: Int) throws(IMAPError) -> [UInt16] {
        var bytes: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for (position, byte) in zip(offset..., text) {
            guard let value = Base64Codec.imapModified.value(of: byte)
            else {
                throw .invalidModifiedUTF7(reason: "\"\(Character(Unicode.Scalar(byte)))\" at offset \(position) is not modified base64")
            }
            accumulator = (accumulator << 6 | UInt32(value)) & 0xFFFF
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard bits < 6, accumulator & ((1 << UInt32(bits)) - 1) == 0 else {
            throw .invalidModifiedUTF7(reason: "the encoded run at offset \(offset) has non-zero or surplus padding bits")
        }
        guard bytes.count % 2 == 0 else {
            throw .invalidModifiedUTF7(reason: "the encoded run at offset \(offset) holds half a UTF-16 code unit")
        }
        return stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
    }
}
