// SMTPTests: dot-stuffing both ways, streamed over random and 1-byte chunkings, with bounds.
import MailCore
import Testing

@testable import SMTP

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds `input` in the given chunk sizes (cycled) and collects output until the terminator.
private func unstuff(
    _ input: [UInt8], chunks: [Int], maximumMessageSize: Int = .max, maximumLineLength: Int = .max,
    bareNewline: BareNewlinePolicy = .reject
) -> (message: [UInt8], finished: Bool, leftover: [UInt8], problem: DotUnstuffer.Problem?) {
    var unstuffer = DotUnstuffer(
        maximumMessageSize: maximumMessageSize, maximumLineLength: maximumLineLength, bareNewline: bareNewline)
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
        let result = unstuff(bytes("a\r\n.\rb\r\n.\r\n"), chunks: [1], bareNewline: .normalize)
        #expect(result.message == bytes("a\r\n\r\nb\r\n"))
        #expect(result.finished)
        #expect(result.problem == nil)
    }

    @Test func bareLFIsRefusedByDefaultAndNothingAfterItIsReleased() {
        let result = unstuff(bytes("a\n.\r\nb\r\n.\r\nNOOP\r\n"), chunks: [1])
        #expect(result.problem == .bareLineEnding)
        #expect(result.message == bytes("a"))
        #expect(result.finished)
        #expect(result.leftover == bytes("NOOP\r\n"))
    }

    @Test func bareLFIsNormalizedToCRLFWhenAsked() {
        let result = unstuff(bytes("a\nb\r\n.\r\n"), chunks: [1], bareNewline: .normalize)
        #expect(result.problem == nil)
        #expect(result.message == bytes("a\r\nb\r\n"))
    }

    @Test func longLineUpToTheBoundPassesUnchanged() {
        let line = (0..<65_536).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let result = unstuff(line + bytes("\r\n.\r\n"), chunks: [4_096, 65_536, 7], maximumLineLength: 65_538)
        #expect(result.problem == nil)
        #expect(result.message == line + bytes("\r\n"))
        let over = unstuff(line + bytes("x\r\n.\r\n"), chunks: [4_096], maximumLineLength: 65_538)
        #expect(over.problem == .lineTooLong)
        #expect(over.finished)
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
        #expect(stuff(bytes("abc\n"), chunks: [100]) == bytes("abc\r\n.\r\n"))
        #expect(stuff(bytes("abc\r"), chunks: [100]) == bytes("abc\r\n.\r\n"))
        #expect(stuff([], chunks: [1]) == bytes(".\r\n"))
    }

    @Test func bareLineEndsBecomeCRLFAndTheDotAfterThemIsStuffed() {
        #expect(stuff(bytes("a\n.b\r\n"), chunks: [1]) == bytes("a\r\n..b\r\n.\r\n"))
        #expect(stuff(bytes("a\r.b\r\n"), chunks: [1]) == bytes("a\r\n..b\r\n.\r\n"))
        #expect(stuff(bytes("a\r\r\n"), chunks: [2]) == bytes("a\r\n\r\n.\r\n"))
    }

    @Test func nulIsDropped() {
        #expect(stuff([0x61, 0x0D, 0x0A, 0x00, 0x2E, 0x0D, 0x0A], chunks: [1]) == bytes("a\r\n..\r\n.\r\n"))
        #expect(stuff([0x61, 0x0D, 0x00, 0x0A], chunks: [1]) == bytes("a\r\n.\r\n"))
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

    /// What DATA can carry: bare CR and bare LF as CRLF, NUL dropped.
    private static func canonical(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        let bytes = message.filter { $0 != 0 }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D {
                out += [0x0D, 0x0A]
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
            } else if byte == 0x0A {
                out += [0x0D, 0x0A]
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }

    @Test func unstuffOfStuffIsCanonicalFormForRandomData() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let message = Self.randomMessage(using: &generator)
            let stuffChunks = (0..<4).map { _ in Int.random(in: 1...40, using: &generator) }
            let unstuffChunks = Bool.random(using: &generator) ? [1] : (0..<4).map { _ in Int.random(in: 1...40, using: &generator) }
            let trailer = bytes("NEXT\r\n")
            let wire = stuff(message, chunks: stuffChunks) + trailer
            // The stuffed wire is canonical: the strict (reject) unstuffer finds nothing to refuse in it.
            let result = unstuff(wire, chunks: unstuffChunks)
            let text = Self.canonical(message)
            let endsWithCRLF = text.count >= 2 && text.suffix(2) == [0x0D, 0x0A]
            let expected = text.isEmpty || endsWithCRLF ? text : text + [0x0D, 0x0A]
            #expect(result.finished)
            #expect(result.problem == nil)
            #expect(result.message == expected, "message \(message) chunks \(unstuffChunks)")
            #expect(result.leftover == trailer)
        }
    }

    @Test func stuffedOutputHasNoEndOfDataForAnyReadingOfLineEnds() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let wire = stuff(Self.randomMessage(using: &generator), chunks: [Int.random(in: 1...40, using: &generator)])
            let body = Array(wire.dropLast(3))  // without the terminator's ". CRLF"
            #expect(!body.contains(0x00))
            #expect(lenientEndOfData(in: body) == nil, "\(wire)")
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

/// Where a lenient server (bare LF or bare CR taken as a line end, NUL dropped) would see a line holding only `.`
/// that ends with any line end; nil if nowhere. This is how a smuggled end of data is read.
private func lenientEndOfData(in wire: [UInt8]) -> Int? {
    let bytes = wire.filter { $0 != 0 }
    var lineStart = 0
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        if byte == 0x0D || byte == 0x0A {
            if index - lineStart == 1, bytes[lineStart] == UInt8(ascii: "."), lineStart > 0 { return lineStart }
            if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
            lineStart = index + 1
        }
        index += 1
    }
    return nil
}

