// SMTPTests: the client-facing state machine, command by command, state by state, including hostile clients.
import Foundation
import MailCore
import Testing

@testable import SMTP

private func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

@Suite struct SMTPServerGreetingAndEHLOTests {
    @Test func greetsOnConnect() {
        var server = SMTPServerSide(configuration: makeConfiguration())
        #expect(server.state == .awaitingConnection)
        #expect(server.handle(.connected).replyLines == ["220 mailgate.test ESMTP MailGate ready"])
        #expect(server.state == .greeting)
        #expect(server.handle(.connected).isEmpty)
    }

    @Test func ehloOnLoopbackOffersAuthAndUpstreamExtensions() {
        var server = makeServer { $0.tlsAvailable = true }
        #expect(
            server.replies("EHLO client.test\r\n") == [
                "250-mailgate.test Hello client.test", "250-PIPELINING", "250-SIZE 157286400", "250-ENHANCEDSTATUSCODES",
                "250-STARTTLS", "250-AUTH PLAIN LOGIN", "250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8",
            ])
        #expect(server.state == .ready)
        #expect(server.heloName == "client.test")
    }

    @Test func lanClientWithoutTLSSeesNoAuth() {
        var server = makeServer {
            $0.clientIsLoopback = false
            $0.tlsAvailable = true
        }
        let lines = server.replies("EHLO printer\r\n")
        #expect(lines.contains("250-STARTTLS"))
        #expect(!lines.contains { $0.contains("AUTH") })
    }

    @Test func allowPlaintextOffersAuthOnLAN() {
        var server = makeServer {
            $0.clientIsLoopback = false
            $0.allowPlaintext = true
        }
        #expect(server.replies("EHLO printer\r\n").contains { $0.hasSuffix("AUTH PLAIN LOGIN") })
    }

    @Test func implicitTLSOffersAuthButNotSTARTTLS() {
        var server = makeServer {
            $0.clientIsLoopback = false
            $0.tlsAvailable = true
            $0.implicitTLS = true
        }
        let lines = server.replies("EHLO c\r\n")
        #expect(!lines.contains { $0.contains("STARTTLS") })
        #expect(lines.contains { $0.hasSuffix("AUTH PLAIN LOGIN") })
    }

    @Test func upstreamWithoutChunkingOrUTF8LimitsOffer() {
        var server = makeServer {
            $0.upstreamExtensions = SMTPExtensions()
            $0.maximumMessageSize = 1000
        }
        let lines = server.replies("EHLO c\r\n")
        #expect(lines.contains("250-SIZE 1000"))
        for keyword in ["CHUNKING", "BINARYMIME", "8BITMIME", "SMTPUTF8", "STARTTLS"] {
            #expect(!lines.contains { $0.hasSuffix(keyword) }, "\(keyword)")
        }
    }

    @Test func heloGetsPlainReply() {
        var server = makeServer()
        #expect(server.replies("HELO old.client\r\n") == ["250 mailgate.test Hello old.client"])
        #expect(server.state == .ready)
    }
}

@Suite struct SMTPServerCommandTableTests {
    enum Setup: String, CaseIterable, Sendable {
        case greeting, ready, authenticated, transaction, withRecipient
    }

    static func server(_ setup: Setup) -> SMTPServerSide {
        var server = makeServer()
        switch setup {
        case .greeting: break
        case .ready: _ = server.feed("EHLO c\r\n")
        case .authenticated: server.authenticate()
        case .transaction: server.inTransaction()
        case .withRecipient: server.inTransaction(recipients: 1)
        }
        return server
    }

