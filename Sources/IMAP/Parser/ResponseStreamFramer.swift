// IMAP: cutting an upstream server's byte stream into responses, streaming large literals (FETCH bodies).

/// Frames what the upstream server sends, for the proxy: a response whose literals are all small comes out whole
/// as `.response(bytes)`; a response with a large literal (a 20 MiB `BODY[]`) comes out as `.streamBegin(prefix,
/// count)` (the response's bytes through `{n}` CRLF), `.streamBytes` chunks as they arrive, `.streamEnd`, and then
/// the rest of the response: another `.streamBegin` for the next large literal, or `.streamTail` with the bytes
/// through the final CRLF. So a body of any size flows through without being held whole.
///
///     S: * 1 FETCH (UID 7 BODY[] {20971520}       → .streamBegin("* 1 FETCH (UID 7 BODY[] {20971520}\r\n", 20971520)
///     S: …20 MiB…                                  → .streamBytes(…) …, .streamEnd
///     S: )                                         → .streamTail(")\r\n")
///
/// Octets are counted, never scanned (RFC 3501 §4.3). Bounds (`IMAPLimits`): a line, and a response held whole
/// (lines plus inline literals), may not exceed `inlineFrame` (1 MiB: long `* SEARCH` lines fit); a literal is
/// inline up to `inlineLiteral` (64 KiB) and may not exceed `responseLiteral`. A bound exceeded throws, and every
/// later call throws the same error: close the connection.
public struct IMAPResponseStreamFramer: Sendable {
    /// What `next()` hands out.
    public enum Event: Hashable, Sendable {
        /// A whole response, CRLF and inline literals included.
        case response([UInt8])
        /// A large literal starts: `prefix` is the response so far (from its start, or from the end of the previous
        /// streamed literal) through the literal's `{n}` CRLF; `count` octets follow as `.streamBytes`.
        case streamBegin(prefix: [UInt8], count: Int)
        /// The next octets of the streaming literal.
        case streamBytes([UInt8])
        /// The streaming literal is complete; the rest of the response follows.
        case streamEnd
        /// The rest of the response after its last streamed literal, through the final CRLF.
        case streamTail([UInt8])
    }

    public let limits: IMAPLimits
    private var buffer: [UInt8] = []
    /// Start of the bytes not yet handed out (the response, or the rest after a streamed literal).
    private var pieceStart = 0
    /// Start of the current line.
    private var lineStart = 0
    /// Next byte not yet searched for LF.
    private var scanIndex = 0
    /// Inline literal octets still to arrive.
    private var inlineRemaining = 0
    /// Streamed literal octets still to hand out; nil when not streaming.
    private var streamRemaining: Int?
    /// The streaming literal was handed out completely; `.streamEnd` is next.
    private var streamDone = false
    /// The current response has streamed a literal, so its end comes out as `.streamTail`.
    private var insideStreamedResponse = false
    private var failure: IMAPError?

    public init(limits: IMAPLimits = .standard) {
        self.limits = limits
    }

    /// Bytes received and not yet handed out.
    public var bufferedByteCount: Int { buffer.count - pieceStart }

    /// Whether the framer is between responses (nothing of the next one handed out yet).
    public var isBetweenResponses: Bool { !insideStreamedResponse && streamRemaining == nil && !streamDone }

