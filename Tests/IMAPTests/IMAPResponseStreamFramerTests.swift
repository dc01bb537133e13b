import Testing

@testable import IMAP

/// Real server responses (Dovecot and Exchange shapes), literals of every kind included.
enum ResponseCorpus {
    static func literal(_ content: [UInt8], binary: Bool = false) -> [UInt8] {
        Array("\(binary ? "~" : ""){\(content.count)}\r\n".utf8) + content
    }

    static let message = Array("From: a@example.com\r\nSubject: test\r\n\r\nHello, world. {5}\r\n".utf8)
    static let header = Array("From: a@example.com\r\n\r\n".utf8)
    static let text = Array("Body text\r\n".utf8)

    static let responses: [[UInt8]] = [
        Array(
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"
                .utf8),
        Array(
            "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+\r\n"
                .utf8),
        Array("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE IDLE] Logged in\r\n".utf8),
        Array("* LIST (\\HasNoChildren) \"/\" INBOX\r\n".utf8),
        Array("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n".utf8),
        Array("* LIST (\\HasChildren) \"/\" ".utf8) + literal(Array("Name \"with\" quote".utf8)) + [13, 10],
        Array("* LSUB () \".\" \"Gel&APY-schte Elemente\"\r\n".utf8),
        Array("* STATUS \"Gel&APY-schte Elemente\" (MESSAGES 3 UNSEEN 1)\r\n".utf8),
        Array("* 3 EXISTS\r\n".utf8),
        Array("* 0 RECENT\r\n".utf8),
        Array("* OK [UIDVALIDITY 14] UIDs valid\r\n".utf8),
        Array("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n".utf8),
        Array("A2 OK [READ-WRITE] SELECT completed.\r\n".utf8),
        Array("* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] ".utf8) + literal(message) + Array(")\r\n".utf8),
        Array("* 2 FETCH (UID 8 BODY[HEADER] ".utf8) + literal(header) + Array(" BODY[TEXT] ".utf8) + literal(text)
            + Array(")\r\n".utf8),
        Array("* 3 FETCH (BINARY[1] ".utf8) + literal([0, 1, 2, 13, 10, 0xFF], binary: true) + Array(")\r\n".utf8),
        Array("* 4 FETCH (BODY[] {0}\r\n)\r\n".utf8),
        Array("A3 OK FETCH completed.\r\n".utf8),
        Array("+ Ready for literal data\r\n".utf8),
        Array("+\r\n".utf8),
        Array("+ IDLE accepted, awaiting DONE command.\r\n".utf8),
        Array("* 4 EXPUNGE\r\n".utf8),
        Array("A4 OK [APPENDUID 14 4212] APPEND completed.\r\n".utf8),
        Array("A5 NO [TRYCREATE] Mailbox doesn't exist\r\n".utf8),
        Array("A6 BAD Command unknown\r\n".utf8),
        Array("* BYE Session invalidated - AccessTokenExpired\r\n".utf8),
    ]

    static let all: [UInt8] = responses.flatMap { $0 }

    static let streamingLimits: IMAPLimits = {
        var limits = IMAPLimits()
        limits.inlineLiteral = 16
        return limits
    }()
}

@Suite struct IMAPResponseStreamFramerTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func events(_ input: [UInt8], limits: IMAPLimits = .standard, chunkSize: Int? = nil) throws
        -> [IMAPResponseStreamFramer.Event]
    {
        var framer = IMAPResponseStreamFramer(limits: limits)
        var events: [IMAPResponseStreamFramer.Event] = []
        var offset = 0
        let size = max(1, chunkSize ?? input.count)
        repeat {
            let end = min(input.count, offset + size)
            framer.append(input[offset..<end])
            offset = end
            while let event = try framer.next() { events.append(event) }
        } while offset < input.count
        return merged(events)
    }

    static func merged(_ events: [IMAPResponseStreamFramer.Event]) -> [IMAPResponseStreamFramer.Event] {
        var out: [IMAPResponseStreamFramer.Event] = []
        for event in events {
            if case .streamBytes(let more) = event, case .streamBytes(let have)? = out.last {
                out[out.count - 1] = .streamBytes(have + more)
            } else {
                out.append(event)
            }
        }
        return out
    }

    static func reassemble(_ events: [IMAPResponseStreamFramer.Event]) -> [UInt8] {
        events.flatMap { event -> [UInt8] in
            switch event {
            case .response(let bytes), .streamBytes(let bytes), .streamTail(let bytes): bytes
            case .streamBegin(let head, _): head
            case .streamEnd: [UInt8]()
            }
        }
    }

    @Test func smallLiteralsComeOutAsWholeResponses() throws {
        let events = try Self.events(ResponseCorpus.all)
        #expect(events == ResponseCorpus.responses.map { .response($0) })
    }

    @Test func wholeFramesParseWithTheResponseParser() throws {
        let parser = IMAPResponseParser()
        for case .response(let frame) in try Self.events(ResponseCorpus.all) {
            let parsed = try parser.parseResponse(frame)
            #expect(parsed?.consumedCount == frame.count, "\(String(decoding: frame.prefix(30), as: UTF8.self))")
        }
    }

    @Test func largeLiteralsStreamAndTheResponseContinues() throws {
        let events = try Self.events(ResponseCorpus.all, limits: ResponseCorpus.streamingLimits)
        #expect(Self.reassemble(events) == ResponseCorpus.all)
        let fetch = Self.bytes("* 1 FETCH")
        let start = try #require(
            events.firstIndex {
                if case .streamBegin(let head, _) = $0 { Array(head.prefix(9)) == fetch } else { false }
            })
        #expect(
            events[start]
                == .streamBegin(
                    prefix: Self.bytes("* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {\(ResponseCorpus.message.count)}\r\n"),
                    count: ResponseCorpus.message.count))
        #expect(events[start + 1] == .streamBytes(ResponseCorpus.message))
        #expect(events[start + 2] == .streamEnd)
        #expect(events[start + 3] == .streamTail(Self.bytes(")\r\n")))
        // The next response streams its header literal.
        #expect(
            events[start + 4]
                == .streamBegin(
                    prefix: Self.bytes("* 2 FETCH (UID 8 BODY[HEADER] {\(ResponseCorpus.header.count)}\r\n"),
                    count: ResponseCorpus.header.count))
        // The second literal (11 octets) is small: it stays inside the tail.
        #expect(events[start + 7] == .streamTail(Self.bytes(" BODY[TEXT] {11}\r\nBody text\r\n)\r\n")))
        // Small ones stay whole even under these limits: the LIST literal name (17 octets) streams, BINARY (6) not.
        #expect(events.contains(.streamBegin(prefix: Self.bytes("* LIST (\\HasChildren) \"/\" {17}\r\n"), count: 17)))
        #expect(events.contains(.response(ResponseCorpus.responses[15])))
        #expect(events.contains(.response(ResponseCorpus.responses[16])))
    }

    @Test(arguments: [1, 2, 3, 7, 50])
    func dripFeedGivesTheSameEvents(chunkSize: Int) throws {
        for limits in [IMAPLimits.standard, ResponseCorpus.streamingLimits] {
            let whole = try Self.events(ResponseCorpus.all, limits: limits)
            #expect(try Self.events(ResponseCorpus.all, limits: limits, chunkSize: chunkSize) == whole)
        }
    }

    @Test func everyResponseSplitAtEveryByte() throws {
        for limits in [IMAPLimits.standard, ResponseCorpus.streamingLimits] {
            for response in ResponseCorpus.responses {
                let whole = try Self.events(response, limits: limits)
                for split in 0...response.count {
                    var framer = IMAPResponseStreamFramer(limits: limits)
                    var events: [IMAPResponseStreamFramer.Event] = []
                    framer.append(response[..<split])
                    while let event = try framer.next() { events.append(event) }
                    framer.append(response[split...])
                    while let event = try framer.next() { events.append(event) }
                    #expect(Self.merged(events) == whole, "split \(split)")
                }
            }
        }
    }

    @Test func twentyMebibyteBodyIsNeverHeldWhole() throws {
        var framer = IMAPResponseStreamFramer()
        let size = 20 * 1_048_576
        framer.append(Self.bytes("* 1 FETCH (BODY[] {\(size)}\r\n"))
        #expect(try framer.next() == .streamBegin(prefix: Self.bytes("* 1 FETCH (BODY[] {\(size)}\r\n"), count: size))
        let chunk = [UInt8](repeating: 0x2E, count: 65_536)
        var received = 0
        var maximumBuffered = 0
        var ended = false
        while received < size {
            framer.append(chunk)
            maximumBuffered = max(maximumBuffered, framer.bufferedByteCount)
            while let event = try framer.next() {
                if case .streamBytes(let bytes) = event { received += bytes.count }
                if event == .streamEnd { ended = true }
            }
        }
        #expect(received == size && ended)
        #expect(maximumBuffered <= 65_536)
        framer.append(Self.bytes(")\r\nA1 OK done\r\n"))
        #expect(try framer.next() == .streamTail(Self.bytes(")\r\n")))
        #expect(try framer.next() == .response(Self.bytes("A1 OK done\r\n")))
        #expect(framer.isBetweenResponses)
    }

    @Test func literalOverTheBoundIsFatalAndStaysFatal() throws {
        var limits = IMAPLimits()
        limits.responseLiteral = 1000
        var framer = IMAPResponseStreamFramer(limits: limits)
        framer.append(Self.bytes("* 1 FETCH (BODY[] {1001}\r\n"))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 1001, maximumCount: 1000)) { _ = try framer.next() }
        framer.append(Self.bytes("A1 OK\r\n"))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 1001, maximumCount: 1000)) { _ = try framer.next() }
    }

    @Test func digitOverflowIsFatal() {
        #expect {
            _ = try Self.events(Self.bytes("* 1 FETCH (BODY[] {99999999999999999999999}\r\n"))
        } throws: { error in
            if case .numberTooLarge? = error as? IMAPError { return true }
            return false
        }
    }

    @Test(arguments: [1, 4096, 2_000_000])
    func lineOverTheFrameBoundIsFatal(chunkSize: Int) {
        var limits = IMAPLimits()
        limits.inlineFrame = 100_000
        let line = Self.bytes("* SEARCH" + String(repeating: " 12345", count: 20_000) + "\r\n")
        #expect {
            _ = try Self.events(line, limits: limits, chunkSize: chunkSize)
        } throws: { error in
            if case .lineTooLong(_, 100_000)? = error as? IMAPError { return true }
            return false
        }
    }

    @Test func longSearchLineWithinTheFrameBoundPasses() throws {
        let line = Self.bytes("* SEARCH" + String(repeating: " 12345", count: 50_000) + "\r\n")
        #expect(try Self.events(line, chunkSize: 65_536) == [.response(line)])
    }

    @Test func manyInlineLiteralsPastTheFrameStream() throws {
        var limits = IMAPLimits()
        limits.inlineFrame = 1000
        var input = Self.bytes("* 1 FETCH (")
        for index in 0..<50 {
            input += Self.bytes("BODY[\(index)] {30}\r\n") + [UInt8](repeating: 0x61, count: 30) + [32]
        }
        input += Self.bytes(")\r\n")
        let events = try Self.events(input, limits: limits, chunkSize: 9)
        #expect(Self.reassemble(events) == input)
        #expect(events.contains(.streamEnd))
    }

    // MARK: - Classification

    @Test func classification() {
        let cases: [(String, IMAPResponseKind)] = [
            ("A7 OK [READ-WRITE] SELECT completed\r\n", .tagged(tag: "A7", status: .ok)),
            ("a1 no [AUTHENTICATIONFAILED] nope\r\n", .tagged(tag: "a1", status: .no)),
            ("A6 BAD Command unknown\r\n", .tagged(tag: "A6", status: .bad)),
            ("A6 WHAT\r\n", .tagged(tag: "A6", status: nil)),
            ("* 12 FETCH (FLAGS (\\Seen))\r\n", .untagged(keyword: "FETCH", number: 12)),
            ("* 3 EXISTS\r\n", .untagged(keyword: "EXISTS", number: 3)),
            ("* LIST (\\HasNoChildren) \"/\" INBOX\r\n", .untagged(keyword: "LIST", number: nil)),
            ("* OK [UIDVALIDITY 14] ok\r\n", .untagged(keyword: "OK", number: nil)),
            ("* BYE Session invalidated - AccessTokenExpired\r\n", .untagged(keyword: "BYE", number: nil)),
            ("* CAPABILITY IMAP4rev1\r\n", .untagged(keyword: "CAPABILITY", number: nil)),
            ("+ idling\r\n", .continuation),
            ("+\r\n", .continuation),
            ("\r\n", .unknown),
            (" x\r\n", .unknown),
            ("*\r\n", .unknown),
        ]
        for (frame, expected) in cases {
            #expect(IMAPResponseKind.classify(Array(frame.utf8)) == expected, "\(frame)")
        }
    }
}

extension IMAPResponseStreamFramerTests {
    @Test func twoLargeLiteralsInOneResponse() throws {
        let body = [UInt8](repeating: 0x62, count: 40)
        let input =
            Self.bytes("* 2 FETCH (BODY[1] {40}\r\n") + body + Self.bytes(" BODY[2] {40}\r\n") + body
            + Self.bytes(")\r\n")
        let events = try Self.events(input, limits: ResponseCorpus.streamingLimits, chunkSize: 5)
        #expect(
            events == [
                .streamBegin(prefix: Self.bytes("* 2 FETCH (BODY[1] {40}\r\n"), count: 40), .streamBytes(body),
                .streamEnd,
                .streamBegin(prefix: Self.bytes(" BODY[2] {40}\r\n"), count: 40), .streamBytes(body), .streamEnd,
                .streamTail(Self.bytes(")\r\n")),
            ])
    }
}