    /// (setup, command, expected first reply code or action description)
    static let table: [(Setup, String, String)] = [
        (.greeting, "MAIL FROM:<a@b.example>", "503 5.5.1"),
        (.greeting, "RCPT TO:<a@b.example>", "503 5.5.1"),
        (.greeting, "DATA", "503 5.5.1"),
        (.greeting, "AUTH PLAIN", "503 5.5.1"),
        (.greeting, "NOOP", "250 2.0.0"),
        (.greeting, "RSET", "250 2.0.0"),
        (.greeting, "HELP", "214 2.0.0"),
        (.greeting, "VRFY bob", "252 2.1.5"),
        (.greeting, "EXPN staff", "502 5.5.1"),
        (.greeting, "STARTTLS", "502 5.5.1"),
        (.greeting, "QUIT", "221 2.0.0"),
        (.greeting, "XYZZY", "500 5.5.2"),
        (.greeting, "EHLO", "501 5.5.4"),
        (.ready, "MAIL FROM:<a@b.example>", "530 5.7.0"),
        (.ready, "RCPT TO:<a@b.example>", "503 5.5.1"),
        (.ready, "DATA", "503 5.5.1"),
        (.ready, "BDAT 0 LAST", "503 5.5.1"),
        (.ready, "NOOP", "250 2.0.0"),
        (.ready, "RSET", "250 2.0.0"),
        (.ready, "AUTH CRAM-MD5", "504 5.5.4"),
        (.ready, "AUTH PLAIN", "334"),
        (.ready, "MAIL FROM:a@b.example", "501 5.1.7"),
        (.authenticated, "MAIL FROM:<a@b.example>", "forwardMail"),
        (.authenticated, "MAIL FROM:<a@b.example> SIZE=999999999999", "552 5.3.4"),
        (.authenticated, "MAIL FROM:<a@b.example> FOO=1", "555 5.5.4"),
        (.authenticated, "MAIL FROM:<a@b.example> RET=FULL", "555 5.5.4"),
        (.authenticated, "MAIL FROM:<jörg@b.example>", "553 5.6.7"),
        (.authenticated, "MAIL FROM:<jörg@b.example> SMTPUTF8", "forwardMail"),
        (.authenticated, "AUTH PLAIN", "503 5.5.1"),
        (.authenticated, "RCPT TO:<a@b.example>", "503 5.5.1"),
        (.transaction, "MAIL FROM:<a@b.example>", "503 5.5.1"),
        (.transaction, "RCPT TO:<a@b.example>", "forwardRcpt"),
        (.transaction, "RCPT TO:<a@b.example> NOTIFY=NEVER", "555 5.5.4"),
        (.transaction, "RCPT TO:<jörg@b.example>", "553 5.6.7"),
        (.transaction, "RCPT TO:a@b.example", "501 5.1.3"),
        (.transaction, "DATA", "554 5.5.1"),
        (.transaction, "AUTH PLAIN", "503 5.5.1"),
        (.transaction, "RSET", "250 2.0.0"),
        (.withRecipient, "DATA", "beginData"),
        (.withRecipient, "BDAT 0 LAST", "beginChunkedData"),
        (.withRecipient, "QUIT", "221 2.0.0"),
        (.withRecipient, "STARTTLS", "502 5.5.1"),
        (.withRecipient, "VRFY x", "252 2.1.5"),
    ]

    @Test(arguments: 0..<table.count)
    func commandInState(row: Int) {
        let (setup, command, expected) = Self.table[row]
        var server = Self.server(setup)
        let actions = server.feed(command + "\r\n")
        let described = actions.firstReplyCode ?? actions.nonReplies.first.map { "\($0)" } ?? "nothing"
        #expect(described.hasPrefix(expected), "\(setup) \(command) → \(actions)")
    }
}

