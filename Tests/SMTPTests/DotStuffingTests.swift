// SMTPTests: dot-stuffing both ways, streamed over random and 1-byte chunkings, with bounds.
import Testing

@testable import SMTP

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds `input` in the given chunk sizes (cycled) and collects output until the terminator.
private func unstuff(
    _ input: [UInt8], chunks: [Int], maximumMessageSize: Int = .max, maximumLineLength: Int = .max
) -> (message: [UInt8], finished: Bool, leftover: [UInt8], problem: DotUnstuffer.Problem?) {
    var unstuffer = DotUnstuffer(maximumMessageSize: maximumMessageSize, maximumLineLength: maximumLineLength)
    var message: [UInt8] = []
    var leftover: [UInt8] = []
    var index = 0
    var chunkIndex = 0
    var finished = false
    while index < input.count {
        let size = max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(input.count, index + size)
        let output = unstuffer.feed(Array(input[index..<end]))
        index = end
        message += output.message
        if output.finished {
            finished = true
            leftover = output.leftover + Array(input[index...])
            break
        }
    }
    return (message, finished, leftover, unstuffer.problem)
}

private func stuff(_ input: [UInt8], chunks: [Int]) -> [UInt8] {
    var stuffer = DotStuffer()
    var out: [UInt8] = []
    var index = 0
    var chunkIndex = 0
    while index < input.count {
        let size = max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(input.count, index + size)
        out += stuffer.stuff(Array(input[index..<end]))
        index = end
    }
    return out + stuffer.finish()
}

@Suite struct DotUnstufferTests {
    @Test func simpleMessage() {
        let result = unstuff(bytes("Subject: x\r\n\r\nbody\r\n.\r\n"), chunks: [1000])
        #expect(result.message == bytes("Subject: x\r\n\r\nbody\r\n"))
        #expect(result.finished)
        #expect(result.leftover.isEmpty)
    }

    @Test func removesStuffingDots() {
        let result = unstuff(bytes("..leading\r\n...\r\nmid.dle\r\n.\r\n"), chunks: [1000])
        #expect(result.message == bytes(".leading\r\n..\r\nmid.dle\r\n"))
    }

    @Test func terminatorRightAtStart() {
        let result = unstuff(bytes(".\r\nQUIT\r\n"), chunks: [1000])
        #expect(result.finished)
        #expect(result.message.isEmpty)
        #expect(result.leftover == bytes("QUIT\r\n"))
    }

    @Test(arguments: 1...10)
    func terminatorSplitAtEveryPosition(split: Int) {
        let input = bytes("ab\r\n.\r\nMAIL")
        var unstuffer = DotUnstuffer(maximumMessageSize: 100)
        let first = unstuffer.feed(Array(input[..<split]))
        let second = first.finished ? DotUnstuffer.Output(message: [], finished: true, leftover: []) : unstuffer.feed(Array(input[split...]))
        #expect(first.message + second.message == bytes("ab\r\n"))
        #expect(first.finished || second.finished)
        #expect((first.finished ? first.leftover + input[split...] : second.leftover) == bytes("MAIL"))
    }

    @Test func pipelinedLeftoverIsReported() {
        let result = unstuff(bytes("x\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"), chunks: [7, 3])
        #expect(result.message == bytes("x\r\n"))
        #expect(result.leftover == bytes("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"))
    }

    @Test func dotCRWithoutLFIsNotTheEnd() {
        let result = unstuff(bytes("a\r\n.\rb\r\n.\r\n"), chunks: [1])
        #expect(result.message == bytes("a\r\n\rb\r\n"))
        #expect(result.finished)
    }

    @Test func bareLFDoesNotEndLines() {
        let result = unstuff(bytes("a\n.\r\nb\r\n.\r\n"), chunks: [1])
        #expect(result.message == bytes("a\n.\r\nb\r\n"))
    }

    @Test func unfinishedStreamIsNotFinished() {
        let result = unstuff(bytes("a\r\n.\r"), chunks: [2])
        #expect(!result.finished)
        #expect(result.message == bytes("a\r\n"))
    }

    @Test func lineTooLongIsReportedButConsumedToTheEnd() {
        let long = String(repeating: "x", count: 999)
        let result = unstuff(bytes("ok\r\n\(long)\r\nmore\r\n.\r\nQUIT\r\n"), chunks: [64], maximumLineLength: 1000)
        #expect(result.problem == .lineTooLong)
        #expect(result.finished)
        #expect(result.leftover == bytes("QUIT\r\n"))
        // Bytes before the overflow was detectable may have been released; nothing after it is.
        #expect(result.message.starts(with: bytes("ok\r\n")))
        #expect(result.message.count <= 4 + 1_000)
    }

