// SMTPTests: the Microsoft 365-facing state machine against a scripted Exchange Online conversation.
import MailCore
import Testing

@testable import SMTP

private func reply(_ text: String) -> SMTPReply {
    var parser = SMTPReplyParser()
    for line in text.split(separator: "\r\n") {
        if let reply = try! parser.feed(line: Array(line.utf8)) { return reply }
    }
    fatalError("incomplete reply in test script: \(text)")
}

private func sent(_ text: String) -> SMTPUpstreamSide.Action { .send(Array(text.utf8)) }

private let greeting = reply("220 BL0PR02CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at Tue, 1 Sep 2026 10:00:00 +0000")
private let ehloBeforeTLS = reply(
    "250-BL0PR02CA0001.outlook.office365.com Hello [203.0.113.7]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8")
private let ehloAfterTLS = reply(
    "250-BL0PR02CA0001.outlook.office365.com Hello [203.0.113.7]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8")
private let token = Redacted("dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==")

private func upstream(_ security: SMTPUpstreamSide.Security = .starttls) -> SMTPUpstreamSide {
    try! SMTPUpstreamSide(configuration: .init(ehloHostname: "mailgate.test", security: security))
}

/// Runs the whole opening up to `.needToken`.
private func openToToken(_ side: inout SMTPUpstreamSide) {
    _ = side.handle(.reply(greeting))
    _ = side.handle(.reply(ehloBeforeTLS))
    _ = side.handle(.reply(reply("220 2.0.0 SMTP server ready")))
    _ = side.handle(.tlsEstablished)
    _ = side.handle(.reply(ehloAfterTLS))
}

/// An upstream with PIPELINING but without CHUNKING (an older server): messages go as DATA.
private func dataOnlyUpstream() -> SMTPUpstreamSide {
    var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "mailgate.test", security: .tls, authenticate: false))
    _ = side.handle(.reply(greeting))
    _ = side.handle(.reply(reply("250-old.example\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250 8BITMIME")))
    return side
}

private func openToReady(_ side: inout SMTPUpstreamSide) {
    openToToken(&side)
    _ = side.handle(.token(token))
    _ = side.handle(.reply(reply("334 ")))
    _ = side.handle(.reply(reply("235 2.7.0 Authentication successful")))
}

@Suite struct SMTPUpstreamOpeningTests {
    @Test func exchangeConversationUpToReady() {
        var side = upstream()
        #expect(side.state == .connecting)
        #expect(side.handle(.reply(greeting)) == [sent("EHLO mailgate.test\r\n")])
        #expect(side.handle(.reply(ehloBeforeTLS)) == [sent("STARTTLS\r\n")])
        #expect(side.handle(.reply(reply("220 2.0.0 SMTP server ready"))) == [.startTLS])
        #expect(side.state == .tlsHandshake)
        #expect(side.handle(.tlsEstablished) == [sent("EHLO mailgate.test\r\n")])
        #expect(side.tlsActive)
        #expect(side.handle(.reply(ehloAfterTLS)) == [.needToken])
        #expect(side.handle(.token(token)) == [sent("AUTH XOAUTH2\r\n")])
        #expect(side.handle(.reply(reply("334 "))) == [.sendSecret(Redacted(Array(token.revealed.utf8) + [13, 10]))])
        let actions = side.handle(.reply(reply("235 2.7.0 Authentication successful")))
        #expect(actions == [.ready(SMTPExtensions(ehloReply: ehloAfterTLS))])
        #expect(side.state == .ready)
        #expect(side.extensions.authMechanisms == ["LOGIN", "XOAUTH2"])
    }

    @Test func tokenNeverPrintsInActions() {
        var side = upstream()
        openToToken(&side)
        _ = side.handle(.token(token))
        let actions = side.handle(.reply(reply("334 ")))
        #expect(!"\(actions)".contains("dXNlcj10"))
    }

    @Test func tenantWithSMTPAuthDisabled() {
        var side = upstream()
        openToToken(&side)
        _ = side.handle(.token(token))
        _ = side.handle(.reply(reply("334 ")))
        let failure = reply("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [BL0PR02CA0001.namprd02.prod.outlook.com]")
        #expect(side.handle(.reply(failure)) == [.authenticationFailed(failure)])
        #expect(side.state == .authenticationFailed)
        #expect(side.handle(.quit) == [sent("QUIT\r\n")])
        #expect(side.handle(.reply(reply("221 2.0.0 Service closing transmission channel"))) == [.close])
    }

