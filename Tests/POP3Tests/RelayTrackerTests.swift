import Testing
@testable import POP3

@Suite struct POP3RelayTrackerTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func commandsGoUpstreamCanonicallyAndLocalErrorsWaitTheirTurn() throws {
        var tracker = POP3RelayTracker()
        let (up, local) = tracker.client(Self.bytes("stat\r\nUSER x\r\nlist\r\nXYZZY\r\n"))
        #expect(String(decoding: up, as: UTF8.self) == "STAT\r\nLIST\r\n")
        #expect(local.isEmpty)  // the -ERR for USER waits for STAT's answer
        #expect(tracker.pendingResponses == 4)
        let first = try tracker.upstream(Self.bytes("+OK 2 320\r\n"))
        #expect(String(decoding: first, as: UTF8.self) == "+OK 2 320\r\n-ERR Already logged in\r\n")
        let second = try tracker.upstream(Self.bytes("+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"))
        #expect(String(decoding: second, as: UTF8.self) == "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n-ERR Unknown command \"XYZZY\"\r\n")
        #expect(tracker.pendingResponses == 0)
    }

    @Test func capaIsRewritten() throws {
        var tracker = POP3RelayTracker()
        _ = tracker.client(Self.bytes("CAPA\r\n"))
        let out = try tracker.upstream(Self.bytes("+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\nSTLS\r\nIMPLEMENTATION x\r\nPIPELINING\r\n.\r\n"))
        #expect(String(decoding: out, as: UTF8.self) == "+OK\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n")
    }

    @Test func errToAMultilineCommandHasNoBody() throws {
        var tracker = POP3RelayTracker()
        _ = tracker.client(Self.bytes("RETR 9\r\nNOOP\r\n"))
        let out = try tracker.upstream(Self.bytes("-ERR no such message\r\n+OK\r\n"))
        #expect(String(decoding: out, as: UTF8.self) == "-ERR no such message\r\n+OK\r\n")
        #expect(tracker.pendingResponses == 0)
    }

    /// A RETR body with stuffed dots and a CAPA, split at every byte, comes out the same and ends where it should.
    @Test func upstreamSplitAtEveryByte() throws {
        let wire = Self.bytes("+OK 40 octets\r\n..dot\r\nx\r\n...\r\n.\r\n+OK\r\nTOP\r\nSASL XOAUTH2\r\n.\r\n+OK\r\n")
        let expected = "+OK 40 octets\r\n..dot\r\nx\r\n...\r\n.\r\n+OK\r\nTOP\r\n.\r\n+OK\r\n-ERR Unknown command \"BAD\"\r\n"
        func run(_ pieces: [ArraySlice<UInt8>]) throws -> String {
            var tracker = POP3RelayTracker()
            _ = tracker.client(Self.bytes("RETR 1\r\nCAPA\r\nNOOP\r\nBAD\r\n"))
            var out: [UInt8] = []
            for piece in pieces { out += try tracker.upstream(piece) }
            #expect(tracker.pendingResponses == 0)
            return String(decoding: out, as: UTF8.self)
        }
        #expect(try run([wire[...]]) == expected)
        var counting = POP3RelayTracker()
        _ = counting.client(Self.bytes("RETR 1\r\n"))
        for byte in wire.prefix(33) { _ = try counting.upstream([byte]) }
        #expect(counting.retrievedOctets == "..dot\r\nx\r\n...\r\n".utf8.count)
        for cut in 0...wire.count {
            #expect(try run([wire[..<cut], wire[cut...]]) == expected, "cut at \(cut)")
        }
        #expect(try run(wire.indices.map { wire[$0...$0] }) == expected)
    }

    @Test func dataNobodyAskedForIsAViolation() {
        var tracker = POP3RelayTracker()
        #expect(throws: POP3RelayTracker.Violation.self) { try tracker.upstream(Self.bytes("+OK surprise\r\n")) }
    }

    @Test func overlongClientLinesAreAnsweredLocally() throws {
        var tracker = POP3RelayTracker()
        let (up, local) = tracker.client(Self.bytes("LIST " + String(repeating: "1", count: 400) + "\r\nNOOP\r\n"))
        #expect(String(decoding: up, as: UTF8.self) == "NOOP\r\n")
        #expect(String(decoding: local, as: UTF8.self).hasPrefix("-ERR Command line too long"))
        #expect(tracker.errorCount == 1)
    }

    @Test func nothingAfterQuit() {
        var tracker = POP3RelayTracker()
        let (up, _) = tracker.client(Self.bytes("QUIT\r\nDELE 1\r\n"))
        #expect(String(decoding: up, as: UTF8.self) == "QUIT\r\n")
        #expect(tracker.quitSent)
        #expect(tracker.client(Self.bytes("DELE 2\r\n")).toUpstream.isEmpty)
    }
}

@Suite struct POP3TopFilterTests {
    static let message = Array("From: a\r\nSubject: b\r\n\r\none\r\n.two\r\nthree\r\nfour\r\n".utf8)

    static func expected(_ lines: Int) -> [UInt8] {
        let text = "From: a\r\nSubject: b\r\n\r\n" + ["one\r\n", ".two\r\n", "three\r\n", "four\r\n"].prefix(lines).joined()
        return Array(text.utf8)
    }

    @Test(arguments: [0, 1, 2, 4, 10])
    func passesHeaderAndLinesAtEverySplit(lines: Int) {
        for cut in 0...Self.message.count {
            var filter = POP3TopFilter(bodyLines: lines)
            let out = filter.filter(Self.message[..<cut]) + filter.filter(Self.message[cut...])
            #expect(out == Self.expected(lines), "cut at \(cut), \(lines) lines")
            #expect(filter.isDone == (lines <= 4))
        }
    }

    @Test func aMessageWithoutBodyIsAllHeader() {
        var filter = POP3TopFilter(bodyLines: 3)
        #expect(filter.filter(Array("A: b\r\nC: d\r\n".utf8)) == Array("A: b\r\nC: d\r\n".utf8))
        #expect(!filter.isDone)
    }
}
