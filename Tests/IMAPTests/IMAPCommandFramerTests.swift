import Testing

@testable import IMAP

/// Drives an `IMAPCommandFramer` like the gateway does: feeds bytes in chunks, answers every literal request
/// (accept, unless `refuse` says otherwise), switches to raw-line mode after IDLE and a bare AUTHENTICATE, and
/// records the events.
struct FramerDriver {
    var framer: IMAPCommandFramer
    var events: [IMAPCommandFramer.Event] = []
    var refuse: @Sendable (IMAPLiteralRequest) -> Bool = { _ in false }

    init(limits: IMAPLimits = .standard, literalPlus: Bool = true) {
        framer = IMAPCommandFramer(limits: limits, literalPlusAdvertised: literalPlus)
    }

    mutating func feed(_ bytes: [UInt8], chunkSize: Int) throws(IMAPError) {
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + max(chunkSize, 1))
            framer.append(bytes[offset..<end])
            offset = end
            try drain()
        } while offset < bytes.count
    }

    /// Feeds `bytes` split once, at `split`.
    mutating func feed(_ bytes: [UInt8], splitAt split: Int) throws(IMAPError) {
        framer.append(bytes[..<split])
        try drain()
        framer.append(bytes[split...])
        try drain()
    }

    mutating func drain() throws(IMAPError) {
        while let event = try framer.next() {
            events.append(event)
            switch event {
            case .literalRequest(let request):
                if refuse(request) { framer.refuseLiteral() } else { framer.acceptLiteral() }
            case .command(let command):
                let bareAuthenticate = command.name == "AUTHENTICATE" && command.arguments.count == 1
                if command.name == "IDLE" || bareAuthenticate { framer.expectRawLine() }
            default:
                break
            }
        }
    }

    /// The events with stream chunks merged, so that every chunking gives the same list.
    var mergedEvents: [IMAPCommandFramer.Event] {
        var merged: [IMAPCommandFramer.Event] = []
        for event in events {
            if case .streamBytes(let more) = event, case .streamBytes(let have)? = merged.last {
                merged[merged.count - 1] = .streamBytes(have + more)
            } else {
                merged.append(event)
            }
        }
        return merged
    }

    /// The client's bytes put back together from the events (valid input only).
    var reassembled: [UInt8] {
        var bytes: [UInt8] = []
        for event in events {
            switch event {
            case .command(let command), .streamBegin(let command), .streamTail(let command): bytes += command.raw
            case .streamBytes(let chunk): bytes += chunk
            case .rawLine(let line): bytes += line + [0x0D, 0x0A]
            case .literalRequest, .literalTooLarge, .streamEnd, .malformed: break
            }
        }
        return bytes
    }

    /// Commands (whole) by tag.
    var commands: [IMAPClientCommand] {
        events.compactMap { if case .command(let command) = $0 { command } else { nil } }
    }

    var malformed: [IMAPMalformedCommand] {
        events.compactMap { if case .malformed(let malformed) = $0 { malformed } else { nil } }
    }
}

/// Real client commands (Thunderbird, mutt, mbsync, Outlook, imaplib shapes), every literal form included.
enum CommandCorpus {
    static func literal(_ content: [UInt8], plus: Bool = false, binary: Bool = false) -> [UInt8] {
        Array("\(binary ? "~" : ""){\(content.count)\(plus ? "+" : "")}\r\n".utf8) + content
    }

    static let message = Array("From: a@example.com\r\nSubject: test\r\n\r\nHello, world.\r\n".utf8)
    static let binaryMessage: [UInt8] =
        Array("Content-Type: application/octet-stream\r\n\r\n".utf8) + [0, 1, 2, 0xFF, 0, 13, 10]
    static let umlauts: [UInt8] = [0xC3, 0xA4, 0xC3, 0xB6]

