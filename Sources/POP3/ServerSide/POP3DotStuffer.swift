// POP3: dot-stuffing a multi-line response body as it streams (RFC 1939 §3).

/// Turns raw message bytes into the body of a multi-line response, chunk by chunk: a line that starts with `.`
/// gets a second `.`, and `finish()` ends the body with `.` CRLF, adding a CRLF first when the data did not end
/// with a line end (a client must never read the terminator as part of the last line). State is kept across
/// chunks, so a `.` at the start of a line is stuffed wherever the chunk boundaries fall. A bare LF counts as a
/// line end too (stuffing more than strictly needed is harmless; stuffing less would let a client see `.`
/// CRLF inside a message).
///
///     "a\r\n.b\r\n"  →  "a\r\n..b\r\n" + ".\r\n"
public struct POP3DotStuffer: Sendable {
    private var atLineStart = true
    private var afterCR = false
    /// Bytes handed in so far (before stuffing).
    public private(set) var inputCount = 0

    public init() {}

    /// The stuffed form of `chunk`.
    public mutating func stuff(_ chunk: some BidirectionalCollection<UInt8>) -> [UInt8] {
        guard !chunk.isEmpty else { return [] }
        inputCount += chunk.count
        var out: [UInt8] = []
        out.reserveCapacity(chunk.count + 8)
        var index = chunk.startIndex
        while index != chunk.endIndex {
            if atLineStart && chunk[index] == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            // Copy through the next LF in one piece.
            let rest = chunk[index...]
            if let lineFeed = rest.firstIndex(of: UInt8(ascii: "\n")) {
                let next = chunk.index(after: lineFeed)
                out.append(contentsOf: chunk[index..<next])
                index = next
                atLineStart = true
                afterCR = false
            } else {
                out.append(contentsOf: rest)
                atLineStart = false
                afterCR = rest.last == UInt8(ascii: "\r")
                index = chunk.endIndex
            }
        }
        return out
    }

    /// The end of the body: a CRLF when the data did not end with a line end, then `.` CRLF.
    public mutating func finish() -> [UInt8] {
        defer { self = POP3DotStuffer() }
        if atLineStart { return Array(".\r\n".utf8) }
        if afterCR { return Array("\n.\r\n".utf8) }
        return Array("\r\n.\r\n".utf8)
    }
}
