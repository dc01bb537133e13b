import MailCore
import Testing
@testable import IMAP

/// Scripted conversations with the upstream state machine, responses given as server text.
@Suite struct UpstreamClientTests {
    static func response(_ text: String) throws -> IMAPResponse {
        try #require(try IMAPResponseParser().parseResponse(Array(text.utf8))).response
    }

    static func sent(_ actions: [IMAPUpstreamClient.Action]) -> String {
        actions.compactMap { action -> String? in
            if case .send(let bytes) = action { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }.joined()
    }

    static let greeting = "* OK The Microsoft Exchange IMAP4 service is ready.\r\n"
    static let capabilities = "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+\r\n"
    static let token = Redacted(Array("user=a@contoso.com\u{1}auth=Bearer t0k\u{1}\u{1}".utf8))

    /// A client that has been greeted and has seen `capabilityLine`.
    static func greeted(capabilityLine: String = capabilities) throws -> IMAPUpstreamClient {
        var client = IMAPUpstreamClient()
        #expect(client.receive(try response(greeting)) == [.greeting(ResponseText(text: "The Microsoft Exchange IMAP4 service is ready."), preauthenticated: false)])
        let (tag, actions) = try client.send(.capability)
        #expect(tag == "A0001")
        #expect(sent(actions) == "A0001 CAPABILITY\r\n")
        #expect(client.receive(try response(capabilityLine)) == [])
        let done = client.receive(try response("A0001 OK CAPABILITY completed.\r\n"))
        guard case .completed("A0001", let tagged, let untagged)? = done.first else {
            Issue.record("no completion: \(done)")
            return client
        }
        #expect(tagged.status == .ok)
        #expect(untagged.count == 1)
        #expect(client.state == .notAuthenticated)
        return client
    }

    static func authenticated(capabilityLine: String = capabilities) throws -> IMAPUpstreamClient {
        var client = try greeted(capabilityLine: capabilityLine)
        let (tag, _) = try client.authenticate(mechanism: "XOAUTH2", response: token)
        _ = client.receive(try response("\(tag) OK AUTHENTICATE completed.\r\n"))
        #expect(client.state == .authenticated)
        return client
    }

    @Test func authenticateXOAUTH2WithSASLIR() throws {
        var client = try Self.greeted()
        #expect(client.capabilities.contains(.saslIR))
        let (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        #expect(tag == "A0002")
        #expect(Self.sent(actions) == "A0002 AUTHENTICATE XOAUTH2 dXNlcj1hQGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIHQwawEB\r\n")
        #expect(client.state == .authenticating)
        let done = client.receive(try Self.response("A0002 OK AUTHENTICATE completed.\r\n"))
        #expect(done == [.completed(tag: "A0002", response: TaggedResponse(tag: "A0002", status: .ok, text: "AUTHENTICATE completed."), untagged: [])])
        #expect(client.state == .authenticated)
    }

    @Test func authenticateErrorChallengeGetsAnEmptyLineThenNO() throws {
        var client = try Self.greeted()
        let (tag, _) = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        let challenge = client.receive(try Self.response("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"))
        #expect(challenge == [.authenticationErrorDetails("{\"status\":\"401\"}"), .send(Array("\r\n".utf8))])
        let done = client.receive(try Self.response("\(tag) NO AUTHENTICATE failed.\r\n"))
        #expect(done == [.completed(tag: tag, response: TaggedResponse(tag: tag, status: .no, text: "AUTHENTICATE failed."), untagged: [])])
        #expect(client.state == .notAuthenticated)
    }

    @Test func authenticateThroughSendTreatsAChallengeAsAnError() throws {
        var client = try Self.greeted()
        let (tag, actions) = try client.send(.authenticate(mechanism: "XOAUTH2", initialResponse: Self.token))
        #expect(Self.sent(actions).hasPrefix("\(tag) AUTHENTICATE XOAUTH2 dXNl"))
        #expect(client.receive(try Self.response("+ e30=\r\n")) == [.authenticationErrorDetails("{}"), .send(Array("\r\n".utf8))])
    }

    @Test func authenticateWithoutSASLIRWaitsForTheFirstChallenge() throws {
        var client = try Self.greeted(capabilityLine: "* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n")
        let (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        #expect(Self.sent(actions) == "\(tag) AUTHENTICATE XOAUTH2\r\n")
        #expect(Self.sent(client.receive(try Self.response("+ \r\n"))) == "dXNlcj1hQGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIHQwawEB\r\n")
        _ = client.receive(try Self.response("\(tag) OK done\r\n"))
        #expect(client.state == .authenticated)
    }

    @Test func selectSearchAppendWithSynchronizingLiteral() throws {
        var client = try Self.authenticated(capabilityLine: "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 UIDPLUS\r\n")
        let sentItems = MailboxName(Array("Sent Items".utf8))

        let (select, selectActions) = try client.send(.select(sentItems))
        #expect(Self.sent(selectActions) == "\(select) SELECT \"Sent Items\"\r\n")
        for line in ["* 3 EXISTS\r\n", "* 0 RECENT\r\n", "* OK [UIDVALIDITY 14] UIDVALIDITY value\r\n"] {
            #expect(client.receive(try Self.response(line)) == [])
        }
        let selected = client.receive(try Self.response("\(select) OK [READ-WRITE] SELECT completed.\r\n"))
        guard case .completed(_, _, let untagged)? = selected.first else { Issue.record("\(selected)"); return }
        #expect(untagged == [.exists(3), .recent(0), .ok(ResponseText(code: .uidValidity(14), text: "UIDVALIDITY value"))])
        #expect(client.state == .selected(sentItems))

        let (search, searchActions) = try client.send(.uidSearchHeader(field: "Message-ID", value: "<a@b>"))
        #expect(Self.sent(searchActions) == "\(search) UID SEARCH HEADER Message-ID \"<a@b>\"\r\n")
        _ = client.receive(try Self.response("* SEARCH 4212\r\n"))
        let found = client.receive(try Self.response("\(search) OK SEARCH completed.\r\n"))
        guard case .completed(_, _, let searchData)? = found.first else { Issue.record("\(found)"); return }
        #expect(searchData == [.search([4212])])

        let message = Array("Message-ID: <a@b>\r\n\r\nhi\r\n".utf8)
        let (append, appendActions) = try client.send(.append(mailbox: sentItems, flags: [.seen], internalDate: nil, message: message))
        #expect(appendActions == [.send(Array("\(append) APPEND \"Sent Items\" (\\Seen) {25}\r\n".utf8)), .waitForContinuation])
        #expect(client.receive(try Self.response("+ Ready for additional command text.\r\n")) == [.send(message + [13, 10])])
        let appended = client.receive(try Self.response("\(append) OK [APPENDUID 14 4213] APPEND completed.\r\n"))
        guard case .completed(_, let tagged, _)? = appended.first else { Issue.record("\(appended)"); return }
        #expect(tagged.code == .appendUID(uidValidity: 14, uid: 4213))
    }

    @Test func appendWithLiteralPlusDoesNotWait() throws {
        var client = try Self.authenticated()
        let message = Array("x\r\n".utf8)
        let (tag, actions) = try client.send(.append(mailbox: MailboxName(Array("Sent Items".utf8)), flags: [.seen], internalDate: nil, message: message))
        #expect(actions == [.send(Array("\(tag) APPEND \"Sent Items\" (\\Seen) {3+}\r\nx\r\n\r\n".utf8))])
        #expect(!actions.contains(.waitForContinuation))
        let done = client.receive(try Self.response("\(tag) OK [APPENDUID 14 9] APPEND completed.\r\n"))
        #expect(done.count == 1)
    }

    @Test func appendRefusedBeforeTheLiteralSendsNoPayload() throws {
        var client = try Self.authenticated(capabilityLine: "* CAPABILITY IMAP4rev1 SASL-IR\r\n")
        let (tag, _) = try client.send(.append(mailbox: MailboxName(Array("Nope".utf8)), flags: [], internalDate: nil, message: Array("x".utf8)))
        let done = client.receive(try Self.response("\(tag) NO [TRYCREATE] Mailbox doesn't exist\r\n"))
        #expect(Self.sent(done).isEmpty)
        #expect(client.tagInFlight == nil)
        #expect(client.receive(try Self.response("+ go\r\n")) == [.protocolViolation("the server sent a continuation request while no command was running")])
    }

    @Test func loginLiteralsWaitForEachContinuation() throws {
        var client = try Self.greeted(capabilityLine: "* CAPABILITY IMAP4rev1\r\n")
        let (tag, first) = try client.send(.login(username: "u", password: Redacted("p w")))
        #expect(first == [.send(Array("\(tag) LOGIN {1}\r\n".utf8)), .waitForContinuation])
        #expect(client.receive(try Self.response("+ Ready\r\n")) == [.send(Array("u {3}\r\n".utf8)), .waitForContinuation])
        #expect(client.receive(try Self.response("+\r\n")) == [.send(Array("p w\r\n".utf8))])
        _ = client.receive(try Self.response("\(tag) OK LOGIN completed.\r\n"))
        #expect(client.state == .authenticated)
    }

    @Test func logoutEndsTheSession() throws {
        var client = try Self.authenticated()
        let (tag, actions) = try client.send(.logout)
        #expect(Self.sent(actions) == "\(tag) LOGOUT\r\n")
        #expect(client.receive(try Self.response("* BYE Microsoft Exchange Server IMAP4 server signing off.\r\n")) == [])
        let done = client.receive(try Self.response("\(tag) OK LOGOUT completed.\r\n"))
        #expect(done.last == .sessionEnded(.loggedOut))
        #expect(client.state == .closed)
        #expect(throws: IMAPError.self) { try client.send(.noop) }
    }

    @Test func accessTokenExpiredByeIsADistinctReason() throws {
        var client = try Self.authenticated()
        _ = try client.send(.list(reference: MailboxName([]), pattern: Array("*".utf8)))
        let ended = client.receive(try Self.response("* BYE Session invalidated - AccessTokenExpired\r\n"))
        #expect(ended == [.sessionEnded(.accessTokenExpired("Session invalidated - AccessTokenExpired"))])
        #expect(client.state == .closed)
    }

    @Test func otherByeIsServerClosed() throws {
        var client = try Self.authenticated()
        #expect(client.receive(try Self.response("* BYE Autologout; idle for too long\r\n")) == [.sessionEnded(.serverClosed("Autologout; idle for too long"))])
    }

    @Test func authenticatedButNotConnectedIsVisible() throws {
        var client = try Self.authenticated()
        let (tag, _) = try client.send(.list(reference: MailboxName([]), pattern: Array("*".utf8)))
        let done = client.receive(try Self.response("\(tag) BAD User is authenticated but not connected.\r\n"))
        guard case .completed(_, let tagged, _)? = done.first else { Issue.record("\(done)"); return }
        #expect(tagged.responseText.exchangeCondition == .authenticatedButNotConnected)
    }

    @Test func idleRunsUntilDone() throws {
        var client = try Self.authenticated()
        _ = try client.send(.select(.inbox))
        _ = client.receive(try Self.response("A0003 OK [READ-WRITE] SELECT completed.\r\n"))
        let (tag, _) = try client.send(.idle)
        #expect(client.receive(try Self.response("+ IDLE accepted, awaiting DONE command.\r\n")) == [.idleStarted])
        #expect(client.receive(try Self.response("* 4 EXISTS\r\n")) == [.unsolicited(.exists(4))])
        #expect(try client.finishIdle() == [.send(Array("DONE\r\n".utf8))])
        _ = client.receive(try Self.response("\(tag) OK IDLE completed.\r\n"))
        #expect(client.state == .selected(.inbox))
    }

    @Test func protocolViolations() throws {
        var client = IMAPUpstreamClient()
        #expect(client.receive(try Self.response("* 3 EXISTS\r\n")) == [.protocolViolation("the server sent EXISTS instead of a greeting")])
        var other = try Self.greeted()
        #expect(other.receive(try Self.response("A0099 OK what\r\n")).first == .protocolViolation("the server completed tag A0099, which is not in flight"))
    }

    @Test func commandsOutOfStateAreRefused() throws {
        var client = IMAPUpstreamClient()
        #expect(throws: IMAPError.self) { try client.send(.capability) }  // no greeting yet
        var greeted = try Self.greeted()
        #expect(throws: IMAPError.self) { try greeted.send(.select(.inbox)) }  // not authenticated
        _ = try greeted.send(.noop)
        #expect(throws: IMAPError.self) { try greeted.send(.noop) }  // one at a time
    }

    @Test func tagsCountUp() throws {
        var client = try Self.greeted()
        let (second, _) = try client.send(.noop)
        _ = client.receive(try Self.response("\(second) OK NOOP completed.\r\n"))
        let (third, _) = try client.send(.noop)
        #expect([second, third] == ["A0002", "A0003"])
    }

    @Test func capabilityCodeInGreetingIsRemembered() throws {
        var client = IMAPUpstreamClient()
        _ = client.receive(try Self.response("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] ready\r\n"))
        #expect(client.capabilities == [.imap4rev1, .literalPlus, .saslIR])
        var preauth = IMAPUpstreamClient()
        #expect(preauth.receive(try Self.response("* PREAUTH hi\r\n")) == [.greeting(ResponseText(text: "hi"), preauthenticated: true)])
        #expect(preauth.state == .authenticated)
    }

    @Test func connectionLossEndsTheSession() throws {
        var client = try Self.authenticated()
        #expect(client.connectionClosed() == [.sessionEnded(.connectionClosed)])
        #expect(client.connectionClosed() == [])
    }
}
