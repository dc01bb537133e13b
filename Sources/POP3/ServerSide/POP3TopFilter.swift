// POP3: cutting a streamed message down to what TOP n m returns (RFC 1939 §7).

/// Passes the header (through the empty line that ends it) and then the first `bodyLines` body lines of a message
/// streamed in chunks, and drops the rest; `isDone` once nothing more will pass, so the source may stop early.
/// A message without an empty line is all header. Lines end at LF (a CRLF message's lines end in CR LF).
///
///     TOP 1 2 of "A: b\r\n\r\none\r\ntwo\r\nthree\r\n"  →  "A: b\r\n\r\none\r\ntwo\r\n"
public struct POP3TopFilter: Sendable {
    public let bodyLines: Int
    private var inHeader = true
    /// The current header line is empty so far (the line start, or only a CR seen).
    private var headerLineEmpty = true
    private var linesPassed = 0
    public private(set) var isDone = false

    public init(bodyLines: Int) {
        self.bodyLines = bodyLines
    }

    /// The part of `chunk` that TOP sends.
    public mutating func filter(_ chunk: some Collection<UInt8>) -> [UInt8] {
        guard !isDone else { return [] }
        if !inHeader && bodyLines == 0 { isDone = true; return [] }
        var end = chunk.startIndex
        var index = chunk.startIndex
        while index != chunk.endIndex && !isDone {
            let byte = chunk[index]
            index = chunk.index(after: index)
            end = index
            if inHeader {
                if byte == UInt8(ascii: "\n") {
                    if headerLineEmpty {
                        inHeader = false
                        if bodyLines == 0 { isDone = true }
                    }
                    headerLineEmpty = true
                } else if byte != UInt8(ascii: "\r") {
                    headerLineEmpty = false
                }
            } else if byte == UInt8(ascii: "\n") {
                linesPassed += 1
                if linesPassed >= bodyLines { isDone = true }
            }
        }
        return Array(chunk[chunk.startIndex..<end])
    }
}
