import Testing

@testable import SMTP

/// The run-copy fast path of `DotUnstuffer`/`DotStuffer`: a whole line in one chunk must meet every bound exactly
/// as the byte-wise path does.
@Suite struct DotStuffingRunTests {
    private func feed(_ text: String, size: Int = .max, line: Int = .max) -> DotUnstuffer.Output {
        var unstuffer = DotUnstuffer(maximumMessageSize: size, maximumLineLength: line)
        let output = unstuffer.feed(Array(text.utf8))
        if let problem = unstuffer.problem { Issue.record("unexpected \(problem)") }
        return output
    }

    @Test func aLineAtTheBoundInOneChunkPasses() {
        let line = String(repeating: "y", count: 998)
        let output = feed("\(line)\r\n.\r\n", line: 1_000)
        #expect(output.finished)
        #expect(output.message == Array("\(line)\r\n".utf8))
    }

    @Test func oneOctetOverTheLineBoundInOneChunkIsCaught() {
        var unstuffer = DotUnstuffer(maximumMessageSize: .max, maximumLineLength: 1_000)
        let output = unstuffer.feed(Array((String(repeating: "y", count: 999) + "\r\n.\r\nQUIT\r\n").utf8))
        #expect(unstuffer.problem == .lineTooLong)
        #expect(output.finished)
        #expect(output.leftover == Array("QUIT\r\n".utf8))
    }

    @Test func theSizeBoundInOneChunkIsExact() {
        let output = feed("1234\r\n.\r\n", size: 6)
        #expect(output.message == Array("1234\r\n".utf8))
        var unstuffer = DotUnstuffer(maximumMessageSize: 5)
        let over = unstuffer.feed(Array("1234\r\n.\r\n".utf8))
        #expect(unstuffer.problem == .messageTooLarge)
        #expect(over.message.count == 5)
    }

    @Test func stufferRunsStopAtEveryLineEndAndNUL() {
        var stuffer = DotStuffer()
        let out = stuffer.stuff(Array("abc\r\n.def\nghi\0jkl\r.x".utf8)) + stuffer.finish()
        #expect(out == Array("abc\r\n..def\r\nghijkl\r\n..x\r\n.\r\n".utf8))
    }
}
