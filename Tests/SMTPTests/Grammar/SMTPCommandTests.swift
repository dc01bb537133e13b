// SMTPTests: the command parser and encoder, every verb, including malformed and hostile lines.
import MailCore
import Testing

@testable import SMTP

private func parse(_ text: String) throws(SMTPParseError) -> SMTPCommand { try SMTPCommand.parse(Array(text.utf8)) }
private func box(_ local: String, _ domain: String) -> SMTPMailbox { SMTPMailbox(localPart: local, domain: domain) }

@Suite struct SMTPCommandParseTests {
    @Test(arguments: [
        ("EHLO client.example", SMTPCommand.ehlo("client.example")),
        ("ehlo [192.168.1.5]", .ehlo("[192.168.1.5]")),
        ("HELO host", .helo("host")),
        ("DATA", .data),
        ("data", .data),
        ("RSET", .rset),
        ("QUIT", .quit),
        ("STARTTLS", .startTLS),
        ("starttls", .startTLS),
        ("NOOP", .noop(nil)),
        ("NOOP hello there", .noop("hello there")),
        ("HELP", .help(nil)),
        ("HELP MAIL", .help("MAIL")),
        ("VRFY alice", .vrfy("alice")),
        ("EXPN staff", .expn("staff")),
        ("BDAT 100", .bdat(size: 100, last: false)),
        ("BDAT 0 LAST", .bdat(size: 0, last: true)),
        ("bdat 5 last", .bdat(size: 5, last: true)),
        ("AUTH PLAIN", .auth(mechanism: "PLAIN", initialResponse: nil)),
        ("auth login dXNlcg==", .auth(mechanism: "LOGIN", initialResponse: Redacted("dXNlcg=="))),
        ("AUTH PLAIN =", .auth(mechanism: "PLAIN", initialResponse: Redacted("="))),
        ("EHLO   spaced.example   ", .ehlo("spaced.example")),
    ])
    func simpleVerbs(line: String, expected: SMTPCommand) throws {
        #expect(try parse(line) == expected)
    }

