// POP3: reading a multi-line response body, removing dot-stuffing, across arbitrary chunk boundaries.

/// Streams the body of a multi-line response (RFC 1939 §3): lines that start with `.` lose that first `.`,
/// and a line holding only `.` ends the body. Works byte by byte, so the terminator and stuffed dots may be
/// split across reads; the CRLF of the last body line stays in the data, the terminator line does not.
///
///     S: +OK 120 octets
///     S: ..dot-stuffed line      → ".dot-stuffed line"
///     S: .
public struct POP3MultilineReader: Sendable {
    private enum Position: Sendable {
        /// At the start of a line.
        case lineStart
        /// Inside a line.
        case middle
        /// After a CR inside a line.
        case afterCR
        /// After a `.` at the start of a line (held back: stuffing or terminator).
        case dotAtLineStart
        /// After `.` CR at the start of a line (held back: maybe the terminator).
        case dotCR
    }

    /// Largest body accepted, counted after un-stuffing.
    public let maximumSize: Int
    private var position: Position = .lineStart
    private var size = 0
    public private(set) var isComplete = false

    public init(maximumSize: Int) {
        self.maximumSize = maximumSize
    }

    /// Consumes bytes up to the end of the body. Returns the un-stuffed data from this chunk, how many input
    /// bytes belonged to the body (the rest is the next response), and whether the terminator was seen.
    public mutating func read(_ bytes: some Collection<UInt8>) throws(POP3Error) -> (data: [UInt8], consumedCount: Int, isComplete: Bool) {
        var data: [UInt8] = []
        data.reserveCapacity(bytes.count)
        var consumed = 0
        for byte in bytes {
            guard !isComplete else { break }
            consumed += 1
            step(byte, into: &data)
        }
        size += data.count
        guard size <= maximumSize else { throw .responseTooLarge(actualCount: size, maximumCount: maximumSize) }
        return (data, consumed, isComplete)
    }

    private mutating func step(_ byte: UInt8, into data: inout [UInt8]) {
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        switch position {
        case .lineStart:
            if byte == UInt8(ascii: ".") {
                position = .dotAtLineStart
            } else {
                inLine(byte, into: &data)
            }
        case .middle:
            inLine(byte, into: &data)
        case .afterCR:
            data.append(byte)
            position = byte == lf ? .lineStart : byte == cr ? .afterCR : .middle
        case .dotAtLineStart:
            if byte == cr {
                position = .dotCR
            } else if byte == lf {
                isComplete = true  // ".\n": tolerated terminator
            } else {
                inLine(byte, into: &data)  // the leading dot was stuffing: drop it
            }
        case .dotCR:
            if byte == lf {
                isComplete = true
            } else {
                // ".\r" then something else: the dot was stuffing, the CR is data.
                data.append(cr)
                position = .afterCR
                step(byte, into: &data)
            }
        }
    }

    private mutating func inLine(_ byte: UInt8, into data: inout [UInt8]) {
        data.append(byte)
        position = byte == UInt8(ascii: "\r") ? .afterCR : byte == UInt8(ascii: "\n") ? .lineStart : .middle
    }
}