@Suite struct SMTPServerTransactionTests {
    @Test func pipelinedEnvelopeIsProcessedInOrder() {
        var server = makeServer()
        server.authenticate()
        var actions = server.feed("MAIL FROM:<alice@contoso.com> SIZE=10 AUTH=<>\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\n")
        // RFC 2920: MAIL and the RCPTs behind it go upstream at once; DATA waits for their verdicts.
        #expect(actions == [
            .forwardMail(account: "alice@contoso.com", from: .mailbox(SMTPMailbox(localPart: "alice", domain: "contoso.com")), parameters: [SMTPParameter("SIZE", "10")]),
            .forwardRcpt(to: .mailbox(SMTPMailbox(localPart: "b", domain: "x.example")), parameters: []),
            .forwardRcpt(to: .mailbox(SMTPMailbox(localPart: "c", domain: "x.example")), parameters: []),
        ])
        #expect(server.state == .awaitingUpstream(.mail))
        actions = server.handle(.upstreamReply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.0"), "Sender OK")))
        #expect(actions == [.reply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.0"), "Sender OK"))])
        #expect(server.state == .awaitingUpstream(.rcpt))
        actions = server.handle(.upstreamReply(SMTPReply(code: 550, enhanced: EnhancedStatus("5.1.10"), "Recipient not found")))
        #expect(actions == [.reply(SMTPReply(code: 550, enhanced: EnhancedStatus("5.1.10"), "Recipient not found"))])
        actions = server.handle(.upstreamReply(ok250))
        #expect(actions.replyLines == ["250 2.0.0 OK"])
        #expect(actions.nonReplies == [.beginData])
        #expect(server.acceptedRecipients.count == 1)
        actions = server.handle(.upstreamReply(SMTPReply(code: 354, "Start mail input; end with <CRLF>.<CRLF>")))
        #expect(actions.replyLines == ["354 Start mail input; end with <CRLF>.<CRLF>"])
        #expect(server.state == .data)
        actions = server.feed("Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        #expect(actions == [.messageBytes(Array("Subject: hi\r\n\r\n.dot\r\n".utf8)), .endOfMessage])
        #expect(server.state == .awaitingUpstream(.endOfMessage))
        let queued = SMTPReply(code: 250, enhanced: EnhancedStatus("2.0.0"), "OK <id@x.prod.outlook.com> [Hostname=X]")
        actions = server.handle(.upstreamReply(queued))
        #expect(actions == [.reply(queued), .reply(SMTPReply(code: 221, enhanced: EnhancedStatus("2.0.0"), "mailgate.test closing connection")), .close])
        #expect(server.state == .closed)
    }

    @Test("a RCPT that gets a local answer waits behind the pipelined ones, so every reply keeps its place")
    func localAnswerWaitsBehindPipelinedReplies() {
        var server = makeServer()
        server.authenticate()
        var actions = server.feed("MAIL FROM:<a@contoso.com>\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example> NOTIFY=NEVER\r\nRCPT TO:<d@x.example>\r\n")
        #expect(actions.nonReplies.count == 2)
        #expect(actions.replyLines.isEmpty)
        actions = server.handle(.upstreamReply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.0"), "Sender OK")))
        #expect(actions.replyLines == ["250 2.1.0 Sender OK"])
        actions = server.handle(.upstreamReply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.5"), "Recipient OK")))
        // Now the refused parameter is answered locally, and the RCPT after it is forwarded.
        #expect(actions.replyLines == ["250 2.1.5 Recipient OK", "555 5.5.4 Unsupported parameter NOTIFY"])
        #expect(actions.nonReplies == [.forwardRcpt(to: .mailbox(SMTPMailbox(localPart: "d", domain: "x.example")), parameters: [])])
        actions = server.handle(.upstreamReply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.1.5"), "Recipient OK")))
        #expect(server.acceptedRecipients.count == 2)
        #expect(server.state == .transaction)
    }

    @Test("MAIL refused upstream: the RCPTs pipelined behind it get their own replies and no transaction remains")
    func refusedMailWithPipelinedRecipients() {
        var server = makeServer()
        server.authenticate()
        _ = server.feed("MAIL FROM:<boss@contoso.com>\r\nRCPT TO:<b@x.example>\r\n")
        var actions = server.handle(.upstreamReply(SMTPReply(code: 554, enhanced: EnhancedStatus("5.2.252"), "SendAsDenied")))
        actions += server.handle(.upstreamReply(SMTPReply(code: 503, enhanced: EnhancedStatus("5.5.1"), "Need MAIL command")))
        #expect(actions.replyLines == ["554 5.2.252 SendAsDenied", "503 5.5.1 Need MAIL command"])
        #expect(server.state == .ready)
        #expect(server.acceptedRecipients.isEmpty)
    }

    @Test func dataArrivesInOneByteChunks() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        var message: [UInt8] = []
        var ended = false
        for byte in Array("a\r\n.b\r\n.\r\n".utf8) {
            for action in server.handle(.received([byte])) {
                if case .messageBytes(let bytes) = action { message += bytes }
                if action == .endOfMessage { ended = true }
            }
        }
        #expect(message == Array("a\r\nb\r\n".utf8))
        #expect(ended)
    }

    @Test func sendAsDeniedIsRelayedUnchanged() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        _ = server.feed("x\r\n.\r\n")
        let denied = SMTPReply(code: 554, enhanced: EnhancedStatus("5.2.252"), "SendAsDenied; alice@contoso.com not allowed to send as boss@contoso.com")
        #expect(server.handle(.upstreamReply(denied)) == [.reply(denied)])
        #expect(server.state == .ready)
        #expect(server.feed("MAIL FROM:<alice@contoso.com>\r\n").nonReplies.count == 1)
    }

    @Test func refusedMailLeavesNoTransaction() {
        var server = makeServer()
        server.authenticate()
        _ = server.feed("MAIL FROM:<x@y.example>\r\n")
        let refused = SMTPReply(code: 530, enhanced: EnhancedStatus("5.7.57"), "Client not authenticated to send mail.")
        #expect(server.handle(.upstreamReply(refused)) == [.reply(refused)])
        #expect(server.state == .ready)
        #expect(server.feed("RCPT TO:<a@b.example>\r\n").firstReplyCode == "503 5.5.1")
    }

    @Test func refusedDataStartKeepsTransaction() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 451, enhanced: EnhancedStatus("4.3.0"), "try later")))
        #expect(server.state == .transaction)
    }

    @Test func relayAllowedClientSendsWithoutAuth() {
        var server = makeServer {
            $0.relayAllowed = true
            $0.relayAccount = "scanner@contoso.com"
            $0.clientIsLoopback = false
        }
        _ = server.feed("EHLO scanner\r\n")
        #expect(server.feed("MAIL FROM:<scanner@contoso.com>\r\n") == [.forwardMail(account: "scanner@contoso.com", from: .mailbox(SMTPMailbox(localPart: "scanner", domain: "contoso.com")), parameters: [])])
    }

    @Test func relayAllowedWithoutAccountStillNeedsAuth() {
        var server = makeServer { $0.relayAllowed = true }
        _ = server.feed("EHLO scanner\r\n")
        #expect(server.feed("MAIL FROM:<s@contoso.com>\r\n").firstReplyCode == "530 5.7.0")
    }

    @Test func tooManyRecipients() {
        var server = makeServer { $0.maximumRecipients = 2 }
        server.inTransaction(recipients: 2)
        #expect(server.acceptedRecipients.count == 2)
        #expect(server.replies("RCPT TO:<z@x.example>\r\n") == ["452 4.5.3 Too many recipients"])
        #expect(server.errorCount == 0)
    }

    @Test func rsetAfterAcceptedMailResetsUpstream() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        #expect(server.feed("RSET\r\n") == [.resetUpstream, .reply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.0.0"), "Flushed"))])
        #expect(server.state == .ready)
        #expect(server.acceptedRecipients.isEmpty)
    }

    @Test func ehloInsideTransactionResetsIt() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        #expect(server.feed("EHLO again\r\n").nonReplies == [.resetUpstream])
        #expect(server.state == .ready)
    }

    @Test func messageTooLargeIsRefusedAfterTheTerminator() {
        var server = makeServer { $0.maximumMessageSize = 10 }
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        let actions = server.feed("0123456789abcdef\r\n.\r\nNOOP\r\n")
        #expect(actions.contains(.abortMessage))
        #expect(actions.replyLines == ["552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 OK"])
        #expect(!actions.contains(.endOfMessage))
    }

    @Test func longTextLineIsRefusedAfterTheTerminatorAndSessionStaysInStep() {
        var server = makeServer { $0.limits.smtpTextLine = 1_000 }
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        let actions = server.feed(String(repeating: "x", count: 1200) + "\r\n.\r\nNOOP\r\n")
        #expect(actions.contains(.abortMessage))
        #expect(actions.replyLines == ["500 5.5.2 Line too long: message lines may have at most 1000 octets", "250 2.0.0 OK"])
        #expect(server.state == .ready)
    }

    @Test func textLineOf64KiBIsPassedOnUnchangedByDefault() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        let line = String(repeating: "<td>0123456789</td>", count: 65_536 / 19 + 1)
        let actions = server.feed(line + "\r\n.\r\n")
        let message = actions.flatMap { action -> [UInt8] in if case .messageBytes(let b) = action { b } else { [] } }
        #expect(message == Array((line + "\r\n").utf8))
        #expect(actions.last == .endOfMessage)
        #expect(line.utf8.count > 65_536)
    }

    @Test func bareLFInDataIsRefusedWith550AfterTheEndOfData() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        let actions = server.feed("hello\n.\nMAIL FROM:<m@contoso.com>\n\r\n.\r\nNOOP\r\n")
        #expect(actions.first == .messageBytes(Array("hello".utf8)))
        #expect(actions.contains(.abortMessage))
        #expect(!actions.contains(.endOfMessage))
        #expect(
            actions.replyLines == [
                "550 5.5.2 Message refused: bare CR or LF in the text; lines must end with CRLF", "250 2.0.0 OK",
            ])
        #expect(server.state == .ready)
    }

    @Test func bareLFInDataIsRelayedAsCRLFWithNormalize() {
        var server = makeServer { $0.limits.smtpBareNewline = .normalize }
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        let actions = server.feed("hello\n.\nMAIL FROM:<m@contoso.com>\n\r\n.\r\n")
        let message = actions.flatMap { action -> [UInt8] in if case .messageBytes(let b) = action { b } else { [] } }
        #expect(message == Array("hello\r\n\r\nMAIL FROM:<m@contoso.com>\r\n\r\n".utf8))
        #expect(actions.last == .endOfMessage)
    }

    @Test func upstreamFailureDuringDataIsAnsweredAtTheEnd() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("DATA\r\n")
        _ = server.handle(.upstreamReply(SMTPReply(code: 354, "go")))
        _ = server.feed("part one\r\n")
        let lost = SMTPReply(code: 421, enhanced: EnhancedStatus("4.4.2"), "Upstream connection lost")
        #expect(server.handle(.upstreamReply(lost)).isEmpty)
        let actions = server.feed("part two\r\n.\r\n")
        #expect(actions == [.abortMessage, .reply(lost)])
    }
}

