// SMTP: DATA transparency (RFC 5321 §4.5.2) in both directions, streaming over arbitrary chunk boundaries.

/// Removes dot-stuffing from a client's DATA stream and finds the `CRLF . CRLF` terminator.
///
/// Feed raw chunks as they arrive; each call returns the message bytes it could release (a stuffing dot is
/// held until the next byte decides it), whether the terminator was seen, and any bytes after it (the
/// client's next, pipelined command). Message bytes include the CRLF before the terminating dot. Only CRLF
/// ends a line; bare CR and bare LF are relayed as they are.
///
/// Bounds: more than `maximumMessageSize` message bytes, or a wire line longer than `maximumLineLength`
/// (CRLF included, RFC 5321 §4.5.3.1.6), set `problem`; from then on no further bytes are released, but input
/// is still consumed up to the terminator so the session stays in step with the client and can answer after
/// the end of data.
public struct DotUnstuffer: Sendable {
    /// Why the message cannot be accepted; reported once the terminator has been seen.
    public enum Problem: Sendable, Equatable {
        /// The message (un-stuffed) exceeded the maximum size.
        case messageTooLarge
        /// A text line exceeded the line limit.
        case lineTooLong
    }

    /// What one `feed` produced.
    public struct Output: Sendable, Equatable {
        /// Un-stuffed message bytes to pass on, in order.
        public var message: [UInt8]
        /// Whether `CRLF . CRLF` (or `. CRLF` at the very start) was seen in this chunk.
        public var finished: Bool
        /// Bytes after the terminator (only when `finished`).
        public var leftover: [UInt8]
    }

    private enum Position: Sendable {
        case lineStart, lineStartDot, lineStartDotCR, middle, afterCR, done
    }

    public let maximumMessageSize: Int
    public let maximumLineLength: Int
    /// The first bound that was crossed, if any.
    public private(set) var problem: Problem?
    /// Un-stuffed message bytes seen so far (counted even after a problem, capped at the maximum + 1).
    public private(set) var messageSize = 0
    private var position = Position.lineStart
    private var lineLength = 0

    public init(maximumMessageSize: Int, maximumLineLength: Int = 1_000) {
        self.maximumMessageSize = maximumMessageSize
        self.maximumLineLength = maximumLineLength
    }

    /// Whether the terminator has been seen.
    public var isFinished: Bool { if case .done = position { true } else { false } }

    /// Consumes a chunk of raw DATA bytes.
    public mutating func feed(_ chunk: [UInt8]) -> Output {
        var out = [UInt8]()
        out.reserveCapacity(chunk.count)
        var index = 0
        while index < chunk.count {
            if case .done = position { break }
            let byte = chunk[index]
            index += 1
            lineLength += 1
            if lineLength > maximumLineLength, problem == nil { problem = .lineTooLong }
            switch position {
            case .lineStart:
                if byte == UInt8(ascii: ".") {
                    position = .lineStartDot
                } else {
                    emit(byte, into: &out)
                    position = byte == 0x0D ? .afterCR : .middle
                }
            case .lineStartDot:
                if byte == 0x0D {
                    position = .lineStartDotCR
                } else {
                    emit(byte, into: &out)
                    position = .middle
                }
            case .lineStartDotCR:
                if byte == 0x0A {
                    position = .done
                } else {
                    emit(0x0D, into: &out)
                    emit(byte, into: &out)
                    position = byte == 0x0D ? .afterCR : .middle
                }
            case .middle:
                emit(byte, into: &out)
                if byte == 0x0D { position = .afterCR }
            case .afterCR:
                emit(byte, into: &out)
                if byte == 0x0A {
                    position = .lineStart
                    lineLength = 0
                } else if byte != 0x0D {
                    position = .middle
                }
            case .done:
                break
            }
        }
        let finished = isFinished
        return Output(message: out, finished: finished, leftover: finished ? Array(chunk[index...]) : [])
    }

    private mutating func emit(_ byte: UInt8, into out: inout [UInt8]) {
        if messageSize <= maximumMessageSize { messageSize += 1 }
        if messageSize > maximumMessageSize, problem == nil { problem = .messageTooLarge }
        if problem == nil { out.append(byte) }
    }
}

/// Adds dot-stuffing for sending a message with DATA, streaming.
///
/// Bytes are relayed exactly: a `.` that starts a line (after CRLF, or at the start of the message) gets a
/// second `.` in front; nothing else changes, bare CR/LF included (they are neither normalised nor treated as
/// line ends, matching `DotUnstuffer`). `finish()` adds CRLF only when the message does not already end with
/// one, then the `.` CRLF terminator. So `unstuff(stuff(x))` is `x` for every `x` that ends in CRLF (or is
/// empty), and `x` + CRLF otherwise.
public struct DotStuffer: Sendable {
    private enum Position: Sendable { case lineStart, middle, afterCR }
    private var position = Position.lineStart

    public init() {}

    /// Stuffs one chunk of message bytes.
    public mutating func stuff(_ chunk: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(chunk.count + 8)
        for byte in chunk {
            if position == .lineStart, byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out.append(byte)
            switch byte {
            case 0x0D: position = .afterCR
            case 0x0A: position = position == .afterCR ? .lineStart : .middle
            default: position = .middle
            }
        }
        return out
    }

    /// The end of the message: CRLF if needed, then `.` CRLF.
    public mutating func finish() -> [UInt8] {
        defer { position = .lineStart }
        if position == .lineStart { return Array(".\r\n".utf8) }
        return Array("\r\n.\r\n".utf8)
    }
}
