import MailCore
import Testing

@testable import IMAP

/// Runs an `IMAPServerSide` and renders what it sends as text, the other actions as markers.
struct ServerHarness {
    var machine: IMAPServerSide

    init(_ configuration: IMAPServerSide.Configuration = .init()) {
        machine = IMAPServerSide(configuration: configuration)
    }

    static func render(_ actions: [IMAPServerSide.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .send(let bytes): String(decoding: bytes, as: UTF8.self)
            case .startTLS: "<startTLS>"
            case .verify(let username, let password, let mechanism):
                "<verify \(username) \(password.revealed) \(mechanism.rawValue)>"
            case .authenticated(let username, let leftover):
                "<authenticated \(username) \(String(decoding: leftover, as: UTF8.self))>"
            case .close: "<close>"
            }
        }
    }

    /// Connects and drops the greeting.
    mutating func connected() -> [String] { Self.render(machine.handle(.connected)) }

    mutating func send(_ text: String) -> [String] { Self.render(machine.handle(.received(Array(text.utf8)))) }

    mutating func sendBytes(_ bytes: [UInt8]) -> [String] { Self.render(machine.handle(.received(bytes))) }

    /// Sends `text` one byte at a time and collects everything.
    mutating func drip(_ text: String) -> [String] {
        Array(text.utf8).flatMap { Self.render(machine.handle(.received([$0]))) }
    }

    mutating func result(_ input: IMAPServerSide.Input) -> [String] { Self.render(machine.handle(input)) }
}

@Suite struct IMAPServerSideTests {
    static let remotePlain = IMAPServerSide.Configuration(tlsAvailable: true, clientIsLoopback: false)

    // MARK: - Greeting and capabilities

    @Test func greetingOnLoopback() {
        var server = ServerHarness()
        #expect(server.connected() == ["* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] MailGate ready\r\n"])
        #expect(server.machine.state == .notAuthenticated)
        #expect(server.connected() == [])
    }