@Suite struct SMTPServerBDATTests {
    @Test func chunksAreStreamedAndLastWaitsForUpstream() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        var actions = server.feed("BDAT 5\r\nhel")
        #expect(actions == [.beginChunkedData, .messageBytes(Array("hel".utf8))])
        actions = server.feed("loBDAT 3 LAST\r\n!!!")
        #expect(actions == [.messageBytes(Array("lo".utf8)), .reply(SMTPReply(code: 250, enhanced: EnhancedStatus("2.0.0"), "5 octets received")), .messageBytes(Array("!!!".utf8)), .endOfMessage])
        let verdict = SMTPReply(code: 250, enhanced: EnhancedStatus("2.6.0"), "Queued")
        #expect(server.handle(.upstreamReply(verdict)) == [.reply(verdict)])
        #expect(server.state == .ready)
    }

    @Test func bdatWithoutChunkingIsRefusedAndItsBytesDiscarded() {
        var server = makeServer { $0.upstreamExtensions = SMTPExtensions() }
        server.inTransaction(recipients: 1)
        let actions = server.feed("BDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
        #expect(actions.replyLines == ["502 5.5.1 BDAT is not available", "250 2.0.0 OK"])
        #expect(server.state == .transaction)
    }

    @Test func dataAfterBdatIsRefused() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("BDAT 1\r\nx")
        #expect(server.feed("DATA\r\n").firstReplyCode == "503 5.5.1")
    }

    @Test func rsetAfterChunksAbortsMessage() {
        var server = makeServer()
        server.inTransaction(recipients: 1)
        _ = server.feed("BDAT 1\r\nx")
        #expect(server.feed("RSET\r\n").nonReplies == [.abortMessage])
    }

    @Test func binaryMIMERequiresBDAT() {
        var server = makeServer()
        server.authenticate()
        _ = server.feed("MAIL FROM:<a@contoso.com> BODY=BINARYMIME\r\n")
        _ = server.handle(.upstreamReply(ok250))
        _ = server.feed("RCPT TO:<b@contoso.com>\r\n")
        _ = server.handle(.upstreamReply(ok250))
        #expect(server.feed("DATA\r\n").firstReplyCode == "503 5.5.1")
    }
}