    /// Adds bytes read from the server.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next event, or nil until more bytes arrive.
    public mutating func next() throws(IMAPError) -> Event? {
        if let failure { throw failure }
        if streamDone {
            streamDone = false
            return .streamEnd
        }
        if let remaining = streamRemaining {
            let available = buffer.count - pieceStart
            guard available > 0 else { return nil }
            let count = min(available, remaining)
            let chunk = Array(buffer[pieceStart..<(pieceStart + count)])
            pieceStart += count
            lineStart = pieceStart
            scanIndex = pieceStart
            if count == remaining {
                streamRemaining = nil
                streamDone = true
            } else {
                streamRemaining = remaining - count
            }
            compact()
            return .streamBytes(chunk)
        }
        while true {
            if inlineRemaining > 0 {
                let available = buffer.count - scanIndex
                if available < inlineRemaining {
                    inlineRemaining -= available
                    scanIndex = buffer.count
                    return nil
                }
                scanIndex += inlineRemaining
                inlineRemaining = 0
                lineStart = scanIndex
            }
            guard let lineFeed = buffer[scanIndex...].firstIndex(of: UInt8(ascii: "\n")) else {
                scanIndex = buffer.count
                let pending = buffer.count - lineStart
                if pending > limits.inlineFrame {
                    return try fail(.lineTooLong(actualCount: pending, maximumCount: limits.inlineFrame))
                }
                if buffer.count - pieceStart > limits.inlineFrame {
                    return try fail(
                        .responseTooLarge(actualCount: buffer.count - pieceStart, maximumCount: limits.inlineFrame))
                }
                return nil
            }
            let lineLength = lineFeed + 1 - lineStart
            if lineLength > limits.inlineFrame {
                return try fail(.lineTooLong(actualCount: lineLength, maximumCount: limits.inlineFrame))
            }
            var contentEnd = lineFeed
            if contentEnd > lineStart && buffer[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            let announced: Int?
            do throws(ParserError) {
                announced = try ParseBuffer.literalAnnouncedBefore(
                    contentEnd, in: buffer, from: lineStart, limits: limits)
            } catch .failed(let error) {
                return try fail(error)
            } catch {
                announced = nil
            }
            scanIndex = lineFeed + 1
            let pieceLength = scanIndex - pieceStart
            if let count = announced {
                if count <= limits.inlineLiteral && pieceLength + count <= limits.inlineFrame {
                    inlineRemaining = count
                    lineStart = scanIndex
                    continue
                }
                let prefix = Array(buffer[pieceStart..<scanIndex])
                pieceStart = scanIndex
                lineStart = scanIndex
                insideStreamedResponse = true
                if count == 0 {
                    streamDone = true
                } else {
                    streamRemaining = count
                }
                compact()
                return .streamBegin(prefix: prefix, count: count)
            }
            if pieceLength > limits.inlineFrame {
                return try fail(.responseTooLarge(actualCount: pieceLength, maximumCount: limits.inlineFrame))
            }
            let frame = Array(buffer[pieceStart..<scanIndex])
            pieceStart = scanIndex
            lineStart = scanIndex
            compact()
            if insideStreamedResponse {
                insideStreamedResponse = false
                return .streamTail(frame)
            }
            return .response(frame)
        }
    }

    private mutating func fail(_ error: IMAPError) throws(IMAPError) -> Event? {
        failure = error
        buffer = []
        pieceStart = 0
        lineStart = 0
        scanIndex = 0
        throw error
    }

    /// Drops handed-out bytes once they are all consumed or make up a large part of the buffer.
    private mutating func compact() {
        if pieceStart == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1_048_576)
        } else if pieceStart >= 65_536 || (pieceStart > 0 && pieceStart >= buffer.count / 2) {
            buffer.removeFirst(pieceStart)
        } else {
            return
        }
        scanIndex -= pieceStart
        lineStart -= pieceStart
        pieceStart = 0
    }
}

/// What kind of response a frame (or a stream prefix) is, read from its first bytes without a full parse, so the
/// proxy can forward most responses untouched and parse only those a policy needs.
///
///     "A7 OK [READ-WRITE] SELECT completed" → .tagged(tag: "A7", status: .ok)
///     "* 12 FETCH (FLAGS (\Seen))"         → .untagged(keyword: "FETCH", number: 12)
///     "* LIST (\HasNoChildren) "/" INBOX"   → .untagged(keyword: "LIST", number: nil)
///     "+ idling"                            → .continuation
public enum IMAPResponseKind: Hashable, Sendable {
    /// A completion; `status` is nil when the word after the tag is not OK, NO or BAD (a broken server).
    case tagged(tag: String, status: ResponseStatus?)
    /// An untagged response: its keyword upper-cased (`OK`, `BYE`, `LIST`, `FETCH`, `EXISTS`), and the leading
    /// number for message data (`* 12 EXPUNGE`).
    case untagged(keyword: String, number: UInt32?)
    /// `+ …`: a continuation request.
    case continuation
    /// Not a response the grammar knows (empty, or starting with a space).
    case unknown

    /// Classifies `frame` by its first line.
    public static func classify(_ frame: some Collection<UInt8>) -> IMAPResponseKind {
        var words: [ArraySlice<UInt8>] = []
        let bytes = Array(frame.prefix(256))
        var index = 0
        while words.count < 3 && index < bytes.count {
            let start = index
            while index < bytes.count && bytes[index] != UInt8(ascii: " ") && bytes[index] != UInt8(ascii: "\r")
                && bytes[index] != UInt8(ascii: "\n") && bytes[index] != UInt8(ascii: "[")
                && bytes[index] != UInt8(ascii: "(")
            {
                index += 1
            }
            if index == start { break }
            words.append(bytes[start..<index])
            guard index < bytes.count, bytes[index] == UInt8(ascii: " ") else { break }
            index += 1
        }
        guard let first = words.first else { return .unknown }
        func upper(_ word: ArraySlice<UInt8>) -> String { String(decoding: word, as: UTF8.self).uppercased() }
        if first.first == UInt8(ascii: "+") && first.count == 1 { return .continuation }
        if first.count == 1 && first.first == UInt8(ascii: "*") {
            guard words.count >= 2 else { return .unknown }
            if let number = UInt32(String(decoding: words[1], as: UTF8.self)) {
                return .untagged(keyword: words.count >= 3 ? upper(words[2]) : "", number: number)
            }
            return .untagged(keyword: upper(words[1]), number: nil)
        }
        let tag = String(decoding: first, as: UTF8.self)
        let status = words.count >= 2 ? ResponseStatus(rawValue: upper(words[1])) : nil
        return .tagged(tag: tag, status: status)
    }
}
