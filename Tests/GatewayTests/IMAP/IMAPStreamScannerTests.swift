// GatewayTests/IMAP: the relay's stream cutter and command tokens, every input split at every byte.
import Testing

@testable import Gateway

@Suite("IMAP stream scanner and command tokens")
struct IMAPStreamScannerTests {
    /// Feeds `bytes` in two pieces split at `split` and returns the events, literal chunks joined.
    static func events(_ bytes: [UInt8], split: Int, maximumLine: Int = 1_000) throws -> [IMAPStreamScanner.Event] {
        var scanner = IMAPStreamScanner(maximumLine: maximumLine)
        var out: [IMAPStreamScanner.Event] = []
        for piece in [Array(bytes[..<split]), Array(bytes[split...])] {
            scanner.append(piece)
            while let event = try scanner.next() {
                if case .literalBytes(let chunk) = event, case .literalBytes(let previous)? = out.last {
                    out[out.count - 1] = .literalBytes(previous + chunk)
                } else {
                    out.append(event)
                }
            }
        }
        return out
    }

    static let corpus: [(String, [IMAPStreamScanner.Event])] = [
        ("A1 NOOP\r\n", [.line(Array("A1 NOOP\r\n".utf8), first: true, literal: nil)]),
        (
            "A2 LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
            [
                .line(Array("A2 LOGIN {5}\r\n".utf8), first: true, literal: .init(count: 5, nonSynchronizing: false, binary: false, markerStart: 9)),
                .literalBytes(Array("alice".utf8)), .literalEnd,
                .line(Array(" {6+}\r\n".utf8), first: false, literal: .init(count: 6, nonSynchronizing: true, binary: false, markerStart: 1)),
                .literalBytes(Array("secret".utf8)), .literalEnd,
                .line(Array("\r\n".utf8), first: false, literal: nil),
            ]
        ),
        (
            "* 1 FETCH (BODY[] {13}\r\nline1\r\n}{3}\r\n)\r\nA3 OK done\r\n",
            [
                .line(Array("* 1 FETCH (BODY[] {13}\r\n".utf8), first: true, literal: .init(count: 13, nonSynchronizing: false, binary: false, markerStart: 18)),
                .literalBytes(Array("line1\r\n}{3}\r\n".utf8)), .literalEnd,
                .line(Array(")\r\n".utf8), first: false, literal: nil),
                .line(Array("A3 OK done\r\n".utf8), first: true, literal: nil),
            ]
        ),
        (
            "A4 APPEND INBOX ~{0}\r\n\r\n",
            [
                .line(Array("A4 APPEND INBOX ~{0}\r\n".utf8), first: true, literal: .init(count: 0, nonSynchronizing: false, binary: true, markerStart: 16)),
                .literalEnd, .line(Array("\r\n".utf8), first: false, literal: nil),
            ]
        ),
    ]

    @Test("a corpus of commands and responses, split at every byte, gives the same events")
    func splitAtEveryByte() throws {
        for (text, expected) in Self.corpus {
            let bytes = Array(text.utf8)
            for split in 0...bytes.count {
                let got = try Self.events(bytes, split: split)
                #expect(got == expected, "\(text.debugDescription) split at \(split)")
            }
        }
    }

    @Test("a literal body holding CRLF, braces and NUL is counted, never scanned")
    func literalIsCounted() throws {
        let body: [UInt8] = Array("x}\r\n{9}\r\n".utf8) + [0, 0x0D]
        let bytes = Array("* 2 FETCH (BODY[] {\(body.count)}\r\n".utf8) + body + Array(")\r\n".utf8)
        for split in 0...bytes.count {
            let got = try Self.events(bytes, split: split)
            #expect(got.count == 4)
            #expect(got[1] == .literalBytes(body))
        }
    }

    @Test("bounds: a line over the limit throws even without its CRLF; a literal count over 32 bits is refused")
    func bounds() throws {
        var scanner = IMAPStreamScanner(maximumLine: 20)
        scanner.append(Array(repeating: UInt8(ascii: "a"), count: 21))
        #expect(throws: IMAPStreamScanner.ScanError.lineTooLong(limit: 20)) { _ = try scanner.next() }
        var huge = IMAPStreamScanner(maximumLine: 100)
        huge.append(Array("A1 APPEND INBOX {99999999999}\r\n".utf8))
        #expect(throws: IMAPStreamScanner.ScanError.badLiteral) { _ = try huge.next() }
        #expect(try IMAPStreamScanner.literal(endingLine: Array("A1 X {12-}\r\n".utf8)) == nil, "LITERAL- is not a marker here")
        #expect(try IMAPStreamScanner.literal(endingLine: Array("A1 X {}\r\n".utf8)) == nil)
    }

