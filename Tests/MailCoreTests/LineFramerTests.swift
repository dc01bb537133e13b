import Testing
import MailCore

@Suite struct LineFramerTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func drain(_ framer: inout LineFramer) -> [LineFramer.Frame] {
        var frames: [LineFramer.Frame] = []
        while let frame = framer.next() { frames.append(frame) }
        return frames
    }

    @Test func crlfAndBareLineFeedBothEndLines() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 1_000)
        try framer.append(bytes("A1 NOOP\r\nA2 LOGOUT\nrest"))
        #expect(drain(&framer) == [.line(bytes("A1 NOOP")), .line(bytes("A2 LOGOUT"))])
        #expect(framer.bufferedCount == 4)
        try framer.append(bytes("\r\n"))
        #expect(drain(&framer) == [.line(bytes("rest"))])
    }

    @Test func carriageReturnWithoutLineFeedStaysInTheLine() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 1_000)
        try framer.append(bytes("abc\rdef\r"))
        #expect(framer.next() == nil)
        try framer.append(bytes("\r\n\n"))
        #expect(drain(&framer) == [.line(bytes("abc\rdef\r")), .line([])])
    }

    @Test func dripFeedOneByteAtATime() throws {
        let input = bytes("a001 LOGIN {5}\r\nHELLO x\r\n\nlast line\n")
        var framer = LineFramer(mode: .lines(maximumLength: 64), maximumBufferedCount: 128)
        var frames: [LineFramer.Frame] = []
        for byte in input {
            try framer.append([byte])
            while let frame = framer.next() {
                frames.append(frame)
                if frame == .line(bytes("a001 LOGIN {5}")) { framer.mode = .exactly(5) }
            }
        }
        let literal = frames.compactMap { frame -> UInt8? in
            if case .bytes(let chunk, _) = frame { return chunk.first }
            return nil
        }
        #expect(literal == bytes("HELLO"))
        #expect(frames.last == .line(bytes("last line")))
        #expect(frames.filter { if case .line = $0 { true } else { false } }.count == 4)
        #expect(framer.mode == .lines(maximumLength: 64))
    }

    @Test func lineExactlyAtTheBoundIsAcceptedAndOneOverIsNot() throws {
        // maximumLength counts the line ending: 8 content bytes + CRLF = 10.
        var framer = LineFramer(mode: .lines(maximumLength: 10), maximumBufferedCount: 100)
        try framer.append(bytes("12345678\r\n"))
        #expect(framer.next() == .line(bytes("12345678")))
        try framer.append(bytes("123456789\r\nok\r\n"))
        #expect(framer.next() == .lineTooLong(limit: 10))
        #expect(framer.next() == .line(bytes("ok")))
        #expect(framer.next() == nil)
        // With a bare LF, 9 content bytes fit in 10.
        try framer.append(bytes("123456789\n"))
        #expect(framer.next() == .line(bytes("123456789")))
    }

    @Test func tooLongLineIsReportedEarlyAndNotBuffered() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 16), maximumBufferedCount: 64)
        var reports = 0
        for _ in 0..<100 {
            try framer.append([UInt8](repeating: UInt8(ascii: "x"), count: 10))
            while let frame = framer.next() {
                #expect(frame == .lineTooLong(limit: 16))
                reports += 1
            }
            #expect(framer.bufferedCount < 16)
        }
        #expect(reports == 1)
        try framer.append(bytes("tail of long line\r\nNEXT\r\n"))
        #expect(drain(&framer) == [.line(bytes("NEXT"))])
    }

    @Test func exactRunThenLinesInOneChunk() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 1_000)
        try framer.append(bytes("A APPEND {5}\r\nHELLO)\r\nB NOOP\r\n"))
        #expect(framer.next() == .line(bytes("A APPEND {5}")))
        framer.mode = .exactly(5)
        #expect(framer.next() == .bytes(bytes("HELLO"), remaining: 0))
        #expect(framer.mode == .lines(maximumLength: 100))
        #expect(drain(&framer) == [.line(bytes(")")), .line(bytes("B NOOP"))])
    }

    @Test func exactRunSpanningChunksKeepsCount() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 1_000)
        framer.mode = .exactly(7)
        try framer.append(bytes("abc"))
        #expect(framer.next() == .bytes(bytes("abc"), remaining: 4))
        #expect(framer.next() == nil)
        try framer.append(bytes("defgX\n"))
        #expect(framer.next() == .bytes(bytes("defg"), remaining: 0))
        #expect(framer.next() == .line(bytes("X")))
    }

    @Test func zeroLengthRunAndRawMode() throws {
        var framer = LineFramer(mode: .raw, maximumBufferedCount: 100)
        framer.mode = .exactly(0)
        #expect(framer.mode == .raw)
        try framer.append(bytes("a\nb"))
        #expect(framer.next() == .raw(bytes("a\nb")))
        #expect(framer.next() == nil)
    }

    @Test func appendPastBufferBoundThrows() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 4)
        #expect(throws: ByteQueueOverflow.self) { try framer.append(bytes("12345")) }
        #expect(framer.bufferedCount == 0)
    }

    @Test func discardBufferedDropsInjectedBytes() throws {
        var framer = LineFramer(mode: .lines(maximumLength: 100), maximumBufferedCount: 100)
        try framer.append(bytes("STARTTLS\r\nMAIL FROM:<evil>\r\n"))
        #expect(framer.next() == .line(bytes("STARTTLS")))
        #expect(framer.discardBuffered() == 18)
        #expect(framer.next() == nil)
    }

    @Test func hostileInputNeverYieldsALineLongerThanTheBound() throws {
        var generator = SystemRandomNumberGenerator()
        var framer = LineFramer(mode: .lines(maximumLength: 32), maximumBufferedCount: 4_096)
        for _ in 0..<500 {
            let count = Int.random(in: 0..<200, using: &generator)
            let alphabet: [UInt8] = [0x0A, 0x0D, 0x41, 0x00]
            var chunk: [UInt8] = []
            for _ in 0..<count { chunk.append(alphabet[Int.random(in: 0..<4, using: &generator)]) }
            try framer.append(chunk)
            while let frame = framer.next() {
                if case .line(let line) = frame { #expect(line.count <= 31) }
            }
            #expect(framer.bufferedCount < 32)
        }
    }
}
