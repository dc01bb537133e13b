import Testing
@testable import POP3

@Suite struct ReplyTests {
    @Test(arguments: [
        ("+OK User successfully authenticated.", POP3Reply(status: .ok, text: "User successfully authenticated.")),
        ("+OK", POP3Reply(status: .ok, text: "")),
        ("+ok lower case", POP3Reply(status: .ok, text: "lower case")),
        ("-ERR Authentication failure: unknown user name or bad password.", POP3Reply(status: .err, text: "Authentication failure: unknown user name or bad password.")),
        ("-ERR [IN-USE] Mailbox locked", POP3Reply(status: .err, code: .inUse, text: "Mailbox locked")),
        ("-ERR [SYS/TEMP] try later", POP3Reply(status: .err, code: .systemTemporary, text: "try later")),
        ("-ERR [not a code] text", POP3Reply(status: .err, text: "[not a code] text")),
        ("-ERR", POP3Reply(status: .err, text: "")),
        ("+", POP3Reply(status: .continuation, text: "")),
        ("+ ", POP3Reply(status: .continuation, text: "")),
        ("+ eyJzdGF0dXMiOiI0MDEifQ==", POP3Reply(status: .continuation, text: "eyJzdGF0dXMiOiI0MDEifQ==")),
        ("+OK 2 320\r", POP3Reply(status: .ok, text: "2 320")),
    ])
    func parses(line: String, expected: POP3Reply) throws {
        #expect(try POP3Reply.parse(line: Array(line.utf8)) == expected)
    }

    @Test(arguments: ["", "OK", "+OKAY", "-ERROR x", "+x", "* OK", "+OK a\u{0}b", "250 OK"])
    func rejectsMalformed(line: String) {
        #expect(throws: POP3Error.self) { try POP3Reply.parse(line: Array(line.utf8)) }
    }

    @Test func encodesAndParsesBack() throws {
        for reply in [
            POP3Reply(status: .ok, text: "ready"), POP3Reply(status: .err, code: .loginDelay, text: "wait"),
            POP3Reply(status: .continuation, text: ""), POP3Reply(status: .continuation, text: "Y2hhbGxlbmdl"),
        ] {
            let encoded = reply.encoded
            #expect(encoded.suffix(2) == [13, 10])
            #expect(try POP3Reply.parse(line: encoded.dropLast(2)) == reply)
        }
    }

    @Test func capabilitiesFromExchange() {
        let capabilities = POP3Capabilities.parse(Array("TOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n".utf8))
        #expect(capabilities.lines == ["TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"])
        #expect(capabilities.saslMechanisms == ["PLAIN", "XOAUTH2"])
        #expect(capabilities.contains("uidl"))
        #expect(!capabilities.contains("STLS"))
        #expect(!capabilities.contains("PIPELINING"))
    }
}

@Suite struct MultilineReaderTests {
    /// Reads `wire` in chunks of `chunkSize`, returning body, bytes left after the terminator, and completion.
    static func read(_ wire: [UInt8], chunkSize: Int, maximumSize: Int = 1 << 20) throws -> (body: [UInt8], rest: [UInt8], complete: Bool) {
        var reader = POP3MultilineReader(maximumSize: maximumSize)
        var body: [UInt8] = []
        var rest: [UInt8] = []
        var offset = 0
        while offset < wire.count {
            let chunk = wire[offset..<min(wire.count, offset + chunkSize)]
            offset += chunk.count
            if reader.isComplete {
                rest += chunk
                continue
            }
            let result = try reader.read(chunk)
            body += result.data
            rest += chunk.dropFirst(result.consumedCount)
        }
        return (body, rest, reader.isComplete)
    }

    static let wire = Array("Subject: x\r\n\r\n..leading dot\r\n...two\r\n.\r\nnot end\r\n.x\r\n.\r\n+OK next\r\n".utf8)
    static let body = Array("Subject: x\r\n\r\n.leading dot\r\n..two\r\n\r\nnot end\r\nx\r\n".utf8)

    @Test(arguments: [1, 2, 3, 5, 8, 1000])
    func unstuffsAcrossChunkBoundaries(chunkSize: Int) throws {
        // ".\r\n" in the middle is the terminator: body ends there.
        let result = try Self.read(Self.wire, chunkSize: chunkSize)
        #expect(result.complete)
        #expect(result.body == Array("Subject: x\r\n\r\n.leading dot\r\n..two\r\n".utf8))
        #expect(result.rest == Array("not end\r\n.x\r\n.\r\n+OK next\r\n".utf8))
    }

    @Test(arguments: [1, 2, 7])
    func dotLinesThatAreNotTheTerminator(chunkSize: Int) throws {
        let wire = Array(".x\r\n.\rnot\r\n..\r\n.\r\n".utf8)
        let result = try Self.read(wire, chunkSize: chunkSize)
        #expect(result.complete)
        #expect(result.body == Array("x\r\n\rnot\r\n.\r\n".utf8))
        #expect(result.rest.isEmpty)
    }

    @Test func emptyBody() throws {
        let result = try Self.read(Array(".\r\n".utf8), chunkSize: 1)
        #expect(result.complete && result.body.isEmpty)
    }

    @Test func incompleteBodyIsNotComplete() throws {
        let result = try Self.read(Array("line\r\n.".utf8), chunkSize: 1)
        #expect(!result.complete)
        #expect(result.body == Array("line\r\n".utf8))
    }

    @Test func bodyLargerThanTheLimitFails() {
        #expect(throws: POP3Error.responseTooLarge(actualCount: 11, maximumCount: 10)) {
            _ = try Self.read(Array("0123456789\r\n.\r\n".utf8), chunkSize: 11, maximumSize: 10)
        }
    }
}

@Suite struct LineBufferTests {
    @Test func splitsLinesAndBoundsThem() throws {
        var buffer = POP3LineBuffer(maximumLineLength: 10)
        buffer.append(Array("+OK\r\n-ERR x\n+".utf8))
        #expect(try buffer.nextLine() == Array("+OK".utf8))
        #expect(try buffer.nextLine() == Array("-ERR x".utf8))
        #expect(try buffer.nextLine() == nil)
        buffer.append(Array("0123456789".utf8))
        #expect(throws: POP3Error.lineTooLong(actualCount: 11, maximumCount: 10)) { try buffer.nextLine() }
    }
}