@Suite struct SMTPServerAuthTests {
    @Test func plainWithInitialResponse() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        let actions = server.feed("AUTH PLAIN \(b64("\0alice@contoso.com\0pw"))\r\n")
        #expect(actions == [.verifyCredentials(username: "alice@contoso.com", password: Redacted("pw"))])
        #expect(server.state == .verifyingCredentials)
        #expect(server.handle(.authResult(ok: true, account: "alice@contoso.com")).replyLines == ["235 2.7.0 Authentication successful"])
        #expect(server.authenticatedAccount == "alice@contoso.com")
    }

    @Test func plainWithEmptyChallenge() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        #expect(server.replies("AUTH PLAIN\r\n") == ["334 "])
        #expect(server.state == .authenticating)
        #expect(server.feed("\(b64("\0bob\0pw"))\r\n") == [.verifyCredentials(username: "bob", password: Redacted("pw"))])
    }

    @Test func login() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        #expect(server.replies("AUTH LOGIN\r\n") == ["334 VXNlcm5hbWU6"])
        #expect(server.replies("\(b64("carol"))\r\n") == ["334 UGFzc3dvcmQ6"])
        #expect(server.feed("\(b64("secret"))\r\n") == [.verifyCredentials(username: "carol", password: Redacted("secret"))])
    }

    @Test func cancelWithStar() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        _ = server.feed("AUTH LOGIN\r\n")
        #expect(server.replies("*\r\n") == ["501 5.0.0 Authentication cancelled"])
        #expect(server.state == .ready)
        #expect(server.replies("AUTH PLAIN\r\n") == ["334 "])
    }

    @Test func badBase64() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        _ = server.feed("AUTH PLAIN\r\n")
        #expect(server.replies("!!notbase64!!\r\n") == ["501 5.5.2 Cannot decode response"])
        #expect(server.state == .ready)
        #expect(server.errorCount == 1)
    }

    @Test func wrongPassword() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        _ = server.feed("AUTH PLAIN \(b64("\0a\0b"))\r\n")
        #expect(server.handle(.authResult(ok: false, account: "")).replyLines == ["535 5.7.8 Authentication credentials invalid"])
        #expect(server.authenticatedAccount == nil)
        #expect(server.state == .ready)
    }

    @Test func pipelinedMailWaitsForVerification() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        let actions = server.feed("AUTH PLAIN \(b64("\0a@contoso.com\0b"))\r\nMAIL FROM:<a@contoso.com>\r\n")
        #expect(actions.count == 1)
        let after = server.handle(.authResult(ok: true, account: "a@contoso.com"))
        #expect(after.replyLines == ["235 2.7.0 Authentication successful"])
        #expect(after.nonReplies.count == 1)
    }

    @Test func encryptionRequiredOnLANWithoutTLS() {
        var server = makeServer {
            $0.clientIsLoopback = false
            $0.tlsAvailable = true
        }
        _ = server.feed("EHLO c\r\n")
        #expect(server.replies("AUTH PLAIN\r\n") == ["538 5.7.11 Encryption required for requested authentication mechanism"])
    }

    @Test func overlongSASLResponseIsRefused() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        _ = server.feed("AUTH PLAIN\r\n")
        let actions = server.feed(String(repeating: "A", count: Limits.standard.saslResponse + 10) + "\r\nNOOP\r\n")
        #expect(actions.replyLines == ["500 5.5.2 Line too long", "250 2.0.0 OK"])
    }
}