    @Test func errorChallengeIsAcknowledgedWithEmptyLine() {
        var side = upstream()
        openToToken(&side)
        _ = side.handle(.token(token))
        _ = side.handle(.reply(reply("334 ")))
        #expect(side.handle(.reply(reply("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0="))) == [sent("\r\n")])
        let failure = reply("535 5.7.3 Authentication unsuccessful [BL0PR02CA0001.namprd02.prod.outlook.com]")
        #expect(side.handle(.reply(failure)) == [.authenticationFailed(failure)])
    }

    @Test func authCommandRefused() {
        var side = upstream()
        openToToken(&side)
        _ = side.handle(.token(token))
        let refusal = reply("504 5.7.4 Unrecognized authentication type")
        #expect(side.handle(.reply(refusal)) == [.authenticationFailed(refusal)])
    }

    @Test func missingSTARTTLSIsRefused() {
        var side = upstream()
        _ = side.handle(.reply(greeting))
        let plainEHLO = reply("250-mx.example\r\n250-PIPELINING\r\n250 AUTH XOAUTH2")
        #expect(side.handle(.reply(plainEHLO)) == [.failed(.startTLSNotOffered)])
        #expect(side.state == .closed)
        #expect(SMTPUpstreamError.startTLSNotOffered.kind == .remoteConfiguration)
    }

    @Test func missingXOAUTH2IsRefused() {
        var side = upstream(.tls)
        _ = side.handle(.reply(greeting))
        #expect(side.handle(.reply(ehloBeforeTLS)) == [.failed(.xoauth2NotOffered)])
    }

    @Test func implicitTLSSkipsSTARTTLS() {
        var side = upstream(.tls)
        #expect(side.tlsActive)
        _ = side.handle(.reply(greeting))
        #expect(side.handle(.reply(ehloAfterTLS)) == [.needToken])
    }

    @Test func plaintextNeedsExplicitPermission() {
        #expect(throws: SMTPUpstreamError.insecureNotAllowed) {
            _ = try SMTPUpstreamSide(configuration: .init(ehloHostname: "h", security: .none))
        }
        var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "h", security: .none, allowInsecure: true, authenticate: false))
        _ = side.handle(.reply(greeting))
        #expect(side.handle(.reply(ehloBeforeTLS)) == [.ready(SMTPExtensions(ehloReply: ehloBeforeTLS))])
    }

    @Test func greetingRefused() {
        var side = upstream()
        let busy = reply("421 4.3.2 Service not available")
        #expect(side.handle(.reply(busy)) == [.failed(.greetingRejected(busy))])
    }

    @Test func replyBetweenSTARTTLSAndHandshakeIsInjection() {
        var side = upstream()
        _ = side.handle(.reply(greeting))
        _ = side.handle(.reply(ehloBeforeTLS))
        _ = side.handle(.reply(reply("220 2.0.0 SMTP server ready")))
        let injected = reply("250 2.0.0 injected")
        #expect(side.handle(.reply(injected)) == [.failed(.unexpectedReply(injected, state: "tlsHandshake"))])
    }

    @Test func tokenOutOfTurnIsABug() {
        var side = upstream()
        #expect(side.handle(.token(token)) == [.failed(.unexpectedInput("token", state: "connecting"))])
    }
}

