// SMTPTests: replies (encode, incremental parse, round trips), enhanced codes and EHLO extensions.
import MailCore
import Testing

@testable import SMTP

private func feedAll(_ text: String, parser: inout SMTPReplyParser) throws(SMTPReplyParseError) -> [SMTPReply] {
    var replies: [SMTPReply] = []
    for line in text.split(separator: "\r\n", omittingEmptySubsequences: false) where !line.isEmpty {
        if let reply = try parser.feed(line: Array(line.utf8)) { replies.append(reply) }
    }
    return replies
}

@Suite struct EnhancedStatusTests {
    @Test(arguments: ["2.0.0", "5.7.139", "4.4.2", "5.2.252", "2.999.999"])
    func parsesAndEncodes(text: String) throws {
        let status = try #require(EnhancedStatus(text))
        #expect(status.description == text)
    }

    @Test(arguments: ["", "2.0", "3.0.0", "1.2.3", "2.0.0.0", "2..0", "22.0.0", "2.1000.0", "a.b.c", "2.0.0 ", "-2.0.0", "2.+1.0"])
    func rejects(text: String) {
        #expect(EnhancedStatus(text) == nil)
    }

    @Test func numericInitValidatesRanges() {
        #expect(EnhancedStatus(5, 7, 139)?.description == "5.7.139")
        #expect(EnhancedStatus(3, 0, 0) == nil)
        #expect(EnhancedStatus(2, 1000, 0) == nil)
    }
}

@Suite struct SMTPReplyEncodeTests {
    @Test func singleLineWithEnhancedCode() {
        #expect(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.0"), "Sender OK").encode() == Array("250 2.1.0 Sender OK\r\n".utf8))
    }

    @Test func multiLineCarriesEnhancedCodeOnEveryLine() {
        let reply = SMTPReply(code: 550, enhanced: EnhancedStatus("5.1.1"), lines: ["first", "second", "third"])
        #expect(reply.encode() == Array("550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n".utf8))
    }

    @Test func ehloStyleWithoutEnhancedCode() {
        let reply = SMTPReply(code: 250, lines: ["mx.example Hello", "PIPELINING", "SIZE 100"])
        #expect(reply.encode() == Array("250-mx.example Hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n".utf8))
    }

    @Test func emptyTextForms() {
        #expect(SMTPReply(code: 250, lines: []).encode() == Array("250\r\n".utf8))
        #expect(SMTPReply(code: 334, "").encode() == Array("334 \r\n".utf8))
        #expect(SMTPReply(code: 250, enhanced: EnhancedStatus("2.0.0"), "").encode() == Array("250 2.0.0\r\n".utf8))
    }

    @Test func classification() {
        #expect(SMTPReply(code: 235, "x").isPositiveCompletion)
        #expect(SMTPReply(code: 354, "x").isPositiveIntermediate)
        #expect(SMTPReply(code: 421, "x").isTransientFailure)
        #expect(SMTPReply(code: 554, "x").isPermanentFailure)
        #expect(!SMTPReply(code: 554, "x").isPositiveCompletion)
    }

    @Test func descriptionIsOneLine() {
        let reply = SMTPReply(code: 550, enhanced: EnhancedStatus("5.1.1"), lines: ["a", "b"])
        #expect(reply.description == "550 5.1.1 a / b")
    }
}

@Suite struct SMTPReplyParserTests {
    @Test func singleLine() throws {
        var parser = SMTPReplyParser()
        let reply = try parser.feed(line: Array("235 2.7.0 Authentication successful".utf8))
        #expect(reply == SMTPReply(code: 235, enhanced: EnhancedStatus("2.7.0"), "Authentication successful"))
    }

