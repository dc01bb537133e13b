// CryptoTests: small helpers for the Crypto test suites.

/// Bytes from a hex string written in a test ("" → []); traps on a typo so a vector cannot be silently wrong.
func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count % 2 == 0, "odd hex length in a test vector")
    func value(_ digit: UInt8) -> UInt8 {
        switch digit {
        case 0x30...0x39: return digit - 0x30
        case 0x61...0x66: return digit - 0x61 + 10
        default: preconditionFailure("bad hex digit in a test vector")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}