    @Test func mailWithParameters() throws {
        let command = try parse("MAIL FROM:<alice@contoso.com> SIZE=1200 BODY=8bitmime SMTPUTF8 AUTH=<> RET=HDRS ENVID=abc")
        #expect(
            command
                == .mail(
                    from: .mailbox(box("alice", "contoso.com")),
                    parameters: [
                        SMTPParameter("SIZE", "1200"), SMTPParameter("BODY", "8BITMIME"), SMTPParameter("SMTPUTF8"),
                        SMTPParameter("AUTH", "<>"), SMTPParameter("RET", "HDRS"), SMTPParameter("ENVID", "abc"),
                    ]))
    }

    @Test func parameterOrderIsKept() throws {
        guard case .mail(_, let parameters) = try parse("MAIL FROM:<a@b.c> SMTPUTF8 SIZE=5") else {
            Issue.record("not MAIL")
            return
        }
        #expect(parameters.map(\.keyword) == ["SMTPUTF8", "SIZE"])
    }

    @Test func nullReversePath() throws {
        #expect(try parse("MAIL FROM:<>") == .mail(from: .null, parameters: []))
    }

    @Test func lowerCaseAndSpaceAfterColon() throws {
        #expect(try parse("mail from: <a@b.example>") == .mail(from: .mailbox(box("a", "b.example")), parameters: []))
        #expect(try parse("rcpt to: <c@d.example>") == .rcpt(to: .mailbox(box("c", "d.example")), parameters: []))
    }

    @Test func postmasterWithoutDomain() throws {
        #expect(try parse("RCPT TO:<postmaster>") == .rcpt(to: .postmaster, parameters: []))
        #expect(try parse("RCPT TO:<PostMaster>") == .rcpt(to: .postmaster, parameters: []))
        #expect(try parse("RCPT TO:<postmaster@x.example>") == .rcpt(to: .mailbox(box("postmaster", "x.example")), parameters: []))
    }

    @Test func sourceRouteIsStripped() throws {
        #expect(try parse("RCPT TO:<@a.example,@b.example:user@d.example>") == .rcpt(to: .mailbox(box("user", "d.example")), parameters: []))
    }

    @Test func quotedLocalPart() throws {
        let command = try parse(#"MAIL FROM:<"john \"q\" > doe"@example.com> SIZE=1"#)
        #expect(command == .mail(from: .mailbox(box(#""john \"q\" > doe""#, "example.com")), parameters: [SMTPParameter("SIZE", "1")]))
    }

    @Test func addressLiteralDomain() throws {
        #expect(try parse("RCPT TO:<x@[IPv6:2001:db8::1]>") == .rcpt(to: .mailbox(box("x", "[IPv6:2001:db8::1]")), parameters: []))
    }

    @Test func utf8AddressIsReported() throws {
        let command = try parse("MAIL FROM:<jürgen@bücher.de> SMTPUTF8")
        #expect(command.requiresSMTPUTF8)
        #expect(try !parse("MAIL FROM:<plain@ascii.example>").requiresSMTPUTF8)
        #expect(try parse("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>").requiresSMTPUTF8)
    }

    @Test func rcptParameters() throws {
        #expect(
            try parse("RCPT TO:<a@b.example> NOTIFY=success,failure ORCPT=rfc822;a@b.example")
                == .rcpt(
                    to: .mailbox(box("a", "b.example")),
                    parameters: [SMTPParameter("NOTIFY", "SUCCESS,FAILURE"), SMTPParameter("ORCPT", "rfc822;a@b.example")]))
    }

    @Test(arguments: [
        ("", SMTPParseError.syntax("empty command")),
        ("   ", .syntax("empty command")),
        ("FOO bar", .unknownCommand("FOO")),
        ("MAIL\0 FROM:<a@b>", .syntax("control character in command")),
        ("EHLO a\tb", .syntax("control character in command")),
        ("EHLO", .badArgument("EHLO needs a domain")),
        ("EHLO two words", .badArgument("EHLO takes one domain")),
        ("DATA now", .badArgument("DATA takes no argument")),
        ("QUIT please", .badArgument("QUIT takes no argument")),
        ("VRFY", .badArgument("VRFY needs an argument")),
        ("BDAT", .badArgument("BDAT needs a chunk size")),
        ("BDAT -1", .badArgument("BDAT needs a chunk size")),
        ("BDAT 10 FIRST", .badArgument("BDAT takes only LAST after the size")),
        ("BDAT 9999999999999999999999", .badArgument("BDAT needs a chunk size")),
        ("AUTH", .badArgument("AUTH needs a mechanism and at most one response")),
        ("AUTH PLAIN a b", .badArgument("AUTH needs a mechanism and at most one response")),
        ("MAIL TO:<a@b.example>", .badArgument("use MAIL FROM:<address>")),
        ("MAIL FROM:a@b.example", .badSenderAddress("the address must be in angle brackets")),
        ("MAIL FROM:<a@b.example", .badSenderAddress("missing '>'")),
        ("MAIL FROM:<a@>", .badSenderAddress("bad domain")),
        ("MAIL FROM:<@b.example>", .badSenderAddress("source route without ':'")),
        ("MAIL FROM:<a..b@c.example>", .badSenderAddress("bad local part")),
        ("MAIL FROM:<ab.example>", .badSenderAddress("address needs '@domain'")),
        ("MAIL FROM:<a@b.example>x", .badSenderAddress("text after '>' must be separated by a space")),
        ("MAIL FROM:<a@-bad-.example>", .badSenderAddress("bad domain")),
        ("MAIL FROM:<\"unterminated@b.example>", .badSenderAddress("missing '>'")),
        ("RCPT TO:<>", .badRecipientAddress("empty recipient")),
        ("RCPT TO:<a b@c.example>", .badRecipientAddress("bad local part")),
        ("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", .badArgument("NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")),
        ("RCPT TO:<a@b.example> ORCPT=nosemicolon", .badArgument("ORCPT must be addr-type;address")),
        ("MAIL FROM:<a@b.example> FOO=1", .unknownParameter("FOO")),
        ("MAIL FROM:<a@b.example> X-ANYTHING", .unknownParameter("X-ANYTHING")),
        ("RCPT TO:<a@b.example> SIZE=1", .unknownParameter("SIZE")),
        ("MAIL FROM:<a@b.example> SIZE=abc", .badArgument("SIZE needs a number")),
        ("MAIL FROM:<a@b.example> SIZE", .badArgument("SIZE needs a number")),
        ("MAIL FROM:<a@b.example> SIZE=", .badArgument("malformed value for SIZE")),
        ("MAIL FROM:<a@b.example> BODY=9BIT", .badArgument("BODY must be one of 7BIT, 8BITMIME, BINARYMIME")),
        ("MAIL FROM:<a@b.example> SMTPUTF8=yes", .badArgument("SMTPUTF8 takes no value")),
        ("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", .badArgument("SIZE given twice")),
        ("MAIL FROM:<a@b.example> =x", .badArgument("malformed parameter")),
    ])
    func malformed(line: String, expected: SMTPParseError) {
        #expect(throws: expected) { _ = try parse(line) }
    }

    @Test func invalidUTF8IsSyntaxError() {
        #expect(throws: SMTPParseError.syntax("command is not UTF-8")) {
            _ = try SMTPCommand.parse(Array("MAIL FROM:<".utf8) + [0xC3, 0x28] + Array("@b.example>".utf8))
        }
    }

    @Test func tenKilobyteLineIsTooLong() {
        let line = [UInt8]("NOOP ".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 10_240)
        #expect(throws: SMTPParseError.lineTooLong(actualCount: line.count, maximumCount: 2_046)) {
            _ = try SMTPCommand.parse(line)
        }
    }

    @Test func overlongLocalPartAndPath() {
        let local = String(repeating: "a", count: 65)
        #expect(throws: SMTPParseError.badSenderAddress("local part longer than 64 octets")) {
            _ = try parse("MAIL FROM:<\(local)@b.example>")
        }
        let domain = (0..<60).map { _ in "abcd" }.joined(separator: ".")
        #expect(throws: SMTPParseError.badRecipientAddress("address longer than 256 octets")) {
            _ = try parse("RCPT TO:<a@\(domain)>")
        }
    }

    @Test func errorsCarryTheirReplies() {
        #expect(SMTPParseError.syntax("x").reply.code == 500)
        #expect(SMTPParseError.syntax("x").reply.enhanced?.description == "5.5.2")
        #expect(SMTPParseError.unknownCommand("X").reply.encode() == Array("500 5.5.2 Command unrecognized\r\n".utf8))
        #expect(SMTPParseError.lineTooLong(actualCount: 3, maximumCount: 2).reply.encode() == Array("500 5.5.2 Line too long\r\n".utf8))
        #expect(SMTPParseError.badArgument("x").reply.enhanced?.description == "5.5.4")
        #expect(SMTPParseError.badArgument("x").reply.code == 501)
        #expect(SMTPParseError.badSenderAddress("x").reply.enhanced?.description == "5.1.7")
        #expect(SMTPParseError.badRecipientAddress("x").reply.enhanced?.description == "5.1.3")
        #expect(SMTPParseError.unknownParameter("X").reply.code == 555)
        #expect(SMTPParseError.unknownParameter("X").reply.enhanced?.description == "5.5.4")
    }

    @Test func unknownVerbIsSanitizedAndCut() {
        do {
            _ = try SMTPCommand.parse(Array("GET\u{7F}/index.html HTTP/1.1".utf8))
            Issue.record("parsed")
        } catch {
            #expect(error == .syntax("control character in command"))
        }
        #expect(throws: SMTPParseError.unknownCommand("ABCDEFGHIJKLMNOPQRST…")) {
            _ = try parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ x")
        }
    }
}