    @Test("a refused synchronizing literal ends the command: the next line starts a new one")
    func refuseLiteral() throws {
        var scanner = IMAPStreamScanner(maximumLine: 100)
        scanner.append(Array("A1 APPEND INBOX {999}\r\nA2 NOOP\r\n".utf8))
        guard case .line(_, true, let literal?)? = try scanner.next() else { Issue.record("no literal"); return }
        #expect(literal.count == 999)
        scanner.refuseLiteral()
        #expect(try scanner.next() == .line(Array("A2 NOOP\r\n".utf8), first: true, literal: nil))
    }

    @Test("command tokens: tag, UID folding, quoted with escapes, literals, lists, ranges; replacing an argument")
    func tokens() throws {
        let bytes = Array("a7 uid COPY 1:5 \"Sent \\\"x\\\"\"\r\n".utf8)
        let line = try #require(IMAPCommandLine.parse(bytes))
        #expect(line.tag == "a7" && line.name == "COPY" && line.uid)
        #expect(line.arguments == [.atom("1:5"), .string(Array("Sent \"x\"".utf8))])
        let replaced = line.replacing([1: IMAPCommandLine.encodeAstring(Array("Sent Items".utf8))], in: bytes)
        #expect(replaced == Array("a7 uid COPY 1:5 \"Sent Items\"\r\n".utf8))
        let literal = Array("b1 SELECT {4}\r\nSent\r\n".utf8)
        let selected = try #require(IMAPCommandLine.parse(literal))
        #expect(selected.arguments == [.string(Array("Sent".utf8))])
        #expect(selected.replacing([0: Array("\"Sent Items\"".utf8)], in: literal) == Array("b1 SELECT \"Sent Items\"\r\n".utf8))
        let head = try #require(IMAPCommandLine.parse(Array("c1 APPEND Sent (\\Seen) {5000000}\r\n".utf8)))
        #expect(head.endsInLiteral && head.arguments.first == .atom("Sent"))
        let fetch = try #require(IMAPCommandLine.parse(Array("d1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n".utf8)))
        #expect(fetch.arguments[1] == .listOpen && fetch.arguments[2] == .atom("BODY.PEEK[HEADER.FIELDS (SUBJECT)]"))
        #expect(IMAPCommandLine.encodeAstring([0xC3, 0xA4]) == Array("{2}\r\n".utf8) + [0xC3, 0xA4])
        #expect(IMAPCommandLine.parse(Array("\u{1}\r\n".utf8)) == nil)
    }

    @Test("LIST patterns: * crosses the delimiter, % does not, INBOX in any case")
    func patterns() {
        let slash = UInt8(ascii: "/")
        func m(_ name: String, _ pattern: String) -> Bool {
            IMAPFolderRewriting.matches(Array(name.utf8), pattern: Array(pattern.utf8), delimiter: slash)
        }
        #expect(m("Sent/2025", "*") && m("Sent/2025", "S*") && !m("Sent/2025", "%") && m("Sent/2025", "Sent/%"))
        #expect(m("Sent", "%") && m("inbox", "INBOX") && m("INBOX", "in%") == false && m("Trash", "T%"))
        #expect(!m("Junk", "T%") && m("a/b/c", "a/%/c") && !m("a/b/x/c", "a/%/c") && m("a/b/x/c", "a/*/c"))
    }

    @Test(
        "a hostile LIST pattern (alternating * and %, no match at the end) is answered at once, not by backtracking",
        .timeLimit(.minutes(1)))
    func hostilePattern() {
        let name = Array(String(repeating: "a", count: 200).utf8)
        let pattern = Array((String(repeating: "*%", count: 40) + "x").utf8)
        #expect(!IMAPFolderRewriting.matches(name, pattern: pattern, delimiter: UInt8(ascii: "/")))
        #expect(IMAPFolderRewriting.matches(name + [UInt8(ascii: "x")], pattern: pattern, delimiter: UInt8(ascii: "/")))
    }
}