    @Test func greetingOnARemotePlaintextListenerDisablesLogin() {
        var server = ServerHarness(Self.remotePlain)
        #expect(
            server.connected() == [
                "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED] MailGate ready\r\n"
            ])
    }

    @Test func allowPlaintextAndImplicitTLSOfferLogin() {
        var plain = ServerHarness(.init(clientIsLoopback: false, allowPlaintext: true))
        #expect(plain.connected() == ["* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] MailGate ready\r\n"])
        var tls = ServerHarness(.init(tlsAvailable: true, implicitTLS: true, clientIsLoopback: false))
        #expect(tls.connected() == ["* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] MailGate ready\r\n"])
    }

    @Test func capabilityNoopAndId() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("a CAPABILITY\r\nb NOOP\r\n") == [
                "* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN\r\n", "a OK CAPABILITY completed\r\n",
                "b OK NOOP completed\r\n",
            ])
        #expect(
            server.send("c ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n") == [
                "* ID (\"name\" \"MailGate\")\r\n", "c OK ID completed\r\n",
            ])
        #expect(server.send("d ID NIL\r\n") == ["* ID (\"name\" \"MailGate\")\r\n", "d OK ID completed\r\n"])
        #expect(server.send("e ID foo\r\n") == ["e BAD Invalid ID parameters\r\n"])
        #expect(
            server.send("f CAPABILITY x\r\ng NOOP x\r\n") == [
                "f BAD CAPABILITY takes no arguments\r\n", "g BAD NOOP takes no arguments\r\n",
            ])
        #expect(server.machine.errorCount == 3)
    }

    @Test func logout() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("z LOGOUT\r\na NOOP\r\n") == [
                "* BYE MailGate logging out\r\n", "z OK LOGOUT completed\r\n", "<close>",
            ])
        #expect(server.machine.state == .closed)
        #expect(server.send("b NOOP\r\n") == [])
    }

    // MARK: - STARTTLS

    @Test func startTLSDiscardsPipelinedPlaintextAndChangesCapabilities() {
        var server = ServerHarness(Self.remotePlain)
        _ = server.connected()
        #expect(
            server.send("a STARTTLS\r\nb LOGIN evil pass\r\n") == ["a OK Begin TLS negotiation now\r\n", "<startTLS>"])
        #expect(server.machine.state == .startingTLS)
        #expect(server.send("c LOGIN evil pass\r\n") == [])
        #expect(server.result(.tlsStarted) == [])
        #expect(server.machine.tlsActive)
        #expect(
            server.send("d CAPABILITY\r\n") == [
                "* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN\r\n", "d OK CAPABILITY completed\r\n",
            ])
        #expect(server.send("e STARTTLS\r\n") == ["e BAD TLS is already active\r\n"])
    }

    @Test func startTLSWithoutACertificate() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a STARTTLS\r\n") == ["a BAD STARTTLS is not available\r\n"])
        #expect(server.machine.state == .notAuthenticated)
    }

    // MARK: - LOGIN

    @Test(arguments: [
        ("a LOGIN joe secret\r\n", "joe", "secret"),
        ("a LOGIN \"joe@example.com\" \"se\\\"cr\\\\et\"\r\n", "joe@example.com", "se\"cr\\et"),
        ("a LOGIN {15}\r\njoe@example.com {6+}\r\nsecret\r\n", "joe@example.com", "secret"),
        ("a LOGIN {3+}\r\njoe {6}\r\nsecret\r\n", "joe", "secret"),
        ("a LOGIN joe {11}\r\npass \"word\"\r\n", "joe", "pass \"word\""),
    ])
    func loginForms(input: String, user: String, password: String) {
        for drip in [false, true] {
            var server = ServerHarness()
            _ = server.connected()
            let out = drip ? server.drip(input) : server.send(input)
            #expect(out.last == "<verify \(user) \(password) LOGIN>", "\(input)")
            #expect(out.dropLast().allSatisfy { $0 == "+ Ready for literal data\r\n" })
            #expect(server.machine.state == .verifying)
            #expect(
                server.result(.loginSucceeded(capabilities: [.imap4rev1])) == [
                    "a OK [CAPABILITY IMAP4rev1] LOGIN completed\r\n", "<authenticated \(user) >",
                ])
        }
    }

    @Test func loginWithUTF8Password() {
        var server = ServerHarness()
        _ = server.connected()
        let out = server.sendBytes(Array("a LOGIN joe {6}\r\n".utf8))
        #expect(out == ["+ Ready for literal data\r\n"])
        #expect(server.send("pässw\r\n") == ["<verify joe pässw LOGIN>"])
    }

    @Test func loginArgumentErrors() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a LOGIN joe\r\n") == ["a BAD LOGIN takes a user name and a password\r\n"])
        #expect(server.send("b LOGIN joe secret extra\r\n") == ["b BAD LOGIN takes a user name and a password\r\n"])
        #expect(server.send("c LOGIN (joe) secret\r\n") == ["c BAD LOGIN takes a user name and a password\r\n"])
        #expect(server.send("d LOGIN \"\" secret\r\n") == ["d BAD User name and password must be non-empty UTF-8\r\n"])
        #expect(server.sendBytes(Array("e LOGIN joe {2}\r\n".utf8)) == ["+ Ready for literal data\r\n"])
        #expect(server.sendBytes([0xFF, 0xFE, 13, 10]) == ["e BAD User name and password must be non-empty UTF-8\r\n"])
        #expect(server.machine.errorCount == 5)
        #expect(server.machine.state == .notAuthenticated)
    }

    @Test func loginDisabledRefusesBeforeThePasswordIsSent() {
        var server = ServerHarness(Self.remotePlain)
        _ = server.connected()
        #expect(
            server.send("a LOGIN joe secret\r\n") == [
                "a NO [PRIVACYREQUIRED] Log in only over TLS: use STARTTLS or the imaps port\r\n"
            ])
        // A literal user name is refused before the continuation: the password never crosses in plaintext.
        #expect(
            server.send("b LOGIN {3}\r\n") == [
                "b NO [PRIVACYREQUIRED] Log in only over TLS: use STARTTLS or the imaps port\r\n"
            ])
        #expect(
            server.send("c AUTHENTICATE PLAIN\r\n") == [
                "c NO [PRIVACYREQUIRED] Log in only over TLS: use STARTTLS or the imaps port\r\n"
            ])
        #expect(server.send("d NOOP\r\n") == ["d OK NOOP completed\r\n"])
    }

    @Test func literalForAnotherCommandIsRefused() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a APPEND INBOX {30}\r\n") == ["a BAD Log in first\r\n"])
        #expect(server.send("b FOO {3}\r\n") == ["b BAD Unknown command\r\n"])
        #expect(server.send("c NOOP\r\n") == ["c OK NOOP completed\r\n"])
    }

    @Test func literalOverThePreLoginBoundIsTooBig() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a LOGIN {20000}\r\n") == ["a NO [TOOBIG] Literal too large before login\r\n"])
        #expect(server.send("b NOOP\r\n") == ["b OK NOOP completed\r\n"])
        #expect(server.send("c LOGIN {20000+}\r\n") == ["* BYE Literal too large\r\n", "<close>"])
        #expect(server.machine.state == .closed)
    }

    // MARK: - AUTHENTICATE PLAIN

    static func plain(_ authzid: String, _ user: String, _ password: String) -> String {
        Base64Codec.standard.encodeString(Array("\(authzid)\0\(user)\0\(password)".utf8), padding: .required)
    }

    @Test func authenticatePlainWithInitialResponse() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("a AUTHENTICATE PLAIN \(Self.plain("", "joe", "secret"))\r\n") == [
                "<verify joe secret AUTHENTICATE>"
            ])
        #expect(
            server.result(.loginSucceeded(capabilities: [.imap4rev1, .idle])) == [
                "a OK [CAPABILITY IMAP4rev1 IDLE] AUTHENTICATE completed\r\n", "<authenticated joe >",
            ])
    }

    @Test func authenticatePlainWithContinuation() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a authenticate plain\r\n") == ["+ \r\n"])
        #expect(server.machine.state == .awaitingSASLResponse)
        #expect(server.drip("\(Self.plain("joe", "joe", "secret"))\r\n") == ["<verify joe secret AUTHENTICATE>"])
    }

    @Test func authenticateCancelledAndBroken() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a AUTHENTICATE PLAIN\r\n*\r\n") == ["+ \r\n", "a BAD Authentication cancelled\r\n"])
        #expect(
            server.send("b AUTHENTICATE PLAIN\r\n!!!\r\n") == ["+ \r\n", "b BAD Invalid base64 in SASL response\r\n"])
        #expect(server.send("c AUTHENTICATE PLAIN =\r\n") == ["c BAD Malformed PLAIN response\r\n"])
        #expect(
            server.send("d AUTHENTICATE PLAIN \(Self.plain("other", "joe", "secret"))\r\n") == [
                "d NO [AUTHORIZATIONFAILED] Acting as another user is not allowed\r\n"
            ])
        #expect(server.send("e AUTHENTICATE XOAUTH2 abc\r\n") == ["e NO Unsupported authentication mechanism\r\n"])
        #expect(
            server.send("f AUTHENTICATE\r\n") == [
                "f BAD AUTHENTICATE takes a mechanism and an optional initial response\r\n"
            ])
        #expect(server.send("g NOOP\r\n") == ["g OK NOOP completed\r\n"])
        #expect(server.machine.state == .notAuthenticated)
    }

    @Test func saslResponseLineIsBounded() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a AUTHENTICATE PLAIN\r\n") == ["+ \r\n"])
        #expect(server.send(String(repeating: "A", count: 13_000)) == ["* BYE Line too long\r\n", "<close>"])
    }

    // MARK: - Login results

    @Test func failedLoginsAndTheErrorBudget() {
        var server = ServerHarness(.init(errorBudget: 3))
        _ = server.connected()
        #expect(server.send("a LOGIN joe wrong\r\n") == ["<verify joe wrong LOGIN>"])
        #expect(
            server.result(.loginFailed(.authenticationFailed)) == [
                "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
            ])
        #expect(server.machine.username == nil)
        #expect(server.send("b LOGIN joe wrong\r\n") == ["<verify joe wrong LOGIN>"])
        #expect(
            server.result(.loginFailed(.authenticationFailed)) == [
                "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
            ])
        #expect(server.send("c LOGIN joe wrong\r\n") == ["<verify joe wrong LOGIN>"])
        #expect(
            server.result(.loginFailed(.authenticationFailed)) == [
                "c NO [AUTHENTICATIONFAILED] Authentication failed\r\n", "* BYE Too many errors\r\n", "<close>",
            ])
        #expect(server.machine.state == .closed)
    }

    @Test func mustReconnectNamesTheCommand() {
        var server = ServerHarness()
        _ = server.connected()
        _ = server.send("a LOGIN joe@example.com secret\r\n")
        #expect(
            server.result(.loginFailed(.mustReconnect(email: "joe@example.com"))) == [
                "* OK [ALERT] The Microsoft 365 sign-in of joe@example.com must be renewed: run mailgate account connect "
                    + "joe@example.com on the MailGate host\r\n",
                "a NO [AUTHENTICATIONFAILED] Microsoft 365 sign-in must be renewed\r\n",
            ])
    }

    @Test func unavailableIsNotCountedAndIsSanitized() {
        var server = ServerHarness()
        _ = server.connected()
        _ = server.send("a LOGIN joe secret\r\n")
        #expect(
            server.result(.loginFailed(.unavailable(reason: "connect timed out\r\n* BYE"))) == [
                "a NO [UNAVAILABLE] Microsoft 365 is not available right now (connect timed out??* BYE); try again later\r\n"
            ])
        #expect(server.machine.errorCount == 0)
        #expect(server.machine.state == .notAuthenticated)
    }

    @Test func pipelinedCommandsWaitForTheLoginAndAreHandedOver() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("a LOGIN joe secret\r\nb SELECT INBOX\r\nc FETCH 1 (BODY[] {3}\r\n") == [
                "<verify joe secret LOGIN>"
            ])
        #expect(server.send("d NOOP\r\n") == [])
        #expect(
            server.result(.loginSucceeded(capabilities: [.imap4rev1])) == [
                "a OK [CAPABILITY IMAP4rev1] LOGIN completed\r\n",
                "<authenticated joe b SELECT INBOX\r\nc FETCH 1 (BODY[] {3}\r\nd NOOP\r\n>",
            ])
        #expect(server.send("e NOOP\r\n") == [])
    }

    @Test func pipelinedCommandsAfterAFailedLoginAreServed() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a LOGIN joe wrong\r\nb NOOP\r\n") == ["<verify joe wrong LOGIN>"])
        #expect(
            server.result(.loginFailed(.authenticationFailed)) == [
                "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n", "b OK NOOP completed\r\n",
            ])
    }

    @Test func tooMuchPipelinedInputWhileVerifying() {
        var server = ServerHarness(.init(maximumBufferedInput: 100))
        _ = server.connected()
        #expect(server.send("a LOGIN joe secret\r\n") == ["<verify joe secret LOGIN>"])
        #expect(
            server.send(String(repeating: "x NOOP\r\n", count: 20)) == [
                "* BYE Too much pipelined input\r\n", "<close>",
            ])
    }

    @Test func resultsOutOfTurnAreIgnored() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.result(.loginSucceeded(capabilities: [])) == [])
        #expect(server.result(.loginFailed(.authenticationFailed)) == [])
        #expect(server.result(.tlsStarted) == [])
        #expect(server.machine.state == .notAuthenticated)
    }

    @Test func bytesBeforeTheGreetingAreIgnored() {
        var server = ServerHarness()
        #expect(server.send("a NOOP\r\n") == [])
        #expect(server.machine.state == .awaitingConnection)
    }

    // MARK: - Other commands, malformed input, bounds

    @Test func laterStateAndUnknownCommands() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("a SELECT INBOX\r\nb UID FETCH 1 FLAGS\r\nc XYZZY\r\nd IDLE\r\n") == [
                "a BAD Log in first\r\n", "b BAD Log in first\r\n", "c BAD Unknown command\r\n",
                "d BAD Log in first\r\n",
            ])
        #expect(server.machine.errorCount == 4)
    }

    @Test func malformedCommandsGetBADAndTheSessionGoesOn() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.sendBytes(Array("a NO\0OP\r\n".utf8)) == ["a BAD NUL byte in command\r\n"])
        #expect(server.send("b NOOP\n") == ["b BAD Line must end with CRLF\r\n"])
        #expect(server.send("\r\n") == ["* BAD Empty command line\r\n"])
        #expect(server.send("c LOGIN (joe secret\r\n") == ["c BAD Unbalanced parentheses\r\n"])
        #expect(
            server.send("d LOGIN {} x\r\n") == [
                "d BAD A literal must end its line ({n}, {n+} or ~{n} followed by CRLF)\r\n"
            ])
        #expect(server.send("e NOOP\r\n") == ["e OK NOOP completed\r\n"])
    }

    @Test func errorBudgetEndsTheSession() {
        var server = ServerHarness()
        _ = server.connected()
        var out: [String] = []
        for index in 0..<10 { out += server.send("t\(index) BOGUS\r\n") }
        #expect(out.suffix(2) == ["* BYE Too many errors\r\n", "<close>"])
        #expect(out.count == 12)
        #expect(server.machine.state == .closed)
    }

    @Test func lineOverTheBoundClosesTheConnection() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(
            server.send("a LOGIN " + String(repeating: "x", count: 9000)) == ["* BYE Line too long\r\n", "<close>"])
        #expect(server.send("b NOOP\r\n") == [])
    }
}

