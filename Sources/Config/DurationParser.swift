// Config: durations written as "90", "30s", "15m", "2h", "1d" or combined ("1h30m"), turned into seconds.

/// Parses the duration syntax used by `[download] every`, the `[limits]` timeouts and `stats --since`.
///
/// A duration is one or more groups of decimal digits, each followed by a unit `s`, `m`, `h` or `d`; a bare
/// number means seconds. No signs, spaces or fractions: a duration in a config file should be read at a glance.
public enum DurationParser {
    /// The longest text accepted; anything longer is not a duration a person would write.
    public static let maximumTextLength = 32
    /// The largest duration accepted at all (366 days), so that every result fits comfortably in any clock.
    public static let maximumSeconds = 366 * 86_400

    /// Seconds for `text`, or `nil` when it is not a duration or exceeds `maximumSeconds`.
    public static func seconds(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumTextLength else { return nil }
        var total = 0
        var number: Int? = nil
        var sawUnit = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int(byte - UInt8(ascii: "0"))
                let next = (number ?? 0) * 10 + digit
                guard next <= maximumSeconds else { return nil }
                number = next
            case UInt8(ascii: "s"), UInt8(ascii: "m"), UInt8(ascii: "h"), UInt8(ascii: "d"):
                guard let value = number else { return nil }
                let unit: Int
                switch byte {
                case UInt8(ascii: "s"): unit = 1
                case UInt8(ascii: "m"): unit = 60
                case UInt8(ascii: "h"): unit = 3_600
                default: unit = 86_400
                }
                let (product, overflow) = value.multipliedReportingOverflow(by: unit)
                guard !overflow, product <= maximumSeconds else { return nil }
                total += product
                guard total <= maximumSeconds else { return nil }
                number = nil
                sawUnit = true
            default:
                return nil
            }
        }
        if let trailing = number {
            // A bare number is seconds, but only on its own: "1h30" is ambiguous and refused.
            guard !sawUnit else { return nil }
            total = trailing
        }
        return total
    }

    /// Formats seconds the way the configuration writes them ("15m", "1h30m", "0s"), for messages and `config check`.
    public static func format(_ seconds: Int) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var out = ""
        for (unit, letter) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] where rest >= unit {
            out += "\(rest / unit)\(letter)"
            rest %= unit
        }
        return out
    }
}
