import Testing
@testable import IMAP

@Suite struct ResponseFramerTests {
    /// Decodes `bytes` handing the decoder `chunkSize` bytes at a time.
    static func decodeAll(_ bytes: [UInt8], chunkSize: Int, limits: IMAPLimits = .standard) throws -> [IMAPResponse] {
        var decoder = IMAPResponseDecoder(limits: limits)
        var responses: [IMAPResponse] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkSize)
            decoder.append(bytes[offset..<end])
            offset = end
            while let response = try decoder.next() { responses.append(response) }
        }
        return responses
    }

    static let allFixtures: [UInt8] = ResponseFixtures.parsed.flatMap { Array($0.0.utf8) }

    @Test func wholeBufferYieldsEveryFixtureInOrder() throws {
        let responses = try Self.decodeAll(Self.allFixtures, chunkSize: Self.allFixtures.count)
        #expect(responses == ResponseFixtures.parsed.map(\.1))
    }

    @Test(arguments: [1, 2, 3, 7, 64])
    func dripFeedGivesTheSameResponses(chunkSize: Int) throws {
        let whole = try Self.decodeAll(Self.allFixtures, chunkSize: Self.allFixtures.count)
        let dripped = try Self.decodeAll(Self.allFixtures, chunkSize: chunkSize)
        #expect(dripped == whole)
    }

    @Test func framesKeepLiteralsWhole() throws {
        var framer = IMAPResponseFramer()
        framer.append(Array("* 1 FETCH (BODY[] {8}\r\na\r\n{2}\r\n)\r\nA1 OK done\r\n".utf8))
        #expect(try framer.nextFrame() == Array("* 1 FETCH (BODY[] {8}\r\na\r\n{2}\r\n)\r\n".utf8))
        #expect(try framer.nextFrame() == Array("A1 OK done\r\n".utf8))
        #expect(try framer.nextFrame() == nil)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func zeroLengthLiteral() throws {
        let responses = try Self.decodeAll(Array("* LIST () \"/\" {0}\r\n\r\n".utf8), chunkSize: 1)
        #expect(responses == [.untagged(.list(MailboxInfo(attributes: [], path: MailboxPath(name: MailboxName([]), pathSeparator: 0x2F))))])
    }

    @Test(arguments: [1, 4096, 70_000])
    func sixtyKilobyteMailboxNameIsTooLong(chunkSize: Int) {
        let line = "* LIST () \"/\" \"" + String(repeating: "x", count: 60 * 1024) + "\"\r\n"
        #expect {
            _ = try Self.decodeAll(Array(line.utf8), chunkSize: chunkSize)
        } throws: { error in
            guard case .lineTooLong(let actual, let maximum)? = error as? IMAPError else { return false }
            return maximum == 16_384 && actual > maximum
        }
    }

    @Test func literalLongerThanTheLimitFailsBeforeBuffering() {
        var limits = IMAPLimits()
        limits.responseLiteral = 1_000
        var framer = IMAPResponseFramer(limits: limits)
        framer.append(Array("* 1 FETCH (BODY[] {1001}\r\n".utf8))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 1001, maximumCount: 1000)) { try framer.nextFrame() }
    }

    @Test func defaultLiteralLimitIsSixtyFourMebibytes() throws {
        var framer = IMAPResponseFramer()
        framer.append(Array("* 1 FETCH (BODY[] {67108865}\r\n".utf8))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 67_108_865, maximumCount: 67_108_864)) { try framer.nextFrame() }
        var accepting = IMAPResponseFramer()
        accepting.append(Array("* 1 FETCH (BODY[] {67108864}\r\n".utf8))
        #expect(try accepting.nextFrame() == nil)
    }

    @Test func literalDigitOverflowIsAnErrorNotACrash() {
        var framer = IMAPResponseFramer()
        framer.append(Array("* 1 FETCH (BODY[] {99999999999999999999}\r\n".utf8))
        #expect(throws: IMAPError.numberTooLarge(digits: "99999999999999999999", maximumValue: UInt64(Int.max))) {
            try framer.nextFrame()
        }
    }

    @Test func manyLiteralsAreBoundedByTheFrameLimit() {
        var limits = IMAPLimits()
        limits.responseLiteral = 100
        limits.responseFrame = 250
        let chunk = "{100}\r\n" + String(repeating: "y", count: 100)
        let text = "* 1 FETCH (A " + chunk + " B " + chunk + " C " + chunk + ")\r\n"
        #expect {
            _ = try Self.decodeAll(Array(text.utf8), chunkSize: 13, limits: limits)
        } throws: { error in
            guard case .responseTooLarge(_, 250)? = error as? IMAPError else { return false }
            return true
        }
    }

    @Test func trailingGarbageAfterAResponseIsMalformed() {
        #expect(throws: IMAPError.self) { _ = try Self.decodeAll(Array("* 3 EXISTS junk\r\n".utf8), chunkSize: 100) }
    }
}
