// MailCore: splits an incoming byte stream into bounded lines, exact-count runs (literals) or raw chunks.

/// An incremental line splitter with a maximum line length and an exact-count mode for literals.
///
/// Feed received bytes with `append(_:)`, then call `next()` until it returns nil. The caller may change `mode`
/// between two `next()` calls, for example to `.exactly(n)` after an IMAP line ending in `{n}`; the bytes already
/// buffered are then framed in the new mode, so a literal and the line after it may arrive in one chunk and no
/// byte is lost or reordered.
///
/// Lines end at LF; a CR right before it is removed too, so CRLF and bare LF both work, and a CR elsewhere stays in
/// the line. A line's length counts its line ending, as `Limits` does ("CRLF included"). A line longer than the
/// bound is reported once as `.lineTooLong` as soon as the bound is passed; its bytes are dropped, never kept, and
/// framing goes on after its line feed.
public struct LineFramer: Sendable {
    /// How the next bytes are framed.
    public enum Mode: Sendable, Equatable {
        /// Lines of at most `maximumLength` bytes, line ending included.
        case lines(maximumLength: Int)
        /// Exactly this many bytes, delivered as they arrive; then the framer returns to the mode it was in before.
        case exactly(Int)
        /// Whatever is buffered, as one chunk.
        case raw
    }

    /// One unit of framed input.
    public enum Frame: Sendable, Equatable {
        /// A complete line without its line ending.
        case line([UInt8])
        /// Part of an exact-count run; `remaining` more bytes follow, and 0 means the run is complete.
        case bytes([UInt8], remaining: Int)
        /// Bytes in raw mode.
        case raw([UInt8])
        /// A line passed `limit` bytes; its bytes were dropped up to and including its line feed.
        case lineTooLong(limit: Int)
    }

    private var buffer: ByteQueue
    private var currentMode: Mode
    /// The mode an exact-count run returns to when it is complete.
    private var resumeMode: Mode
    /// How far the buffer was already scanned for a line feed without finding one.
    private var scanned = 0
    /// True after `.lineTooLong` until the offending line's line feed has been dropped.
    private var discardingLine = false

    /// Creates a framer in `mode` that buffers at most `maximumBufferedCount` unframed bytes.
    ///
    /// Callers that append one read chunk and then drain `next()` need a bound of one chunk plus the longest line.
    public init(mode: Mode, maximumBufferedCount: Int) {
        self.buffer = ByteQueue(maximumCount: maximumBufferedCount)
        if case .exactly = mode {
            self.resumeMode = .raw
        } else {
            self.resumeMode = mode
        }
        self.currentMode = mode
        normalizeExactRun()
    }

    /// The mode the next bytes are framed in. Setting `.exactly(n)` remembers the current line or raw mode and
    /// returns to it after n bytes; setting it again during a run replaces the count.
    public var mode: Mode {
        get { currentMode }
        set {
            switch newValue {
            case .exactly:
                if case .exactly = currentMode {} else { resumeMode = currentMode }
            case .lines, .raw:
                resumeMode = newValue
            }
            currentMode = newValue
            scanned = 0
            discardingLine = false
            normalizeExactRun()
        }
    }

    /// Bytes received but not yet framed.
    public var bufferedCount: Int { buffer.count }

    /// Buffers received bytes; throws without buffering them if the bound would be passed.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(ByteQueueOverflow) {
        try buffer.append(contentsOf: bytes)
    }

    /// Drops every buffered byte and returns how many there were.
    ///
    /// STARTTLS uses this: plaintext that arrived after the STARTTLS command must not be read as if it came over
    /// TLS (RFC 3207 §4).
    @discardableResult
    public mutating func discardBuffered() -> Int {
        let n = buffer.count
        buffer.dropFirst(n)
        scanned = 0
        return n
    }

    /// Takes everything buffered regardless of mode (used when a raw consumer takes over the stream).
    public mutating func takeBuffered() -> [UInt8] {
        scanned = 0
        return buffer.removeAll()
    }

    /// The next frame, or nil when more bytes are needed.
    public mutating func next() -> Frame? {
        switch currentMode {
        case .raw:
            guard !buffer.isEmpty else { return nil }
            return .raw(buffer.removeAll())
        case .exactly(let remaining):
            guard !buffer.isEmpty else { return nil }
            let chunk = buffer.popFirst(remaining)
            let left = remaining - chunk.count
            currentMode = .exactly(left)
            normalizeExactRun()
            return .bytes(chunk, remaining: left)
        case .lines(let maximumLength):
            return nextLine(maximumLength: maximumLength)
        }
    }

    private mutating func nextLine(maximumLength: Int) -> Frame? {
        if discardingLine {
            guard let lineFeed = buffer.firstOffset(of: 0x0A) else {
                buffer.dropFirst(buffer.count)
                return nil
            }
            buffer.dropFirst(lineFeed + 1)
            discardingLine = false
            scanned = 0
        }
        guard !buffer.isEmpty else { return nil }
        // A line of maximumLength bytes has its line feed at offset maximumLength - 1 at the latest.
        let window = min(buffer.count, maximumLength)
        if let lineFeed = buffer.firstOffset(of: 0x0A, from: scanned, before: window) {
            var line = buffer.popFirst(lineFeed + 1)
            line.removeLast()
            if line.last == 0x0D { line.removeLast() }
            scanned = 0
            return .line(line)
        }
        scanned = window
        guard buffer.count >= maximumLength else { return nil }
        // Over the bound: drop the line up to its line feed if it is already here, else start discarding.
        if let lineFeed = buffer.firstOffset(of: 0x0A, from: window) {
            buffer.dropFirst(lineFeed + 1)
        } else {
            buffer.dropFirst(buffer.count)
            discardingLine = true
        }
        scanned = 0
        return .lineTooLong(limit: maximumLength)
    }

    /// An exact-count run of zero bytes is over at once: go back to the mode it interrupted.
    private mutating func normalizeExactRun() {
        if case .exactly(let n) = currentMode, n <= 0 {
            currentMode = resumeMode
            scanned = 0
        }
    }
}