extension IMAPServerSideTests {
    @Test func idWithALiteral() {
        var server = ServerHarness()
        _ = server.connected()
        #expect(server.send("a ID ({4}\r\n") == ["+ Ready for literal data\r\n"])
        #expect(server.send("name \"x\")\r\n") == ["* ID (\"name\" \"MailGate\")\r\n", "a OK ID completed\r\n"])
    }
}

extension IMAPServerSideTests {
    static let session =
        "a1 CAPABILITY\r\na2 ID (\"name\" \"mutt\")\r\na3 NOOP\r\na4 SELECT INBOX\r\na5 LOGIN {3}\r\njoe {6+}\r\nsecret\r\n"
        + "a6 SELECT INBOX\r\n"

    /// A whole pre-login session gives the same output whether it arrives at once or one byte at a time.
    @Test func dripFedSessionEqualsWholeSession() {
        var whole = ServerHarness()
        _ = whole.connected()
        let wholeOut = whole.send(Self.session)
        var dripped = ServerHarness()
        _ = dripped.connected()
        let drippedOut = dripped.drip(Self.session)
        #expect(wholeOut == drippedOut)
        #expect(wholeOut.last == "<verify joe secret LOGIN>")
        #expect(whole.result(.loginSucceeded(capabilities: [.imap4rev1])).last == "<authenticated joe a6 SELECT INBOX\r\n>")
    }

    /// Random bytes never crash the machine; it ends in a known state and anything it sends is CRLF-terminated.
    @Test func randomInputIsHandled() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var server = ServerHarness()
            _ = server.connected()
            var out: [String] = []
            for _ in 0..<40 {
                let length = Int.random(in: 0..<80, using: &generator)
                let junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) } + [13, 10]
                out += server.sendBytes(junk)
                if server.machine.state == .verifying {
                    out += server.result(.loginFailed(.authenticationFailed))
                }
            }
            #expect(out.allSatisfy { $0.hasPrefix("<") || $0.hasSuffix("\r\n") })
            #expect([.notAuthenticated, .awaitingSASLResponse, .closed].contains(server.machine.state))
        }
    }
}