@Suite struct SMTPCommandEncodeTests {
    @Test(arguments: [
        "EHLO mailgate.local", "HELO h", "MAIL FROM:<alice@contoso.com> SIZE=1200 BODY=8BITMIME SMTPUTF8",
        "MAIL FROM:<>", "RCPT TO:<bob@contoso.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob@contoso.com",
        "RCPT TO:<Postmaster>", "DATA", "BDAT 4096", "BDAT 0 LAST", "RSET", "NOOP", "NOOP x", "QUIT", "HELP",
        "HELP DATA", "VRFY bob", "EXPN list", "AUTH XOAUTH2", "AUTH PLAIN AGEAYg==", "STARTTLS",
        #"MAIL FROM:<"a b"@[127.0.0.1]>"#, "MAIL FROM:<jürgen@bücher.de> SMTPUTF8",
    ])
    func roundTrip(line: String) throws {
        let command = try parse(line)
        #expect(command.encode() == Array((line + "\r\n").utf8))
        #expect(try SMTPCommand.parse(Array(command.encode().dropLast(2))) == command)
    }

    @Test func sourceRouteDoesNotSurviveEncoding() throws {
        #expect(try parse("MAIL FROM:<@relay.example:a@b.example>").encode() == Array("MAIL FROM:<a@b.example>\r\n".utf8))
    }

    @Test func encodesBuiltCommand() {
        let command = SMTPCommand.mail(
            from: .mailbox(SMTPMailbox(localPart: "x", domain: "y.example")),
            parameters: [SMTPParameter("size", "10"), SMTPParameter("smtputf8")])
        #expect(command.encode() == Array("MAIL FROM:<x@y.example> SIZE=10 SMTPUTF8\r\n".utf8))
        #expect(command.verb == "MAIL")
    }

    @Test func authResponseIsRedactedInDescriptions() {
        let command = SMTPCommand.auth(mechanism: "PLAIN", initialResponse: Redacted("c2VjcmV0"))
        #expect(!"\(command)".contains("c2VjcmV0"))
    }
}