@Suite struct SMTPUpstreamTransactionTests {
    @Test func envelopeAndDataStreamWithStuffing() {
        var side = dataOnlyUpstream()
        let from = SMTPReversePath.mailbox(SMTPMailbox(localPart: "alice", domain: "contoso.com"))
        #expect(side.handle(.mail(from: from, parameters: [SMTPParameter("SIZE", "42"), SMTPParameter("BODY", "8BITMIME")])) == [sent("MAIL FROM:<alice@contoso.com> SIZE=42 BODY=8BITMIME\r\n")])
        let senderOK = reply("250 2.1.0 Sender OK")
        #expect(side.handle(.reply(senderOK)) == [.replyForClient(senderOK)])
        #expect(side.handle(.rcpt(to: .mailbox(SMTPMailbox(localPart: "bob", domain: "fabrikam.com")), parameters: [SMTPParameter("NOTIFY", "NEVER")])) == [sent("RCPT TO:<bob@fabrikam.com> NOTIFY=NEVER\r\n")])
        let recipientOK = reply("250 2.1.5 Recipient OK")
        #expect(side.handle(.reply(recipientOK)) == [.replyForClient(recipientOK)])
        #expect(side.handle(.data) == [sent("DATA\r\n")])
        let go = reply("354 Start mail input; end with <CRLF>.<CRLF>")
        #expect(side.handle(.reply(go)) == [.replyForClient(go)])
        #expect(side.handle(.messageChunk(Array("Subject: x\r\n\r\n.hidden\r".utf8))) == [sent("Subject: x\r\n\r\n..hidden\r")])
        #expect(side.handle(.messageChunk(Array("\n.".utf8))) == [sent("\n..")])
        #expect(side.handle(.endOfMessage) == [sent("\r\n.\r\n")])
        let queued = reply("250 2.0.0 OK <AM0PR01MB0001@AM0PR01MB0001.eurprd01.prod.exchangelabs.com> [Hostname=AM0PR01MB0001.eurprd01.prod.exchangelabs.com]")
        #expect(side.handle(.reply(queued)) == [.replyForClient(queued)])
        #expect(side.state == .ready)
    }