    static let lines: [[UInt8]] = [
        Array("a001 CAPABILITY\r\n".utf8),
        Array("a002 LOGIN \"user@example.com\" \"pa\\\"ss\\\\word\"\r\n".utf8),
        Array("a003 SELECT INBOX\r\n".utf8),
        Array("a004 SELECT \"Sent Items\"\r\n".utf8),
        Array("a005 SELECT ".utf8) + literal(Array("Sent/2025".utf8)) + [13, 10],
        Array("a006 FETCH 1:4 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n".utf8),
        Array("a007 UID FETCH 100:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT \"X-Spam\")])\r\n".utf8),
        Array("a008 UID FETCH 7 BODY.PEEK[]<0.2048>\r\n".utf8),
        Array("a009 STORE 1:3 +FLAGS.SILENT (\\Seen \\Flagged)\r\n".utf8),
        Array("a010 UID STORE 5 FLAGS (\\Deleted $Junk)\r\n".utf8),
        Array("a011 APPEND Sent (\\Seen) \"02-Dec-2026 14:00:00 +0000\" ".utf8) + literal(message) + [13, 10],
        Array("a012 APPEND Drafts ".utf8) + literal(message, plus: true) + [13, 10],
        Array("a013 APPEND Sent ".utf8) + literal(binaryMessage, binary: true) + [13, 10],
        Array("a014 APPEND Sent (\\Seen) ".utf8) + literal(message, plus: true) + Array(" (\\Seen) ".utf8)
            + literal(message) + [13, 10],
        Array("a015 IDLE\r\nDONE\r\n".utf8),
        Array("a016 AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\n".utf8),
        Array("a017 LIST \"\" \"*\"\r\n".utf8),
        Array("a018 LIST \"\" %\r\n".utf8),
        Array("a019 STATUS \"Gel&APY-schte Elemente\" (MESSAGES UNSEEN)\r\n".utf8),
        Array("a020 UID MOVE 1:5 Trash\r\n".utf8),
        Array("a021 SEARCH CHARSET UTF-8 SUBJECT ".utf8) + literal(umlauts, plus: true) + [13, 10],
        Array("a022 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\n".utf8),
        Array("a023 APPEND Sent ".utf8) + literal([]) + [13, 10],
        Array("a024 RENAME ".utf8) + literal(Array("Old".utf8), plus: true) + [32] + literal(Array("New".utf8)) + [
            13, 10,
        ],
        Array("a025 LOGOUT\r\n".utf8),
    ]

    static let all: [UInt8] = lines.flatMap { $0 }

    /// Limits under which every corpus literal over 16 octets streams.
    static let streamingLimits: IMAPLimits = {
        var limits = IMAPLimits()
        limits.inlineLiteral = 16
        return limits
    }()
}

