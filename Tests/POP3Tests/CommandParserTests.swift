import MailCore
import Testing
@testable import POP3

@Suite struct CommandParserTests {
    let parser = POP3CommandParser()

    @Test(arguments: [
        ("USER alice@contoso.com", POP3Command.user("alice@contoso.com")),
        ("user bob", .user("bob")),
        ("PASS secret with spaces", .pass(Redacted("secret with spaces"))),
        ("PASS  leading", .pass(Redacted(" leading"))),
        ("AUTH", .auth(mechanism: nil, initialResponse: nil)),
        ("AUTH plain", .auth(mechanism: "PLAIN", initialResponse: nil)),
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", .auth(mechanism: "PLAIN", initialResponse: Redacted("AGFsaWNlAHNlY3JldA=="))),
        ("AUTH PLAIN =", .auth(mechanism: "PLAIN", initialResponse: Redacted("="))),
        ("AUTH LOGIN", .auth(mechanism: "LOGIN", initialResponse: nil)),
        ("CAPA", .capa), ("STAT", .stat), ("NOOP", .noop), ("RSET", .rset), ("QUIT", .quit), ("STLS", .stls), ("quit", .quit),
        ("LIST", .list(nil)), ("LIST 3", .list(3)), ("UIDL", .uidl(nil)), ("UIDL 12", .uidl(12)),
        ("RETR 1", .retr(1)), ("DELE 2147483647", .dele(2_147_483_647)), ("TOP 1 0", .top(1, lines: 0)), ("TOP 4 10", .top(4, lines: 10)),
    ])
    func parsesEveryVerb(line: String, expected: POP3Command) throws {
        #expect(try parser.parse(line: Array(line.utf8)) == expected)
    }

    @Test(arguments: [
        "", "HELO", "XYZZY 1", "USER", "USER a b", "PASS", "RETR", "RETR 0", "RETR -1", "RETR +1", "RETR 1x",
        "RETR 2147483648", "RETR 99999999999999999999", "DELE 1 2", "TOP 1", "TOP 1 -1", "LIST 1 2", "LIST  1",
        "STAT 1", "QUIT now", "CAPA ", "AUTH PL@IN", "AUTH PLAIN not*base64", "AUTH PLAIN a b", "USER a\u{0}b",
        "AUTH AVERYLONGMECHANISMNAMEOVER20",
    ])
    func rejectsMalformed(line: String) {
        #expect(throws: POP3Error.self) { try parser.parse(line: Array(line.utf8)) }
    }

    @Test func apopIsRefusedWithItsOwnError() {
        #expect(throws: POP3Error.unsupportedCommand("APOP")) {
            try parser.parse(line: Array("APOP mrose c4c9334bac560ecc979e58001b3e22fb".utf8))
        }
    }

    @Test func unknownCommandIsTyped() {
        #expect(throws: POP3Error.unknownCommand("EHLO")) { try parser.parse(line: Array("EHLO x".utf8)) }
    }

    @Test func commandLinesAreBoundedAt255Octets() throws {
        let fits = "PASS " + String(repeating: "x", count: 248)  // 253 + CRLF = 255
        #expect(try parser.parse(line: Array(fits.utf8)) == .pass(Redacted(String(repeating: "x", count: 248))))
        #expect(throws: POP3Error.lineTooLong(actualCount: 256, maximumCount: 255)) {
            try parser.parse(line: Array((fits + "x").utf8))
        }
    }

    @Test func encoderWritesWhatTheParserReads() throws {
        let commands: [POP3Command] = [
            .user("a@b"), .pass(Redacted("p w")), .auth(mechanism: "XOAUTH2", initialResponse: nil),
            .auth(mechanism: "PLAIN", initialResponse: Redacted("AGE=")), .capa, .stat, .list(nil), .list(2), .uidl(nil),
            .uidl(7), .retr(1), .top(1, lines: 5), .dele(3), .noop, .rset, .quit, .stls,
        ]
        for command in commands {
            let encoded = POP3CommandEncoder.encode(command)
            #expect(encoded.suffix(2) == [13, 10])
            #expect(try parser.parse(line: Array(encoded.dropLast(2))) == command)
        }
    }

    @Test func descriptionsHideSecrets() {
        #expect(POP3CommandEncoder.descriptionWithoutSecrets(.pass(Redacted("hunter2"))) == "PASS [7 bytes]")
        #expect(POP3CommandEncoder.descriptionWithoutSecrets(.auth(mechanism: "PLAIN", initialResponse: Redacted("AGE="))) == "AUTH PLAIN [4 bytes]")
        #expect(POP3CommandEncoder.descriptionWithoutSecrets(.retr(4)) == "RETR 4")
    }
}