/// The published SMTP smuggling end-of-data variants (SEC Consult 2023, the Postfix, Exim and Sendmail advisories),
/// each inside one DATA that goes on with a complete second transaction: never an end of data, never passed on.
@Suite struct SMTPSmugglingTests {
    static let variants: [(name: String, sequence: [UInt8])] = [
        ("LF . LF", [0x0A, 0x2E, 0x0A]),
        ("LF . CRLF", [0x0A, 0x2E, 0x0D, 0x0A]),
        ("CR . CRLF", [0x0D, 0x2E, 0x0D, 0x0A]),
        ("CRLF . CR", [0x0D, 0x0A, 0x2E, 0x0D]),
        ("CRLF . LF", [0x0D, 0x0A, 0x2E, 0x0A]),
        ("LF . CR", [0x0A, 0x2E, 0x0D]),
        ("CR . CR", [0x0D, 0x2E, 0x0D]),
        ("CR . LF", [0x0D, 0x2E, 0x0A]),
        ("CR LF . CR CR LF", [0x0D, 0x0A, 0x2E, 0x0D, 0x0D, 0x0A]),
        ("CR CR LF . CR CR LF", [0x0D, 0x0D, 0x0A, 0x2E, 0x0D, 0x0D, 0x0A]),
        ("LF CR . CR LF", [0x0A, 0x0D, 0x2E, 0x0D, 0x0A]),
        ("CRLF NUL . CRLF", [0x0D, 0x0A, 0x00, 0x2E, 0x0D, 0x0A]),
        ("CRLF . NUL CRLF", [0x0D, 0x0A, 0x2E, 0x00, 0x0D, 0x0A]),
        ("CRLF . CR NUL LF", [0x0D, 0x0A, 0x2E, 0x0D, 0x00, 0x0A]),
    ]

    /// `hello` + the variant + a second transaction + the real end of data + QUIT.
    static func payload(_ sequence: [UInt8]) -> [UInt8] {
        bytes("Subject: one\r\n\r\nhello") + sequence
            + bytes("MAIL FROM:<mallory@contoso.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: two\r\n")
            + bytes("\r\n.\r\nQUIT\r\n")
    }

    static let smuggledTail = Array("MAIL FROM:<mallory@contoso.com>".utf8)

    @Test(arguments: 0..<variants.count)
    func refusedByDefault(variant: Int) {
        let (name, sequence) = Self.variants[variant]
        for chunks in [[1], [3, 1, 7], [10_000]] {
            let result = unstuff(Self.payload(sequence), chunks: chunks)
            #expect(result.finished, "\(name)")
            #expect(result.problem == .bareLineEnding || result.problem == .nulCharacter, "\(name)")
            #expect(result.leftover == bytes("QUIT\r\n"), "\(name): the end of data is the real CRLF . CRLF")
            // The CRLF that opens some variants is a real line end; nothing after the first bad byte is released.
            let released = bytes("Subject: one\r\n\r\nhello") + (sequence.starts(with: [0x0D, 0x0A]) ? [0x0D, 0x0A] : [])
            #expect(result.message == released, "\(name): nothing after the bad byte")
        }
    }

    @Test(arguments: 0..<variants.count)
    func normalizedNeverEndsTheMessageOrReachesTheWireAsSent(variant: Int) {
        let (name, sequence) = Self.variants[variant]
        for chunks in [[1], [3, 1, 7], [10_000]] {
            let result = unstuff(Self.payload(sequence), chunks: chunks, bareNewline: .normalize)
            #expect(result.finished, "\(name)")
            #expect(result.leftover == bytes("QUIT\r\n"), "\(name): the end of data is the real CRLF . CRLF")
            if sequence.contains(0) {
                #expect(result.problem == .nulCharacter, "\(name)")
                continue
            }
            #expect(result.problem == nil, "\(name)")
            // The smuggled transaction is message text, and what goes upstream has no end of data before the real one
            // however a later hop reads line ends.
            #expect(result.message.firstRange(of: Self.smuggledTail) != nil, "\(name)")
            #expect(!result.message.contains(0x0A) || canonicalLineEnds(result.message), "\(name)")
            let wire = stuff(result.message, chunks: [5])
            #expect(lenientEndOfData(in: Array(wire.dropLast(3))) == nil, "\(name)")
            #expect(Array(wire.dropLast(3)).firstRange(of: sequence) == nil, "\(name): passed through as sent")
        }
    }

    @Test(arguments: 0..<variants.count)
    func stufferNeverPassesTheVariantOnFromOtherSources(variant: Int) {
        // E.g. a client's BDAT chunks, relayed with DATA: the stuffer alone must make them harmless.
        let (name, sequence) = Self.variants[variant]
        let wire = stuff(Self.payload(sequence), chunks: [2])
        #expect(lenientEndOfData(in: Array(wire.dropLast(3))) == nil, "\(name)")
        #expect(Array(wire.dropLast(3)).firstRange(of: sequence) == nil, "\(name)")
        #expect(unstuff(wire, chunks: [1]).problem == nil, "\(name)")
    }

    private func canonicalLineEnds(_ bytes: [UInt8]) -> Bool {
        for (index, byte) in bytes.enumerated() {
            if byte == 0x0A, index == 0 || bytes[index - 1] != 0x0D { return false }
            if byte == 0x0D, index + 1 >= bytes.count || bytes[index + 1] != 0x0A { return false }
        }
        return true
    }
}