@Suite struct IMAPCommandFramerTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func run(_ bytes: [UInt8], limits: IMAPLimits = .standard, literalPlus: Bool = true, chunkSize: Int? = nil)
        throws -> FramerDriver
    {
        var driver = FramerDriver(limits: limits, literalPlus: literalPlus)
        try driver.feed(bytes, chunkSize: chunkSize ?? bytes.count)
        return driver
    }

    // MARK: - Corpus

    @Test func corpusComesOutAsCommandsInOrder() throws {
        let driver = try Self.run(CommandCorpus.all)
        let tags = driver.commands.map(\.tag)
        let expected: [String] = (1...25).map { (number: Int) -> String in
            "a" + String(String(number + 1000).dropFirst())
        }
        #expect(tags == expected)
        #expect(driver.malformed.isEmpty)
        #expect(driver.reassembled == CommandCorpus.all)
        let rawLines = driver.events.compactMap { if case .rawLine(let line) = $0 { line } else { nil } }
        #expect(rawLines == [Self.bytes("DONE"), Self.bytes("AHVzZXIAcGFzcw==")])
    }

    @Test func corpusTokensAndNames() throws {
        let commands = Dictionary(uniqueKeysWithValues: try Self.run(CommandCorpus.all).commands.map { ($0.tag, $0) })
        #expect(
            commands["a002"]?.arguments.map(\.value) == [Self.bytes("user@example.com"), Self.bytes("pa\"ss\\word")])
        #expect(commands["a004"]?.arguments.first?.kind == .quoted)
        #expect(commands["a005"]?.arguments.first?.value == Self.bytes("Sent/2025"))
        #expect(commands["a005"]?.arguments.first?.kind == .literal(.init(count: 9, synchronizing: true)))
        #expect(commands["a007"]?.fullName == "UID FETCH")
        #expect(
            commands["a007"]?.arguments.map(\.text) == [
                "100:*", "", "UID", "FLAGS", "BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT \"X-Spam\")]", "",
            ])
        #expect(commands["a010"]?.arguments.map(\.text) == ["5", "FLAGS", "", "\\Deleted", "$Junk", ""])
        let append = try #require(commands["a011"])
        #expect(
            append.topLevelStringIndices.map { append.arguments[$0].text } == [
                "Sent", "02-Dec-2026 14:00:00 +0000", String(decoding: CommandCorpus.message, as: UTF8.self),
            ])
        let binary = try #require(commands["a013"]?.arguments.last)
        #expect(
            binary.kind == .literal(.init(count: CommandCorpus.binaryMessage.count, synchronizing: true, binary: true)))
        #expect(binary.value == CommandCorpus.binaryMessage)
        let multi = try #require(commands["a014"])
        #expect(multi.arguments.filter { if case .literal = $0.kind { true } else { false } }.count == 2)
        #expect(commands["a021"]?.arguments.last?.value == CommandCorpus.umlauts)
        #expect(commands["a023"]?.arguments.last?.value == [])
        #expect(commands["a024"]?.arguments.map(\.text) == ["Old", "New"])
        // Every token's range and content range point at its bytes in raw.
        for command in commands.values {
            for token in command.arguments where token.kind != .quoted {
                #expect(Array(command.raw[token.contentRange]) == token.value, "\(command.tag)")
            }
        }
    }

    @Test func literalRequestsOnlyForSynchronizingLiterals() throws {
        let driver = try Self.run(CommandCorpus.all)
        let requests = driver.events.compactMap { if case .literalRequest(let r) = $0 { r } else { nil } }
        #expect(requests.map(\.tag) == ["a005", "a011", "a013", "a014", "a023", "a024"])
        #expect(requests.allSatisfy { $0.inline && $0.literal.synchronizing })
        let a011 = try #require(requests.first { $0.tag == "a011" })
        #expect(a011.command.name == "APPEND")
        #expect(a011.command.arguments.first?.text == "Sent")
        #expect(a011.literal.count == CommandCorpus.message.count)
    }

    @Test(arguments: [1, 2, 3, 5, 8, 13, 64])
    func dripFeedGivesTheSameEvents(chunkSize: Int) throws {
        for limits in [IMAPLimits.standard, CommandCorpus.streamingLimits] {
            let whole = try Self.run(CommandCorpus.all, limits: limits)
            let dripped = try Self.run(CommandCorpus.all, limits: limits, chunkSize: chunkSize)
            #expect(dripped.mergedEvents == whole.mergedEvents)
            #expect(dripped.reassembled == CommandCorpus.all)
        }
    }

    /// Every command of the corpus split at every byte: literal announcements, CRLFs and octets all cut.
    @Test func everyLiteralFormSplitAtEveryByte() throws {
        for limits in [IMAPLimits.standard, CommandCorpus.streamingLimits] {
            for line in CommandCorpus.lines {
                let whole = try Self.run(line, limits: limits).mergedEvents
                for split in 0...line.count {
                    var driver = FramerDriver(limits: limits)
                    try driver.feed(line, splitAt: split)
                    #expect(
                        driver.mergedEvents == whole,
                        "split at \(split) of \(String(decoding: line.prefix(20), as: UTF8.self))")
                }
            }
        }
    }

    // MARK: - Streaming

    @Test func largeLiteralStreamsThenTheCommandContinues() throws {
        let driver = try Self.run(CommandCorpus.all, limits: CommandCorpus.streamingLimits, chunkSize: 7)
        let events = driver.mergedEvents
        let start = try #require(
            events.firstIndex { if case .streamBegin(let h) = $0 { h.tag == "a011" } else { false } })
        guard case .streamBegin(let head) = events[start] else { return }
        #expect(head.part == .head)
        #expect(head.name == "APPEND")
        #expect(head.streamedLiteral == .init(count: CommandCorpus.message.count, synchronizing: true))
        #expect(
            head.raw
                == Self.bytes(
                    "a011 APPEND Sent (\\Seen) \"02-Dec-2026 14:00:00 +0000\" {\(CommandCorpus.message.count)}\r\n"))
        #expect(head.arguments.first?.text == "Sent")
        #expect(events[start + 1] == .streamBytes(CommandCorpus.message))
        #expect(events[start + 2] == .streamEnd)
        guard case .streamTail(let tail) = events[start + 3] else {
            Issue.record("expected the tail, got \(events[start + 3])")
            return
        }
        #expect(tail.tag == "a011" && tail.name == "APPEND" && tail.part == .tail)
        #expect(tail.raw == [13, 10])
    }

    @Test func multiappendStreamsTwice() throws {
        let line = CommandCorpus.lines[13]
        let events = try Self.run(line, limits: CommandCorpus.streamingLimits, chunkSize: 3).mergedEvents
        let kinds = events.map { event -> String in
            switch event {
            case .streamBegin: "begin"
            case .streamBytes: "bytes"
            case .streamEnd: "end"
            case .streamTail: "tail"
            case .literalRequest: "request"
            default: "other"
            }
        }
        #expect(kinds == ["begin", "bytes", "end", "request", "begin", "bytes", "end", "tail"])
        guard case .streamBegin(let second) = events[4] else { return }
        #expect(second.raw == Self.bytes(" (\\Seen) {\(CommandCorpus.message.count)}\r\n"))
        #expect(second.arguments.map(\.text) == ["", "\\Seen", "", ""])
        #expect(second.tag == "a014")
    }

    @Test func streamedBytesAreNotKept() throws {
        var limits = IMAPLimits()
        limits.commandLiteral = 10_000_000
        var framer = IMAPCommandFramer(limits: limits, literalPlusAdvertised: true)
        framer.append(Self.bytes("a APPEND Sent {5000000+}\r\n"))
        guard case .streamBegin? = try framer.next() else {
            Issue.record("expected the stream to begin")
            return
        }
        let chunk = [UInt8](repeating: 0x41, count: 65_536)
        var received = 0
        var ended = false
        while received < 5_000_000 {
            framer.append(chunk.prefix(5_000_000 - received))
            while let event = try framer.next() {
                if case .streamBytes(let bytes) = event { received += bytes.count }
                if event == .streamEnd { ended = true }
            }
            #expect(framer.bufferedByteCount == 0)
        }
        #expect(received == 5_000_000 && ended)
        framer.append(Self.bytes("\r\nb NOOP\r\n"))
        guard case .streamTail? = try framer.next(), case .command(let noop)? = try framer.next() else {
            Issue.record("expected the tail and NOOP")
            return
        }
        #expect(noop.name == "NOOP")
    }

    // MARK: - Literal decisions

    @Test func refusedLiteralDropsTheCommand() throws {
        var driver = FramerDriver()
        driver.refuse = { $0.tag == "a1" }
        try driver.feed(Self.bytes("a1 APPEND Sent {10}\r\na2 NOOP\r\n"), chunkSize: 100)
        #expect(driver.commands.map(\.tag) == ["a2"])
        #expect(driver.malformed.isEmpty)
    }

    @Test func nothingHappensUntilTheOwnerDecides() throws {
        var framer = IMAPCommandFramer()
        framer.append(Self.bytes("a1 LOGIN {3}\r\n"))
        guard case .literalRequest(let request)? = try framer.next() else {
            Issue.record("expected a literal request")
            return
        }
        #expect(request.command.raw == Self.bytes("a1 LOGIN {3}\r\n"))
        framer.append(Self.bytes("bob {3}\r\n"))
        #expect(try framer.next() == nil)
        #expect(framer.isAwaitingLiteralDecision)
        framer.acceptLiteral()
        guard case .literalRequest? = try framer.next() else {
            Issue.record("expected the second request")
            return
        }
        framer.acceptLiteral()
        framer.append(Self.bytes("pwd\r\n"))
        guard case .command(let login)? = try framer.next() else {
            Issue.record("expected LOGIN")
            return
        }
        #expect(login.arguments.map(\.text) == ["bob", "pwd"])
    }

    @Test func synchronizingLiteralOverTheBoundIsRefusedNotFatal() throws {
        var limits = IMAPLimits()
        limits.commandLiteral = 1000
        let driver = try Self.run(Self.bytes("a1 APPEND Sent {1001}\r\na2 NOOP\r\n"), limits: limits)
        guard case .literalTooLarge(let request)? = driver.events.first else {
            Issue.record("expected literalTooLarge, got \(driver.events)")
            return
        }
        #expect(request.tag == "a1" && request.literal.count == 1001)
        #expect(driver.commands.map(\.tag) == ["a2"])
    }

    @Test func digitOverflowInASynchronizingLiteralIsTooLarge() throws {
        let driver = try Self.run(Self.bytes("a1 APPEND Sent {999999999999999999999999999}\r\na2 NOOP\r\n"))
        guard case .literalTooLarge(let request)? = driver.events.first else {
            Issue.record("expected literalTooLarge, got \(driver.events)")
            return
        }
        #expect(request.literal.count == Int.max)
        #expect(driver.commands.map(\.tag) == ["a2"])
    }

    @Test func digitOverflowInANonSynchronizingLiteralIsFatal() {
        #expect(
            throws: IMAPError.literalTooLarge(announcedCount: Int.max, maximumCount: IMAPLimits.defaultCommandLiteral)
        ) {
            _ = try Self.run(Self.bytes("a1 APPEND Sent {999999999999999999999999999+}\r\n"))
        }
    }

    @Test func nonSynchronizingLiteralOverTheBoundIsFatalAndStaysFatal() throws {
        var limits = IMAPLimits()
        limits.commandLiteral = 1000
        var framer = IMAPCommandFramer(limits: limits, literalPlusAdvertised: true)
        framer.append(Self.bytes("a1 APPEND Sent {1001+}\r\n"))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 1001, maximumCount: 1000)) { _ = try framer.next() }
        framer.append(Self.bytes("a2 NOOP\r\n"))
        #expect(throws: IMAPError.literalTooLarge(announcedCount: 1001, maximumCount: 1000)) { _ = try framer.next() }
    }

    @Test func largeNonSynchronizingLiteralWithoutLiteralPlusIsSkippedWithBAD() throws {
        let content = [UInt8](repeating: 0x78, count: 5000)
        let input = Self.bytes("a1 APPEND Sent {5000+}\r\n") + content + Self.bytes("\r\na2 NOOP\r\n")
        for chunk in [1, 100, input.count] {
            let driver = try Self.run(input, literalPlus: false, chunkSize: chunk)
            #expect(driver.malformed == [IMAPMalformedCommand(tag: "a1", reason: .nonSynchronizingLiteralTooLarge)])
            #expect(driver.commands.map(\.tag) == ["a2"])
        }
        let small = try Self.run(
            Self.bytes("a1 LOGIN {4096+}\r\n") + content.prefix(4096) + Self.bytes(" x\r\n"), literalPlus: false)
        #expect(small.commands.map(\.tag) == ["a1"])
    }

    // MARK: - Limits

    @Test(arguments: [1, 1000, 20_000])
    func lineOverTheBoundIsFatal(chunkSize: Int) {
        let line = Self.bytes("a1 SELECT " + String(repeating: "x", count: 9000) + "\r\n")
        #expect {
            _ = try Self.run(line, chunkSize: chunkSize)
        } throws: { error in
            guard case .lineTooLong(let actual, let maximum)? = error as? IMAPError else { return false }
            return maximum == 8192 && actual > maximum
        }
    }

    @Test func lineAtTheBoundPasses() throws {
        let prefix = "a1 SELECT "
        let line = Self.bytes(prefix + String(repeating: "x", count: 8192 - prefix.count - 2) + "\r\n")
        #expect(line.count == 8192)
        #expect(try Self.run(line, chunkSize: 1).commands.count == 1)
    }

    @Test func manyEmptyLiteralsStreamOncePastTheFrame() throws {
        var limits = IMAPLimits()
        limits.inlineFrame = 4096
        var input = Self.bytes("a1 SEARCH")
        for _ in 0..<1000 { input += Self.bytes(" {0+}\r\n") }
        input += Self.bytes("\r\n")
        let driver = try Self.run(input, limits: limits, chunkSize: 100)
        #expect(driver.reassembled == input)
        #expect(driver.events.contains(.streamEnd))
        #expect(!driver.events.contains(.streamBytes([])))
    }

    /// A flood of tiny literals past the frame bound streams them one by one: memory stays bounded.
    @Test func floodOfSmallLiteralsStreamsWithBoundedMemory() throws {
        var limits = IMAPLimits()
        limits.inlineFrame = 4096
        var driver = FramerDriver(limits: limits)
        var maximumBuffered = 0
        driver.framer.append(Self.bytes("a1 SEARCH"))
        for _ in 0..<5000 {
            driver.framer.append(Self.bytes(" {1+}\r\nx"))
            try driver.drain()
            maximumBuffered = max(maximumBuffered, driver.framer.bufferedByteCount)
        }
        driver.framer.append(Self.bytes("\r\n"))
        try driver.drain()
        #expect(maximumBuffered <= 4096 + 16)
        #expect(driver.reassembled.count == 9 + 5000 * 8 + 2)
        #expect(driver.events.contains { if case .streamBegin = $0 { true } else { false } })
        guard case .streamTail(let tail)? = driver.events.last else {
            Issue.record("expected the command to end")
            return
        }
        #expect(tail.tag == "a1")
    }

    @Test func literalThatWouldOverflowTheFrameStreams() throws {
        var limits = IMAPLimits()
        limits.inlineFrame = 100
        let driver = try Self.run(
            Self.bytes("a1 APPEND Sent {90+}\r\n") + [UInt8](repeating: 0x61, count: 90) + [13, 10], limits: limits)
        #expect(driver.mergedEvents.count == 4)
        guard case .streamBegin? = driver.events.first else {
            Issue.record("expected a stream, got \(driver.events)")
            return
        }
    }

    // MARK: - Malformed and hostile input

    static let malformedCases: [(String, [UInt8], IMAPMalformedCommand)] = [
        ("empty line", Array("\r\n".utf8), .init(tag: nil, reason: .emptyLine)),
        ("NUL", Array("a1 SELECT IN\0BOX\r\n".utf8), .init(tag: "a1", reason: .nulByte)),
        ("NUL in quoted", Array("a1 SELECT \"IN\0BOX\"\r\n".utf8), .init(tag: "a1", reason: .nulByte)),
        ("bare CR", Array("a1 SELECT IN\rBOX\r\n".utf8), .init(tag: "a1", reason: .bareCarriageReturn)),
        ("bare LF", Array("a1 NOOP\n".utf8), .init(tag: "a1", reason: .bareLineFeed)),
        ("control", Array("a1 SELECT IN\u{7}BOX\r\n".utf8), .init(tag: "a1", reason: .controlCharacter)),
        ("open paren", Array("a1 FETCH 1 (FLAGS\r\n".utf8), .init(tag: "a1", reason: .unbalancedParentheses)),
        ("close paren", Array("a1 FETCH 1 FLAGS)\r\n".utf8), .init(tag: "a1", reason: .unbalancedParentheses)),
        ("open bracket", Array("a1 FETCH 1 BODY[HEADER\r\n".utf8), .init(tag: "a1", reason: .unbalancedBrackets)),
        ("brace without digits", Array("a1 LOGIN {}\r\n".utf8), .init(tag: "a1", reason: .misplacedLiteral)),
        ("brace with letters", Array("a1 LOGIN {abc}\r\n".utf8), .init(tag: "a1", reason: .misplacedLiteral)),
        ("plus only", Array("a1 LOGIN {+}\r\n".utf8), .init(tag: "a1", reason: .misplacedLiteral)),
        ("literal mid-line", Array("a1 LOGIN {3} x\r\n".utf8), .init(tag: "a1", reason: .misplacedLiteral)),
        ("literal glued to atom", Array("a1 LOGIN x{3}\r\n".utf8), .init(tag: "a1", reason: .misplacedLiteral)),
        ("unterminated quoted", Array("a1 SELECT \"INBOX\r\n".utf8), .init(tag: "a1", reason: .unterminatedQuoted)),
        ("bad escape", Array("a1 SELECT \"IN\\BOX\"\r\n".utf8), .init(tag: "a1", reason: .invalidQuotedEscape)),
        ("star tag", Array("* NOOP\r\n".utf8), .init(tag: nil, reason: .missingTag)),
        ("plus tag", Array("+ NOOP\r\n".utf8), .init(tag: nil, reason: .missingTag)),
        ("quoted tag", Array("\"a1\" NOOP\r\n".utf8), .init(tag: nil, reason: .missingTag)),
        ("leading space", Array(" a1 NOOP\r\n".utf8), .init(tag: nil, reason: .missingTag)),
        ("tag only", Array("a1\r\n".utf8), .init(tag: "a1", reason: .missingCommand)),
        ("quoted command", Array("a1 \"NOOP\"\r\n".utf8), .init(tag: "a1", reason: .missingCommand)),
        ("literal as command", Array("a1 {4}\r\n".utf8), .init(tag: "a1", reason: .missingCommand)),
        (
            "skips a literal", Array("a1 FETCH 1 (X {3+}\r\nabc\r\n".utf8),
            .init(tag: "a1", reason: .unbalancedParentheses)
        ),
        (
            "bad before literal", Array("a1 X \"a\\b\" {3+}\r\nabc\r\n".utf8),
            .init(tag: "a1", reason: .invalidQuotedEscape)
        ),
    ]

    @Test(arguments: 0..<malformedCases.count)
    func malformedCommandGetsBADAndTheNextCommandPasses(index: Int) throws {
        let (name, bytes, expected) = Self.malformedCases[index]
        let input = bytes + Self.bytes("z9 NOOP\r\n")
        for chunkSize in [1, input.count] {
            let driver = try Self.run(input, chunkSize: chunkSize)
            #expect(driver.malformed == [expected], "\(name)")
            #expect(driver.commands.map(\.tag) == ["z9"], "\(name)")
        }
    }

    @Test func badResponseText() {
        #expect(
            IMAPMalformedCommand(tag: "a1", reason: .nulByte).badResponse
                == Self.bytes("a1 BAD NUL byte in command\r\n"))
        #expect(
            IMAPMalformedCommand(tag: nil, reason: .emptyLine).badResponse == Self.bytes("* BAD Empty command line\r\n")
        )
    }

    @Test func deepNestingIsMalformed() throws {
        let input = Self.bytes(
            "a1 SEARCH " + String(repeating: "(", count: 150) + String(repeating: ")", count: 150) + "\r\n")
        #expect(try Self.run(input).malformed == [IMAPMalformedCommand(tag: "a1", reason: .tooMuchNesting)])
    }

    @Test func garbageFloodEndsAtTheErrorBoundNotInACrash() throws {
        var generator = SystemRandomNumberGenerator()
        var input: [UInt8] = []
        for _ in 0..<200 {
            let length = Int.random(in: 0..<60, using: &generator)
            input += (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) } + [13, 10]
        }
        // Random bytes: only malformed commands, commands, literal events or a bound error may come out.
        do {
            var driver = FramerDriver(literalPlus: false)
            driver.refuse = { _ in true }
            try driver.feed(input, chunkSize: 17)
        } catch {
            switch error {
            case .lineTooLong, .literalTooLarge, .commandTooLarge: break
            default: Issue.record("unexpected error \(error)")
            }
        }
    }

    // MARK: - Raw lines

    @Test func rawLineModeTakesOneLine() throws {
        var framer = IMAPCommandFramer()
        framer.append(Self.bytes("a1 IDLE\r\nDONE\r\na2 NOOP\r\n"))
        guard case .command(let idle)? = try framer.next() else { return }
        #expect(idle.name == "IDLE")
        framer.expectRawLine()
        #expect(try framer.next() == .rawLine(Self.bytes("DONE")))
        guard case .command(let noop)? = try framer.next() else { return }
        #expect(noop.tag == "a2")
    }

    @Test func rawLineMayEndInBareLFAndIsBounded() throws {
        var framer = IMAPCommandFramer(rawLineLimit: 10)
        framer.expectRawLine()
        framer.append(Self.bytes("*\n"))
        #expect(try framer.next() == .rawLine(Self.bytes("*")))
        framer.expectRawLine()
        framer.append(Self.bytes("0123456789ABC"))
        #expect(throws: IMAPError.lineTooLong(actualCount: 13, maximumCount: 10)) { _ = try framer.next() }
    }

    @Test func takeBufferedInputHandsOverTheRest() throws {
        var framer = IMAPCommandFramer()
        framer.append(Self.bytes("a1 LOGIN a b\r\na2 SELECT INBOX\r\na3 FE"))
        guard case .command? = try framer.next() else { return }
        #expect(framer.isBetweenCommands)
        #expect(framer.takeBufferedInput() == Self.bytes("a2 SELECT INBOX\r\na3 FE"))
        #expect(framer.bufferedByteCount == 0)
    }
}

