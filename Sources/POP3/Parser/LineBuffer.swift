// POP3: cutting a byte stream into CRLF-terminated lines within a bound.

/// Collects bytes and hands out complete lines (without CRLF; a bare LF also ends a line).
///
/// The bound counts the CRLF, as RFC 2449 does, and is checked before bytes are kept waiting for more; it can be
/// changed between lines (a server reading SASL responses allows longer lines than for commands).
public struct POP3LineBuffer: Sendable {
    public var maximumLineLength: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maximumLineLength: Int) {
        self.maximumLineLength = maximumLineLength
    }

    /// Bytes received but not yet handed out.
    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line without its line end, or nil until more bytes arrive.
    public mutating func nextLine() throws(POP3Error) -> [UInt8]? {
        guard let lineFeed = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.count - start > maximumLineLength {
                throw .lineTooLong(actualCount: buffer.count - start, maximumCount: maximumLineLength)
            }
            return nil
        }
        let length = lineFeed + 1 - start
        guard length <= maximumLineLength else { throw .lineTooLong(actualCount: length, maximumCount: maximumLineLength) }
        var end = lineFeed
        if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let line = Array(buffer[start..<end])
        start = lineFeed + 1
        compact()
        return line
    }

    /// Removes and returns every buffered byte (for a reader that takes over the stream, e.g. a multi-line body).
    public mutating func takeBufferedBytes() -> [UInt8] {
        let rest = Array(buffer[start...])
        buffer.removeAll(keepingCapacity: true)
        start = 0
        return rest
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 65_536 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
