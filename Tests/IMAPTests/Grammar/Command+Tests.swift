import MailCore
import Testing
@testable import IMAP

@Suite struct CommandEncoderTests {
    static func text(_ segments: [IMAPCommandSegment]) -> String {
        segments.map { segment in
            switch segment {
            case .bytes(let bytes): return String(decoding: bytes, as: UTF8.self)
            case .waitForContinuation: return "<wait>"
            }
        }.joined()
    }

    let plain = IMAPCommandEncoder()
    let literalPlus = IMAPCommandEncoder(literalPlus: true)

    @Test func simpleCommands() {
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A0001", command: .capability))) == "A0001 CAPABILITY\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A0002", command: .noop))) == "A0002 NOOP\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A0003", command: .logout))) == "A0003 LOGOUT\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A0004", command: .idle))) == "A0004 IDLE\r\n")
        #expect(IMAPCommandEncoder.done == Array("DONE\r\n".utf8))
    }

    @Test func authenticateWithInitialResponse() {
        let payload = Redacted(Array("user=test@contoso.onmicrosoft.com\u{1}auth=Bearer EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA\u{1}\u{1}".utf8))
        let command = TaggedCommand(tag: "A0002", command: .authenticate(mechanism: "XOAUTH2", initialResponse: payload))
        #expect(Self.text(plain.encode(command)) == "A0002 AUTHENTICATE XOAUTH2 dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==\r\n")
        #expect(plain.descriptionWithoutSecrets(command) == "A0002 AUTHENTICATE XOAUTH2 [\(payload.revealed.count) bytes]")
        let empty = TaggedCommand(tag: "A1", command: .authenticate(mechanism: "PLAIN", initialResponse: Redacted([])))
        #expect(Self.text(plain.encode(empty)) == "A1 AUTHENTICATE PLAIN =\r\n")
        let none = TaggedCommand(tag: "A1", command: .authenticate(mechanism: "XOAUTH2", initialResponse: nil))
        #expect(Self.text(plain.encode(none)) == "A1 AUTHENTICATE XOAUTH2\r\n")
    }

    @Test func loginSendsCredentialsAsLiterals() {
        let command = TaggedCommand(tag: "A0002", command: .login(username: "user@contoso.com", password: Redacted("pa\"ss word")))
        #expect(Self.text(plain.encode(command)) == "A0002 LOGIN {16}\r\n<wait>user@contoso.com {10}\r\n<wait>pa\"ss word\r\n")
        #expect(Self.text(literalPlus.encode(command)) == "A0002 LOGIN {16+}\r\nuser@contoso.com {10+}\r\npa\"ss word\r\n")
        let description = plain.descriptionWithoutSecrets(command)
        #expect(description == "A0002 LOGIN user@contoso.com [10 bytes]")
        #expect(!description.contains("pa\"ss"))
    }

    @Test func listSelectExamineSearch() {
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A3", command: .list(reference: MailboxName([]), pattern: Array("*".utf8))))) == "A3 LIST \"\" *\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A3", command: .list(reference: MailboxName([]), pattern: Array("a b/%".utf8))))) == "A3 LIST \"\" \"a b/%\"\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A4", command: .select(MailboxName(Array("Sent Items".utf8)))))) == "A4 SELECT \"Sent Items\"\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A4", command: .select(.inbox)))) == "A4 SELECT INBOX\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A4", command: .examine(MailboxName(decoded: "Gelöschte Elemente"))))) == "A4 EXAMINE \"Gel&APY-schte Elemente\"\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A5", command: .uidSearchHeader(field: "Message-ID", value: "<1234@contoso.com>")))) == "A5 UID SEARCH HEADER Message-ID \"<1234@contoso.com>\"\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A5", command: .uidSearchHeader(field: "Subject", value: "Grüße")))) == "A5 UID SEARCH CHARSET UTF-8 HEADER Subject {7}\r\n<wait>Grüße\r\n")
        #expect(Self.text(plain.encode(TaggedCommand(tag: "A5", command: .uidSearchHeader(field: "X-Empty", value: ""))) ) == "A5 UID SEARCH HEADER X-Empty \"\"\r\n")
    }

    @Test func appendWithSynchronizingAndNonSynchronizingLiteral() {
        let message = Array("Subject: hi\r\n\r\nbody\r\n".utf8)
        let command = TaggedCommand(tag: "A6", command: .append(mailbox: MailboxName(Array("Sent Items".utf8)), flags: [.seen], internalDate: nil, message: message))
        #expect(plain.encode(command) == [.bytes(Array("A6 APPEND \"Sent Items\" (\\Seen) {21}\r\n".utf8)), .waitForContinuation, .bytes(message + [13, 10])])
        #expect(literalPlus.encode(command) == [.bytes(Array("A6 APPEND \"Sent Items\" (\\Seen) {21+}\r\n".utf8) + message + [13, 10])])
        #expect(plain.descriptionWithoutSecrets(command) == "A6 APPEND Sent Items (\\Seen) [21 bytes]")
        let dated = TaggedCommand(tag: "A7", command: .append(mailbox: .inbox, flags: [], internalDate: "17-Jul-1996 02:44:25 -0700", message: []))
        #expect(Self.text(plain.encode(dated)) == "A7 APPEND INBOX \"17-Jul-1996 02:44:25 -0700\" {0}\r\n<wait>\r\n")
    }

    @Test func literalMinusOnlyForSmallLiterals() {
        var writer = IMAPCommandWriter(literalMinus: true)
        writer.writeLiteral(Array(repeating: 0x41, count: 4096))
        writer.writeLiteral(Array(repeating: 0x41, count: 4097))
        let segments = writer.finish()
        #expect(segments.count == 3)
        #expect(Self.text(segments).hasPrefix("{4096+}\r\n"))
        #expect(Self.text(segments).contains("{4097}\r\n<wait>"))
        #expect(segments[1] == .waitForContinuation)
    }

    @Test(arguments: [
        ("INBOX", "INBOX"), ("", "\"\""), ("a b", "\"a b\""), ("a\"b", "\"a\\\"b\""), ("a\\b", "\"a\\\\b\""),
        ("x]y", "x]y"), ("a%", "\"a%\""), ("(", "\"(\""), ("ü", "{2}\r\n<wait>ü"), ("line\r\nbreak", "{11}\r\n<wait>line\r\nbreak"),
    ])
    func astringChoosesTheSimplestForm(value: String, wire: String) {
        var writer = IMAPCommandWriter()
        writer.writeAstring(Array(value.utf8))
        #expect(Self.text(writer.finish()) == wire)
    }

    @Test func quotedStringsAreBoundedByLength() {
        var writer = IMAPCommandWriter()
        writer.writeAstring(Array(repeating: UInt8(ascii: " "), count: 1000))
        #expect(Self.text(writer.finish()).hasPrefix("\""))
        writer.writeAstring(Array(repeating: UInt8(ascii: " "), count: 1001))
        #expect(Self.text(writer.finish()).hasPrefix("{1001}\r\n"))
    }

    @Test func authenticationResponseLine() {
        #expect(IMAPCommandEncoder.authenticationResponse(Redacted(Array("abc".utf8))) == Array("YWJj\r\n".utf8))
        #expect(IMAPCommandEncoder.authenticationResponse(Redacted([])) == Array("\r\n".utf8))
    }
}
