// SMTP: DATA transparency (RFC 5321 §4.5.2) in both directions, streaming over arbitrary chunk boundaries.
public import MailCore


/// Removes dot-stuffing from a client's DATA stream and finds the `CRLF . CRLF` terminator.
///
/// Feed raw chunks as they arrive; each call returns the message bytes it could release (a stuffing dot or a CR
/// is held until the next byte decides it), whether the terminator was seen, and any bytes after it (the client's
/// next, pipelined command). Message bytes include the CRLF before the terminating dot.
///
/// **Line ends (SMTP smuggling).** The end of data is recognised only as CRLF `.` CRLF (or `.` CRLF right after
/// the 354), never as `LF . LF`, `CR . CR LF`, `CRLF . LF` or any other mix. A bare CR or bare LF (not part of a
/// CRLF) is never released as it is, so the bytes passed on can never hold an end of data that the client did not
/// send: with `BareNewlinePolicy.reject` the first one sets `problem = .bareLineEnding`; with `.normalize` it is
/// released as CRLF and ends the line (a following `.` is a stuffing dot as on any line, and a lone `.` there is
/// an empty line, not the end). A NUL byte (never valid in DATA text, and dropped by some servers, which would
/// turn CRLF NUL `.` CRLF into an end of data) sets `problem = .nulCharacter` in both modes.
///
/// Bounds: more than `maximumMessageSize` message bytes, or a wire line longer than `maximumLineLength`
/// (CRLF included), set `problem`; from then on no further bytes are released, but input is still consumed up to
/// the terminator so the session stays in step with the client and can answer after the end of data.
public struct DotUnstuffer: Sendable {
    /// Why the message cannot be accepted; reported once the terminator has been seen.
    public enum Problem: Sendable, Equatable {
        /// The message (un-stuffed) exceeded the maximum size.
        case messageTooLarge
        /// A text line exceeded the line limit.
        case lineTooLong
        /// A bare CR or bare LF, with `BareNewlinePolicy.reject`.
        case bareLineEnding
        /// A NUL byte.
        case nulCharacter
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

    /// Where in a line the last byte left us. `clean` says that the line began after a real CRLF (or at the
    /// start of the data): only such a line can be the terminator.
    private enum Position: Sendable {
        case lineStart(clean: Bool)
        case lineStartDot(clean: Bool)
        case lineStartDotCR(clean: Bool)
        case middle
        case afterCR
        case done
    }

    public let maximumMessageSize: Int
    public let maximumLineLength: Int
    public let bareNewline: BareNewlinePolicy
    /// The first bound that was crossed, if any.
    public private(set) var problem: Problem?
    /// Un-stuffed message bytes seen so far (counted even after a problem, capped at the maximum + 1).
    public private(set) var messageSize = 0
    private var position = Position.lineStart(clean: true)
    private var lineLength = 0

    public init(maximumMessageSize: Int, maximumLineLength: Int = 1_000, bareNewline: BareNewlinePolicy = .reject) {
        self.maximumMessageSize = maximumMessageSize
        self.maximumLineLength = maximumLineLength
        self.bareNewline = bareNewline
    }

    /// Whether the terminator has been seen.
    public var isFinished: Bool { if case .done = position { true } else { false } }

    /// Consumes a chunk of raw DATA bytes.
    ///
    /// Inside a line (no problem so far) the bytes up to the next CR, LF or NUL are copied as one run: only those
    /// three and a line's first bytes need the state machine, and a run stops where the line or size bound would
    /// be crossed, so the byte-wise path still decides every bound.
    public mutating func feed(_ chunk: [UInt8]) -> Output {
        var out = [UInt8]()
        out.reserveCapacity(chunk.count)
        var index = 0
        chunk.withUnsafeBufferPointer { buffer in
            let count = buffer.count
            while index < count, !isFinished {
                if case .middle = position, problem == nil {
                    let room = min(maximumLineLength - lineLength, maximumMessageSize - messageSize)
                    let limit = room <= 0 ? index : (room >= count - index ? count : index + room)
                    var end = index
                    while end < limit {
                        let byte = buffer[end]
                        if byte == 0x0D || byte == 0x0A || byte == 0 { break }
                        end += 1
                    }
                    if end > index {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
                        lineLength += end - index
                        messageSize += end - index
                        index = end
                        continue
                    }
                }
                step(buffer[index], into: &out)
                index += 1
            }
        }
        let finished = isFinished
        return Output(message: out, finished: finished, leftover: finished ? Array(chunk[index...]) : [])
    }