@Suite struct SMTPServerTLSTests {
    @Test func startTLSDiscardsPipelinedInput() {
        var server = makeServer {
            $0.clientIsLoopback = false
            $0.tlsAvailable = true
        }
        _ = server.feed("EHLO c\r\n")
        let actions = server.feed("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
        #expect(actions == [.reply(SMTPReply(code: 220, enhanced: EnhancedStatus("2.0.0"), "Ready to start TLS")), .startTLS])
        #expect(server.state == .startingTLS)
        #expect(server.feed("RCPT TO:<injected@x.example>\r\n").isEmpty)
        #expect(server.handle(.tlsStarted).isEmpty)
        #expect(server.tlsActive)
        #expect(server.state == .greeting)
        #expect(server.heloName == nil)
        #expect(server.bufferedByteCount == 0)
        #expect(server.feed("MAIL FROM:<a@b.example>\r\n").firstReplyCode == "503 5.5.1")
        let lines = server.replies("EHLO c\r\n")
        #expect(!lines.contains { $0.contains("STARTTLS") })
        #expect(lines.contains { $0.hasSuffix("AUTH PLAIN LOGIN") })
    }

    @Test func startTLSTwiceIsRefused() {
        var server = makeServer { $0.tlsAvailable = true }
        _ = server.feed("EHLO c\r\n")
        _ = server.feed("STARTTLS\r\n")
        _ = server.handle(.tlsStarted)
        #expect(server.feed("STARTTLS\r\n").firstReplyCode == "503 5.5.1")
    }

    @Test func tlsStartForgetsAuthentication() {
        var server = makeServer { $0.tlsAvailable = true }
        server.authenticate()
        _ = server.feed("STARTTLS\r\n")
        _ = server.handle(.tlsStarted)
        #expect(server.authenticatedAccount == nil)
    }
}

@Suite struct SMTPServerHostileInputTests {
    @Test func errorBudgetDisconnects() {
        var server = makeServer()
        var lines: [String] = []
        var closed = false
        for _ in 0..<Limits.standard.errorBudget {
            let actions = server.feed("BOGUS\r\n")
            lines += actions.replyLines
            closed = closed || actions.contains(.close)
        }
        #expect(lines.filter { $0 == "500 5.5.2 Command unrecognized" }.count == Limits.standard.errorBudget - 1)
        #expect(lines.last == "421 4.7.0 Too many errors")
        #expect(closed)
        #expect(server.state == .closed)
        #expect(server.feed("NOOP\r\n").isEmpty)
    }

