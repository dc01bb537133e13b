// IMAP: cutting the server's byte stream into complete responses, literals included, within bounds.

import MailCore

/// Collects bytes from the server and hands out one complete response at a time: every line up to its CRLF,
/// and for a line ending in `{n}` the n octets after it and the lines that follow, until a line ends without a
/// literal (RFC 3501 §4.3). Octets are counted, never scanned, so a literal may hold anything.
///
/// Bounds: a line without its CRLF may not exceed `limits.responseLine`, a literal `limits.responseLiteral`,
/// a whole response `limits.responseFrame`; each is checked before the bytes are kept waiting for more.
public struct IMAPResponseFramer: Sendable {
    public let limits: IMAPLimits
    private var buffer: [UInt8] = []
    /// Start of the response being collected.
    private var frameStart = 0
    /// Start of the current line (the response start, or just after a literal).
    private var lineStart = 0
    /// Next byte not yet examined.
    private var scanIndex = 0
    /// Literal octets still to arrive before the line continues.
    private var literalRemaining = 0

    public init(limits: IMAPLimits = .standard) {
        self.limits = limits
    }

    /// Bytes received but not yet handed out.
    public var bufferedByteCount: Int { buffer.count - frameStart }

    /// Adds bytes read from the connection.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete response (CRLF included), or nil until more bytes arrive.
    public mutating func nextFrame() throws(IMAPError) -> [UInt8]? {
        while true {
            if literalRemaining > 0 {
                let available = buffer.count - scanIndex
                if available < literalRemaining {
                    literalRemaining -= available
                    scanIndex = buffer.count
                    return nil
                }
                scanIndex += literalRemaining
                literalRemaining = 0
                lineStart = scanIndex
            }
            guard let lineFeed = buffer[scanIndex...].firstIndex(of: UInt8(ascii: "\n")) else {
                scanIndex = buffer.count
                let pending = buffer.count - lineStart
                if pending > limits.responseLine {
                    throw .lineTooLong(actualCount: pending, maximumCount: limits.responseLine)
                }
                return nil
            }
            let lineLength = lineFeed + 1 - lineStart
            if lineLength > limits.responseLine {
                throw .lineTooLong(actualCount: lineLength, maximumCount: limits.responseLine)
            }
            var contentEnd = lineFeed
            if contentEnd > lineStart && buffer[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            let announced: Int?
            do throws(ParserError) {
                announced = try ParseBuffer.literalAnnouncedBefore(contentEnd, in: buffer, from: lineStart, limits: limits)
            } catch .failed(let error) {
                throw error
            } catch {
                announced = nil
            }
            scanIndex = lineFeed + 1
            if let count = announced {
                let frameSize = scanIndex - frameStart + count
                if frameSize > limits.responseFrame {
                    throw .responseTooLarge(actualCount: frameSize, maximumCount: limits.responseFrame)
                }
                literalRemaining = count
                lineStart = scanIndex
                continue
            }
            let frame = Array(buffer[frameStart..<scanIndex])
            frameStart = scanIndex
            lineStart = scanIndex
            compact()
            return frame
        }
    }

    /// Drops handed-out bytes once they are all consumed or make up a large part of the buffer.
    private mutating func compact() {
        if frameStart == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1_048_576)
        } else if frameStart >= 65_536 {
            buffer.removeFirst(frameStart)
        } else {
            return
        }
        scanIndex -= frameStart
        lineStart -= frameStart
        frameStart = 0
    }
}

/// Framer and parser together: bytes in, typed responses out. What a connection driver uses.
///
///     var decoder = IMAPResponseDecoder()
///     decoder.append(bytesFromSocket)
///     while let response = try decoder.next() { … }
public struct IMAPResponseDecoder: Sendable {
    private var framer: IMAPResponseFramer
    private let parser: IMAPResponseParser

    public init(limits: IMAPLimits = .standard) {
        self.framer = IMAPResponseFramer(limits: limits)
        self.parser = IMAPResponseParser(limits: limits)
    }

    /// Adds bytes read from the connection.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        framer.append(bytes)
    }

    /// The next complete response, or nil until more bytes arrive. After a throw the stream cannot be trusted:
    /// close the connection.
    public mutating func next() throws(IMAPError) -> IMAPResponse? {
        guard let frame = try framer.nextFrame() else { return nil }
        guard let (response, consumed) = try parser.parseResponse(frame) else {
            throw .malformed(production: "response", offset: frame.count, found: "end of response")
        }
        guard consumed == frame.count else {
            throw .malformed(production: "CRLF", offset: consumed, found: sanitizeForLog(frame[consumed...].prefix(20), maximumLength: 20))
        }
        return response
    }
}