    private mutating func step(_ byte: UInt8, into out: inout [UInt8]) {
        lineLength += 1
        if lineLength > maximumLineLength { flag(.lineTooLong) }
        if byte == 0 { flag(.nulCharacter) }
        switch position {
        case .lineStart(let clean):
            switch byte {
            case UInt8(ascii: "."): position = .lineStartDot(clean: clean)
            case 0x0D: position = .afterCR
            case 0x0A: bareLineEnd(&out)
            default:
                emit(byte, into: &out)
                position = .middle
            }
        case .lineStartDot(let clean):
            switch byte {
            case 0x0D: position = .lineStartDotCR(clean: clean)
            case 0x0A: bareLineEnd(&out)
            default:
                emit(byte, into: &out)
                position = .middle
            }
        case .lineStartDotCR(let clean):
            if byte == 0x0A {
                if clean {
                    position = .done
                } else {
                    // `.` CRLF after a bare line end: an empty line (its dot was a stuffing dot), not the end.
                    lineEnd(&out)
                }
            } else {
                bareLineEnd(&out)
                step(byte, into: &out)
            }
        case .middle:
            switch byte {
            case 0x0D: position = .afterCR
            case 0x0A: bareLineEnd(&out)
            default: emit(byte, into: &out)
            }
        case .afterCR:
            if byte == 0x0A {
                lineEnd(&out)
            } else {
                bareLineEnd(&out)
                step(byte, into: &out)
            }
        case .done:
            break
        }
    }

    /// A real CRLF: released as it is; the next line is clean.
    private mutating func lineEnd(_ out: inout [UInt8]) {
        emit(0x0D, into: &out)
        emit(0x0A, into: &out)
        position = .lineStart(clean: true)
        lineLength = 0
    }

    /// A bare CR or bare LF: refused, or released as CRLF; either way the next line is not clean.
    private mutating func bareLineEnd(_ out: inout [UInt8]) {
        if bareNewline == .reject { flag(.bareLineEnding) }
        emit(0x0D, into: &out)
        emit(0x0A, into: &out)
        position = .lineStart(clean: false)
        lineLength = 0
    }

    private mutating func flag(_ found: Problem) {
        if problem == nil { problem = found }
    }

    private mutating func emit(_ byte: UInt8, into out: inout [UInt8]) {
        if messageSize <= maximumMessageSize { messageSize += 1 }
        if messageSize > maximumMessageSize { flag(.messageTooLarge) }
        if problem == nil { out.append(byte) }
    }
}

/// Adds dot-stuffing for sending a message with DATA, streaming.
///
/// A `.` that starts a line (after CRLF, or at the start of the message) gets a second `.` in front. DATA can
/// carry only canonical text unambiguously, so whatever the source (a normalised DATA stream, or a client's BDAT
/// chunks relayed with DATA), a bare CR or bare LF goes out as CRLF and a NUL is dropped: the output holds no end
/// of data before `finish()` for any reading of line ends (CRLF only, bare LF, bare CR, NUL-stripping), so an
/// upstream or a later hop cannot be handed a second message. `finish()` adds CRLF only when the message does not
/// already end with one, then the `.` CRLF terminator. So `unstuff(stuff(x))` is `x` for every canonical `x` (no
/// NUL, no bare CR or LF) that ends in CRLF (or is empty), and `x` + CRLF otherwise.
public struct DotStuffer: Sendable {
    private enum Position: Sendable { case lineStart, middle, afterCR }
    private var position = Position.lineStart

    public init() {}

    /// Stuffs one chunk of message bytes. Inside a line the bytes up to the next CR, LF or NUL are copied as one
    /// run; only those three and a line's first byte go through the state machine.
    public mutating func stuff(_ chunk: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(chunk.count + 8)
        chunk.withUnsafeBufferPointer { buffer in
            var index = 0
            while index < buffer.count {
                if position == .middle {
                    var end = index
                    while end < buffer.count {
                        let byte = buffer[end]
                        if byte == 0x0D || byte == 0x0A || byte == 0 { break }
                        end += 1
                    }
                    if end > index {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
                        index = end
                        continue
                    }
                }
                let byte = buffer[index]
                index += 1
                if byte != 0x00 { step(byte, into: &out) }
            }
        }
        return out
    }

    private mutating func step(_ byte: UInt8, into out: inout [UInt8]) {
        if position == .afterCR, byte != 0x0A {
            // The CR before this byte was bare: complete it to CRLF; this byte starts a line.
            out.append(0x0A)
            position = .lineStart
        }
        switch byte {
        case 0x0D:
            out.append(0x0D)
            position = .afterCR
        case 0x0A:
            if position != .afterCR { out.append(0x0D) }
            out.append(0x0A)
            position = .lineStart
        default:
            if position == .lineStart, byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out.append(byte)
            position = .middle
        }
    }

    /// The end of the message: CRLF if needed, then `.` CRLF.
    public mutating func finish() -> [UInt8] {
        defer { position = .lineStart }
        switch position {
        case .lineStart: return Array(".\r\n".utf8)
        case .afterCR: return Array("\n.\r\n".utf8)
        case .middle: return Array("\r\n.\r\n".utf8)
        }
    }
}