    @Test func longCommandLineIsRefusedAndNextCommandStillWorks() {
        var server = makeServer()
        let long = "NOOP " + String(repeating: "x", count: 10_240)
        #expect(server.replies(long + "\r\nNOOP\r\n") == ["500 5.5.2 Line too long", "250 2.0.0 OK"])
    }

    @Test func longLineAcrossChunksIsRefusedOnce() {
        var server = makeServer()
        var lines: [String] = []
        for _ in 0..<10 { lines += server.replies(String(repeating: "y", count: 1000)) }
        lines += server.replies("\r\nNOOP\r\n")
        #expect(lines == ["500 5.5.2 Line too long", "250 2.0.0 OK"])
    }

    @Test func nulBytesAreSyntaxErrors() {
        var server = makeServer()
        #expect(server.handle(.received(Array("NO\0OP\r\n".utf8))).firstReplyCode == "500 5.5.2")
    }

    @Test(arguments: [BareNewlinePolicy.reject, .normalize])
    func bareLFCommandsAreRefusedInEveryMode(policy: BareNewlinePolicy) {
        var server = makeServer { $0.limits.smtpBareNewline = policy }
        #expect(
            server.replies("NOOP\nNOOP\r\n") == [
                "500 5.5.2 Bare LF in command; SMTP commands must end with CRLF", "250 2.0.0 OK",
            ])
        #expect(server.errorCount == 1)
    }

    @Test func bareLFInAnAuthResponseCancelsTheExchange() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        #expect(server.replies("AUTH LOGIN\r\n").first?.hasPrefix("334") == true)
        #expect(server.replies("YWxpY2U=\n").first?.hasPrefix("500 5.5.2 Bare LF") == true)
        #expect(server.state == .ready)
    }

    @Test func bufferedInputWhileWaitingIsBounded() {
        var server = makeServer { $0.maximumBufferedInput = 100 }
        server.authenticate()
        _ = server.feed("MAIL FROM:<a@contoso.com>\r\n")
        let flood = String(repeating: "NOOP\r\n", count: 30)
        let actions = server.feed(flood)
        #expect(actions.replyLines == ["421 4.7.0 Too much pipelined input"])
        #expect(actions.contains(.close))
    }

    @Test func pausesReadingWhenBufferGrows() {
        var server = makeServer()
        server.authenticate()
        _ = server.feed("MAIL FROM:<a@contoso.com>\r\n")
        #expect(!server.shouldPauseReading)
        _ = server.feed(String(repeating: "NOOP\r\n", count: Limits.standard.readChunk / 6 + 1))
        #expect(server.shouldPauseReading)
    }

    @Test func unexpectedUpstreamReplyOutsideWaitIsIgnoredUnless421() {
        var server = makeServer()
        _ = server.feed("EHLO c\r\n")
        #expect(server.handle(.upstreamReply(ok250)).isEmpty)
        let closing = SMTPReply(code: 421, enhanced: EnhancedStatus("4.3.2"), "Service shutting down")
        #expect(server.handle(.upstreamReply(closing)) == [.reply(closing), .close])
    }

    @Test func stateNamesPrint() {
        #expect(SMTPServerSide.State.awaitingUpstream(.rcpt).description == "awaitingUpstream(rcpt)")
        #expect(SMTPServerSide.State.bdat(remaining: 3, last: true).description == "bdat(remaining: 3, last: true)")
    }
}
