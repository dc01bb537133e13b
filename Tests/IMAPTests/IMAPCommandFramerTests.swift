import Testing
@testable import IMAP

/// Drives an `IMAPCommandFramer` like the gateway does: feeds bytes in chunks, answers every literal request
/// (accept, unless `refuse` says otherwise) and records the events in a comparable form.
struct FramerDriver {
    var framer: IMAPCommandFramer
    var events: [IMAPCommandFramer.Event] = []
    var refuse: (IMAPLiteralRequest) -> Bool = { _ in false }

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

    mutating func drain() throws(IMAPError) {
        while let event = try framer.next() {
            events.append(event)
            if case .literalRequest(let request) = event {
                if refuse(request) { framer.refuseLiteral() } else { framer.acceptLiteral() }
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
}

@Suite struct IMAPCommandFramerTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func simpleCommandKeepsRawBytesAndTokens() throws {
        var driver = FramerDriver()
        try driver.feed(Self.bytes("a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n"), chunkSize: 1000)
        guard case .command(let command)? = driver.events.first, driver.events.count == 1 else {
            Issue.record("expected one command, got \(driver.events)")
            return
        }
        #expect(command.tag == "a1")
        #expect(command.name == "FETCH")
        #expect(command.isUID)
        #expect(command.raw == Self.bytes("a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n"))
        #expect(command.arguments.map(\.text) == ["1:*", "", "FLAGS", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", ""])
        #expect(command.arguments.map(\.depth) == [0, 0, 1, 1, 0])
    }

    @Test func loginWithSynchronizingLiterals() throws {
        var driver = FramerDriver()
        try driver.feed(Self.bytes("a2 LOGIN {4}\r\nuser {6}\r\nsecret\r\n"), chunkSize: 1000)
        #expect(driver.events.count == 3)
        guard case .command(let command)? = driver.events.last else {
            Issue.record("expected a command last, got \(driver.events)")
            return
        }
        #expect(command.name == "LOGIN")
        #expect(command.arguments.map(\.text) == ["user", "secret"])
        #expect(command.arguments[0].range == 9..<18)
        #expect(command.arguments[0].contentRange == 14..<18)
    }
}