    @Test func sendAsDeniedIsPassedThroughUnchanged() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 2.1.0 Sender OK")))
        _ = side.handle(.rcpt(to: .postmaster, parameters: []))
        _ = side.handle(.reply(reply("250 2.1.5 Recipient OK")))
        _ = side.handle(.data)
        _ = side.handle(.messageChunk(Array("x\r\n".utf8)))
        _ = side.handle(.endOfMessage)
        #expect(side.handle(.reply(reply("250 2.0.0 3 octets received"))).isEmpty)
        let text = "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as boss@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
        let denied = reply(text)
        let actions = side.handle(.reply(denied))
        #expect(actions == [.replyForClient(denied)])
        #expect(denied.encode() == Array((text + "\r\n").utf8))
    }

    @Test func parametersTheUpstreamLacksAreStripped() {
        var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "h", security: .tls, authenticate: false))
        _ = side.handle(.reply(greeting))
        _ = side.handle(.reply(reply("250-old.example\r\n250 PIPELINING")))
        let parameters = [
            SMTPParameter("SIZE", "1"), SMTPParameter("BODY", "8BITMIME"), SMTPParameter("SMTPUTF8"), SMTPParameter("AUTH", "<>"),
            SMTPParameter("RET", "FULL"),
        ]
        #expect(side.handle(.mail(from: .null, parameters: parameters)) == [sent("MAIL FROM:<>\r\n")])
        _ = side.handle(.reply(reply("250 ok")))
        #expect(side.handle(.rcpt(to: .postmaster, parameters: [SMTPParameter("NOTIFY", "NEVER")])) == [sent("RCPT TO:<Postmaster>\r\n")])
    }

    @Test func chunkedMessageUsesBDATWhenOffered() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 2.1.0 Sender OK")))
        #expect(side.handle(.chunkedData).isEmpty)
        #expect(side.handle(.messageChunk(Array(".abc".utf8))) == [sent("BDAT 4\r\n.abc")])
        #expect(side.handle(.messageChunk([])).isEmpty)
        #expect(side.handle(.endOfMessage) == [sent("BDAT 0 LAST\r\n")])
        #expect(side.handle(.reply(reply("250 2.0.0 4 octets received"))).isEmpty)
        let final = reply("250 2.0.0 OK queued")
        #expect(side.handle(.reply(final)) == [.replyForClient(final)])
        #expect(side.state == .ready)
    }

    @Test func chunkFailureIsReportedAtTheEnd() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        _ = side.handle(.chunkedData)
        _ = side.handle(.messageChunk([65]))
        _ = side.handle(.endOfMessage)
        let failure = reply("552 5.3.4 Message size exceeds fixed limit")
        #expect(side.handle(.reply(failure)).isEmpty)
        #expect(side.handle(.reply(reply("503 5.5.1 Bad sequence"))) == [.replyForClient(failure)])
    }

    @Test func chunkedMessageFallsBackToDATAWithoutChunking() {
        var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "h", security: .tls, authenticate: false))
        _ = side.handle(.reply(greeting))
        _ = side.handle(.reply(reply("250-old.example\r\n250 8BITMIME")))
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        #expect(side.handle(.chunkedData) == [sent("DATA\r\n")])
        #expect(side.handle(.messageChunk(Array(".x\r\n".utf8))).isEmpty)
        #expect(side.handle(.endOfMessage).isEmpty)
        #expect(side.handle(.reply(reply("354 go"))) == [sent("..x\r\n"), sent(".\r\n")])
        let final = reply("250 2.0.0 queued")
        #expect(side.handle(.reply(final)) == [.replyForClient(final)])
    }

    @Test func abortUnderBDATResetsAndSwallowsReplies() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        _ = side.handle(.chunkedData)
        _ = side.handle(.messageChunk([65]))
        #expect(side.handle(.abortMessage) == [sent("RSET\r\n")])
        #expect(side.handle(.reply(reply("250 2.0.0 1 octets received"))).isEmpty)
        #expect(side.handle(.reply(reply("250 2.0.0 Resetting"))).isEmpty)
        #expect(side.state == .ready)
    }

    @Test func abortUnderDATAFailsTheConnection() {
        var side = dataOnlyUpstream()
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        _ = side.handle(.data)
        _ = side.handle(.reply(reply("354 go")))
        #expect(side.handle(.abortMessage) == [.failed(.messageAbandoned)])
    }

    @Test("a client's DATA goes upstream as BDAT under CHUNKING: local 354, exact sizes, no dot-stuffing, LAST")
    func dataGoesAsBDATWhenChunkingIsOffered() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 2.1.0 Sender OK")))
        _ = side.handle(.rcpt(to: .postmaster, parameters: []))
        _ = side.handle(.reply(reply("250 2.1.5 Recipient OK")))
        // No DATA upstream, no round trip: the client's 354 is made at once.
        #expect(side.handle(.data) == [.replyForClient(SMTPUpstreamSide.localStartMailInput)])
        #expect(side.state == .sendingChunks)
        // What would end a DATA message (and start a smuggled one) is just content inside a sized chunk.
        let first = Array("Subject: x\r\n\r\n.hidden\r\n.\r\nMAIL FROM:<evil@x>\r\n".utf8)
        #expect(side.handle(.messageChunk(first)) == [.send(Array("BDAT \(first.count)\r\n".utf8) + first)])
        let second = Array("\n.\n\r.\r\nend\r\n".utf8)
        #expect(side.handle(.messageChunk(second)) == [.send(Array("BDAT \(second.count)\r\n".utf8) + second)])
        #expect(side.handle(.messageChunk([])).isEmpty)
        #expect(side.handle(.endOfMessage) == [sent("BDAT 0 LAST\r\n")])
        #expect(side.outstandingReplies == 3)
        #expect(side.handle(.reply(reply("250 2.0.0 \(first.count) octets received"))).isEmpty)
        #expect(side.handle(.reply(reply("250 2.0.0 \(second.count) octets received"))).isEmpty)
        let queued = reply("250 2.6.0 <id@x.prod.outlook.com> [InternalId=1] Queued mail for delivery")
        #expect(side.handle(.reply(queued)) == [.replyForClient(queued)])
        #expect(side.state == .ready)
        #expect(side.outstandingReplies == 0)
    }

    @Test("a refused chunk of a client's DATA becomes the verdict; the next message starts clean")
    func refusedChunkOfDataMessageIsTheVerdict() {
        var side = upstream()
        openToReady(&side)
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        _ = side.handle(.data)
        _ = side.handle(.messageChunk([65, 13, 10]))
        _ = side.handle(.endOfMessage)
        let tooBig = reply("552 5.3.4 Message size exceeds fixed maximum message size")
        #expect(side.handle(.reply(tooBig)).isEmpty)
        #expect(side.handle(.reply(reply("503 5.5.1 Bad sequence"))) == [.replyForClient(tooBig)])
        _ = side.handle(.mail(from: .null, parameters: []))
        _ = side.handle(.reply(reply("250 ok")))
        _ = side.handle(.data)
        _ = side.handle(.endOfMessage)
        let ok = reply("250 2.6.0 queued")
        #expect(side.handle(.reply(ok)) == [.replyForClient(ok)])
    }

    @Test("pipelined envelope: MAIL and every RCPT go at once; mixed verdicts come back one per command, in order")
    func pipelinedEnvelopeWithMixedVerdicts() {
        var side = upstream()
        openToReady(&side)
        let rcpts = ["b@fabrikam.com", "nobody@fabrikam.com", "c@fabrikam.com"].map {
            SMTPForwardPath.mailbox(SMTPMailbox(localPart: String($0.prefix { $0 != "@" }), domain: "fabrikam.com"))
        }
        var actions = side.handle(.mail(from: .null, parameters: []))
        for rcpt in rcpts { actions += side.handle(.rcpt(to: rcpt, parameters: [])) }
        #expect(actions == [
            sent("MAIL FROM:<>\r\n"), sent("RCPT TO:<b@fabrikam.com>\r\n"), sent("RCPT TO:<nobody@fabrikam.com>\r\n"),
            sent("RCPT TO:<c@fabrikam.com>\r\n"),
        ])
        #expect(side.outstandingReplies == 4)
        // DATA waits for the verdicts (the client's DATA needs them anyway): queued, not sent.
        #expect(side.handle(.data).isEmpty)
        let verdicts = [
            reply("250 2.1.0 Sender OK"), reply("250 2.1.5 Recipient OK"),
            reply("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
            reply("250 2.1.5 Recipient OK"),
        ]
        var relayed: [SMTPUpstreamSide.Action] = []
        for verdict in verdicts { relayed += side.handle(.reply(verdict)) }
        #expect(relayed == verdicts.map { .replyForClient($0) } + [.replyForClient(SMTPUpstreamSide.localStartMailInput)])
        #expect(side.state == .sendingChunks)
    }

    @Test("without PIPELINING upstream every envelope command waits for the reply before it")
    func withoutPipeliningCommandsWait() {
        var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "h", security: .tls, authenticate: false))
        _ = side.handle(.reply(greeting))
        _ = side.handle(.reply(reply("250-old.example\r\n250-CHUNKING\r\n250 8BITMIME")))
        #expect(side.handle(.mail(from: .null, parameters: [])) == [sent("MAIL FROM:<>\r\n")])
        #expect(side.handle(.rcpt(to: .postmaster, parameters: [])).isEmpty)
        #expect(side.handle(.reply(reply("250 ok"))) == [.replyForClient(reply("250 ok")), sent("RCPT TO:<Postmaster>\r\n")])
        _ = side.handle(.reply(reply("250 ok")))
        // CHUNKING without PIPELINING: chunks could not stream, so the message goes as DATA.
        #expect(side.handle(.data) == [sent("DATA\r\n")])
    }

    @Test func commandsBeforeReadyAreQueued() {
        var side = upstream()
        #expect(side.handle(.mail(from: .null, parameters: [])).isEmpty)
        openToToken(&side)
        _ = side.handle(.token(token))
        _ = side.handle(.reply(reply("334 ")))
        let actions = side.handle(.reply(reply("235 2.7.0 Authentication successful")))
        #expect(actions.count == 2)
        #expect(actions.last == sent("MAIL FROM:<>\r\n"))
    }

    @Test func queueIsBounded() {
        var side = try! SMTPUpstreamSide(configuration: .init(ehloHostname: "h", maximumQueuedCommands: 2))
        _ = side.handle(.reset)
        _ = side.handle(.reset)
        #expect(side.handle(.reset) == [.failed(.tooManyQueuedCommands(maximumCount: 2))])
    }

    @Test func unsolicited421Fails() {
        var side = upstream()
        openToReady(&side)
        let closing = reply("421 4.4.2 Connection dropped due to timeout")
        #expect(side.handle(.reply(closing)) == [.failed(.serviceClosing(closing))])
    }

    @Test func resetIsNotForTheClient() {
        var side = upstream()
        openToReady(&side)
        #expect(side.handle(.reset) == [sent("RSET\r\n")])
        #expect(side.handle(.reply(reply("250 2.0.0 Resetting"))).isEmpty)
        #expect(side.state == .ready)
    }

    @Test func errorDescriptionsAreSentencesWithoutControlBytes() {
        let errors: [SMTPUpstreamError] = [
            .insecureNotAllowed, .startTLSNotOffered, .xoauth2NotOffered, .greetingRejected(reply("421 x\u{1B}")),
            .messageAbandoned, .messageBufferOverflow(maximumCount: 1), .tooManyQueuedCommands(maximumCount: 1),
        ]
        for error in errors {
            #expect(error.description.hasSuffix("."))
            #expect(!error.description.contains("\u{1B}"))
        }
    }
}