    @Test func lineOfExactly1000OctetsIsAllowed() {
        let line = String(repeating: "y", count: 998)
        let result = unstuff(bytes("\(line)\r\n.\r\n"), chunks: [5], maximumLineLength: 1000)
        #expect(result.problem == nil)
        #expect(result.message == bytes("\(line)\r\n"))
    }

    @Test func messageTooLargeIsReportedAndNothingMoreIsReleased() {
        let result = unstuff(bytes("0123456789\r\nabc\r\n.\r\nNOOP\r\n"), chunks: [3], maximumMessageSize: 8)
        #expect(result.problem == .messageTooLarge)
        #expect(result.message.count == 8)
        #expect(result.finished)
        #expect(result.leftover == bytes("NOOP\r\n"))
    }

    @Test func messageOfExactlyMaximumSizeIsAllowed() {
        let result = unstuff(bytes("1234\r\n.\r\n"), chunks: [1], maximumMessageSize: 6)
        #expect(result.problem == nil)
        #expect(result.message == bytes("1234\r\n"))
    }
}

@Suite struct DotStufferTests {
    @Test func stuffsLeadingDotsOnly() {
        #expect(stuff(bytes(".a\r\nb.c\r\n..\r\n"), chunks: [100]) == bytes("..a\r\nb.c\r\n...\r\n.\r\n"))
    }

    @Test func addsFinalCRLFOnlyWhenMissing() {
        #expect(stuff(bytes("abc"), chunks: [100]) == bytes("abc\r\n.\r\n"))
        #expect(stuff(bytes("abc\r\n"), chunks: [100]) == bytes("abc\r\n.\r\n"))
        #expect(stuff(bytes("abc\n"), chunks: [100]) == bytes("abc\n\r\n.\r\n"))
        #expect(stuff([], chunks: [1]) == bytes(".\r\n"))
    }

    @Test func dotAfterBareLFIsNotStuffed() {
        #expect(stuff(bytes("a\n.b\r\n"), chunks: [1]) == bytes("a\n.b\r\n.\r\n"))
    }

    @Test func stuffsAcrossChunkBoundaries() {
        #expect(stuff(bytes("a\r\n.b\r\n"), chunks: [1]) == bytes("a\r\n..b\r\n.\r\n"))
        #expect(stuff(bytes("a\r\n.b\r\n"), chunks: [2, 1, 1]) == bytes("a\r\n..b\r\n.\r\n"))
    }
}

@Suite struct DotStuffingPropertyTests {
    /// A small alphabet rich in the bytes that matter, so CRLF-dot sequences occur often.
    private static let alphabet: [UInt8] = [0x0D, 0x0A, 0x2E, 0x2E, 0x0D, 0x0A, 0x61, 0x00, 0xFF, 0x20]

    private static func randomMessage(using generator: inout some RandomNumberGenerator) -> [UInt8] {
        let length = Int.random(in: 0...300, using: &generator)
        let useFullRange = Bool.random(using: &generator)
        return (0..<length).map { _ in
            useFullRange ? UInt8.random(in: 0...255, using: &generator) : alphabet.randomElement(using: &generator)!
        }
    }

    @Test func unstuffOfStuffIsIdentityForRandomData() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let message = Self.randomMessage(using: &generator)
            let stuffChunks = (0..<4).map { _ in Int.random(in: 1...40, using: &generator) }
            let unstuffChunks = Bool.random(using: &generator) ? [1] : (0..<4).map { _ in Int.random(in: 1...40, using: &generator) }
            let trailer = bytes("NEXT\r\n")
            let wire = stuff(message, chunks: stuffChunks) + trailer
            let result = unstuff(wire, chunks: unstuffChunks)
            let endsWithCRLF = message.count >= 2 && message.suffix(2) == [0x0D, 0x0A]
            let expected = message.isEmpty || endsWithCRLF ? message : message + [0x0D, 0x0A]
            #expect(result.finished)
            #expect(result.message == expected, "message \(message) chunks \(unstuffChunks)")
            #expect(result.leftover == trailer)
        }
    }

    @Test func oneByteChunksMatchWholeChunk() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let wire = Self.randomMessage(using: &generator) + bytes("\r\n.\r\n")
            let whole = unstuff(wire, chunks: [wire.count])
            let drip = unstuff(wire, chunks: [1])
            #expect(whole.message == drip.message)
            #expect(whole.leftover == drip.leftover)
            #expect(whole.finished && drip.finished)
        }
    }
}