    @Test func multiLineCollectsContinuations() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.feed(line: Array("250-first".utf8)) == nil)
        #expect(parser.isInsideReply)
        #expect(try parser.feed(line: Array("250-second".utf8)) == nil)
        #expect(try parser.feed(line: Array("250 last".utf8)) == SMTPReply(code: 250, lines: ["first", "second", "last"]))
        #expect(!parser.isInsideReply)
    }

    @Test func bareCodeAndCodeWithSpace() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.feed(line: Array("334".utf8)) == SMTPReply(code: 334, lines: [""]))
        #expect(try parser.feed(line: Array("334 ".utf8)) == SMTPReply(code: 334, lines: [""]))
        #expect(try parser.feed(line: Array("334 eyJzdGF0dXMiOiI0MDEifQ==".utf8)) == SMTPReply(code: 334, "eyJzdGF0dXMiOiI0MDEifQ=="))
    }

    @Test func enhancedClassMustMatchCode() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.feed(line: Array("250 5.0.0 odd".utf8)) == SMTPReply(code: 250, "5.0.0 odd"))
    }

    @Test(arguments: [
        "235 2.7.0 Authentication successful",
        "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as bob@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]",
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [XX.prod.outlook.com]",
        "530 5.7.57 Client not authenticated to send mail. [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]",
        "550-5.1.1 one\r\n550-5.1.1 two\r\n550 5.1.1 three",
        "250-BL0PR02CA0001.outlook.office365.com Hello [203.0.113.7]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8",
        "220 BL0PR02CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at Tue, 1 Sep 2026 10:00:00 +0000",
        "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2.",
    ])
    func roundTripsByteForByte(text: String) throws {
        var parser = SMTPReplyParser()
        let replies = try feedAll(text, parser: &parser)
        #expect(replies.count == 1)
        #expect(replies.first?.encode() == Array((text + "\r\n").utf8))
    }

    @Test(arguments: ["25", "2500 x", "250x", "abc", "650 x", "150 x", "", "\u{0}\u{0}\u{0}"])
    func malformedLines(line: String) {
        var parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.self) { _ = try parser.feed(line: Array(line.utf8)) }
    }

    @Test func inconsistentCode() {
        var parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.inconsistentCode(first: 250, got: 251)) {
            _ = try parser.feed(line: Array("250-a".utf8))
            _ = try parser.feed(line: Array("251 b".utf8))
        }
    }

    @Test func boundedLines() {
        var parser = SMTPReplyParser(maximumLines: 5)
        #expect(throws: SMTPReplyParseError.tooManyLines(maximumCount: 5)) {
            for _ in 0..<10 { _ = try parser.feed(line: Array("250-x".utf8)) }
        }
        #expect(!parser.isInsideReply)
    }

    @Test func boundedLineLength() {
        var parser = SMTPReplyParser()
        let line = Array("250 ".utf8) + [UInt8](repeating: 0x41, count: Limits.standard.upstreamLine)
        #expect(throws: SMTPReplyParseError.lineTooLong(actualCount: line.count, maximumCount: Limits.standard.upstreamLine)) {
            _ = try parser.feed(line: line)
        }
    }

    @Test func recoversAfterError() throws {
        var parser = SMTPReplyParser()
        _ = try? parser.feed(line: Array("250-a".utf8))
        _ = try? parser.feed(line: Array("junk".utf8))
        #expect(try parser.feed(line: Array("221 2.0.0 Bye".utf8)) == SMTPReply(code: 221, enhanced: EnhancedStatus("2.0.0"), "Bye"))
    }

    @Test func errorDescriptionsAreSanitized() {
        let error = SMTPReplyParseError.malformedLine("x\u{1B}[31m")
        #expect(!error.description.contains("\u{1B}"))
    }
}

@Suite struct SMTPExtensionsTests {
    static let beforeTLS = SMTPReply(code: 250, lines: [
        "BL0PR02CA0001.outlook.office365.com Hello [203.0.113.7]", "SIZE 157286400", "PIPELINING", "DSN",
        "ENHANCEDSTATUSCODES", "STARTTLS", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8",
    ])
    static let afterTLS = SMTPReply(code: 250, lines: [
        "BL0PR02CA0001.outlook.office365.com Hello [203.0.113.7]", "SIZE 157286400", "PIPELINING", "DSN",
        "ENHANCEDSTATUSCODES", "AUTH LOGIN XOAUTH2", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8",
    ])

    @Test func exchangeBeforeTLS() {
        let extensions = SMTPExtensions(ehloReply: Self.beforeTLS)
        #expect(extensions.serverName == "BL0PR02CA0001.outlook.office365.com")
        #expect(extensions.maximumSize == 157_286_400)
        #expect(extensions.pipelining && extensions.dsn && extensions.enhancedStatusCodes && extensions.startTLS)
        #expect(extensions.eightBitMIME && extensions.binaryMIME && extensions.chunking && extensions.smtpUTF8)
        #expect(extensions.authMechanisms.isEmpty)
        #expect(extensions.other.isEmpty)
    }

    @Test func exchangeAfterTLS() {
        let extensions = SMTPExtensions(ehloReply: Self.afterTLS)
        #expect(!extensions.startTLS)
        #expect(extensions.authMechanisms == ["LOGIN", "XOAUTH2"])
    }

    @Test func oldAuthEqualsFormAndUnknownKeywords() {
        let extensions = SMTPExtensions(ehloReply: SMTPReply(code: 250, lines: ["h", "AUTH=PLAIN LOGIN", "auth plain", "X-EXPS GSSAPI", "SIZE"]))
        #expect(extensions.authMechanisms == ["PLAIN", "LOGIN"])
        #expect(extensions.other == ["X-EXPS GSSAPI"])
        #expect(extensions.maximumSize == 0)
        #expect(extensions.sizeAdvertised)
    }

    @Test func keywordLinesRoundTrip() {
        let extensions = SMTPExtensions(ehloReply: Self.afterTLS)
        let reparsed = SMTPExtensions(ehloReply: SMTPReply(code: 250, lines: [extensions.serverName] + extensions.keywordLines))
        #expect(reparsed == extensions)
    }
}