extension IMAPCommandFramerTests {
    @Test func continuationPartsAreMarked() throws {
        let driver = try Self.run(CommandCorpus.lines[13], limits: CommandCorpus.streamingLimits)
        let parts = driver.events.compactMap { event -> IMAPClientCommand? in
            switch event {
            case .streamBegin(let part), .streamTail(let part): part
            default: nil
            }
        }
        #expect(parts.map(\.isContinuation) == [false, true, true])
        #expect(parts.map(\.part) == [.head, .head, .tail])
    }

    @Test func malformedAfterAStreamedPartSaysSo() throws {
        var limits = CommandCorpus.streamingLimits
        limits.commandLiteral = 100_000
        let input =
            Self.bytes("a1 APPEND Sent {20+}\r\n") + [UInt8](repeating: 0x61, count: 20)
            + Self.bytes(" {5000+}\r\n") + [UInt8](repeating: 0x62, count: 5000) + Self.bytes("\r\na2 NOOP\r\n")
        let driver = try Self.run(input, limits: limits, literalPlus: false, chunkSize: 333)
        #expect(
            driver.malformed == [
                IMAPMalformedCommand(tag: "a1", reason: .nonSynchronizingLiteralTooLarge, afterStreamedPart: true)
            ])
        #expect(driver.commands.map(\.tag) == ["a2"])
    }
}

extension IMAPCommandFramerTests {
    /// IDLE refused upstream: the client sends no DONE, so the gateway cancels raw-line mode.
    @Test func cancelledRawLineModeReadsCommandsAgain() throws {
        var framer = IMAPCommandFramer()
        framer.expectRawLine()
        framer.cancelRawLine()
        framer.append(Self.bytes("a1 NOOP\r\n"))
        guard case .command(let noop)? = try framer.next() else {
            Issue.record("expected a command")
            return
        }
        #expect(noop.name == "NOOP")
    }
}
