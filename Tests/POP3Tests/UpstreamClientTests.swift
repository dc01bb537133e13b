import MailCore
import Testing
@testable import POP3

@Suite struct POP3UpstreamClientTests {
    static let token = Redacted(Array("user=a@contoso.com\u{1}auth=Bearer t0k\u{1}\u{1}".utf8))
    static let tokenBase64 = "dXNlcj1hQGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIHQwawEB\r\n"

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func greeted() -> POP3UpstreamClient {
        var client = POP3UpstreamClient()
        let actions = client.receive(bytes("+OK The Microsoft Exchange POP3 service is ready. [TQBOADIA]\r\n"))
        #expect(actions == [.greeting(POP3Reply(status: .ok, text: "The Microsoft Exchange POP3 service is ready. [TQBOADIA]"))])
        #expect(client.state == .authorization)
        return client
    }

    @Test(arguments: ["+\r\n", "+ \r\n", "+ \r", "+"])
    func authXOAUTH2TwoStep(challenge: String) throws {
        var client = Self.greeted()
        #expect(try client.authenticate(mechanism: "XOAUTH2", response: Self.token) == [.send(Self.bytes("AUTH XOAUTH2\r\n"))])
        #expect(client.state == .authenticating)
        // The challenge may arrive split anywhere; complete it with the line end if the argument lacks it.
        var actions = client.receive(Self.bytes(challenge))
        if challenge.utf8.last != UInt8(ascii: "\n") { actions += client.receive(Self.bytes("\n")) }
        #expect(actions == [.send(Self.bytes(Self.tokenBase64))])
        let done = client.receive(Self.bytes("+OK User successfully authenticated.\r\n"))
        #expect(done == [.completed(.auth, POP3Reply(status: .ok, text: "User successfully authenticated."))])
        #expect(client.state == .transaction)
    }

    @Test func authFailureFromMicrosoft() throws {
        var client = Self.greeted()
        _ = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        _ = client.receive(Self.bytes("+ \r\n"))
        let done = client.receive(Self.bytes("-ERR Authentication failure: unknown user name or bad password.\r\n"))
        #expect(done == [.completed(.auth, POP3Reply(status: .err, text: "Authentication failure: unknown user name or bad password."))])
        #expect(client.state == .authorization)
    }

    @Test func authErrorChallengeGetsAnEmptyLine() throws {
        var client = Self.greeted()
        _ = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        _ = client.receive(Self.bytes("+\r\n"))
        let actions = client.receive(Self.bytes("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR nope\r\n"))
        #expect(actions == [
            .authenticationErrorDetails("{\"status\":\"401\"}"), .send(Self.bytes("\r\n")),
            .completed(.auth, POP3Reply(status: .err, text: "nope")),
        ])
    }

    @Test func capaThenRetrWithDotUnstuffingAcrossChunksThenQuit() throws {
        var client = Self.greeted()
        #expect(try client.send(.capa) == [.send(Self.bytes("CAPA\r\n"))])
        var actions: [POP3UpstreamClient.Action] = []
        for byte in Self.bytes("+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n.\r\n") { actions += client.receive([byte]) }
        #expect(actions.first == .multilineBegan(.capa, POP3Reply(status: .ok, text: "")))
        #expect(actions.last == .multilineEnded(.capa))
        #expect(client.capabilities?.saslMechanisms == ["PLAIN", "XOAUTH2"])

        _ = try client.authenticate(mechanism: "XOAUTH2", response: Self.token)
        _ = client.receive(Self.bytes("+\r\n+OK ok\r\n"))
        #expect(client.state == .transaction)

        #expect(try client.send(.retr(1)) == [.send(Self.bytes("RETR 1\r\n"))])
        let wire = Self.bytes("+OK 40 octets\r\nSubject: x\r\n\r\n..dot\r\nend\r\n.\r\n")
        for split in [1, 2, 3, 7, wire.count] {
            var copy = client
            var body: [UInt8] = []
            var events: [POP3UpstreamClient.Action] = []
            var offset = 0
            while offset < wire.count {
                let chunk = Array(wire[offset..<min(wire.count, offset + split)])
                offset += chunk.count
                for action in copy.receive(chunk) {
                    if case .multilineData(let data) = action { body += data } else { events.append(action) }
                }
            }
            #expect(body == Self.bytes("Subject: x\r\n\r\n.dot\r\nend\r\n"), "split \(split)")
            #expect(events == [.multilineBegan(.retr, POP3Reply(status: .ok, text: "40 octets")), .multilineEnded(.retr)])
            #expect(copy.commandInFlight == nil)
        }

        _ = client.receive(wire)
        #expect(try client.send(.quit) == [.send(Self.bytes("QUIT\r\n"))])
        let end = client.receive(Self.bytes("+OK Microsoft Exchange Server POP3 server signing off.\r\n"))
        #expect(end == [.completed(.quit, POP3Reply(status: .ok, text: "Microsoft Exchange Server POP3 server signing off.")), .sessionEnded(.quit)])
        #expect(client.state == .closed)
    }

    @Test func retrErrIsSingleLine() throws {
        var client = Self.greeted()
        _ = try client.send(.user("a"))
        _ = client.receive(Self.bytes("+OK\r\n"))
        _ = try client.send(.pass(Redacted("p")))
        _ = client.receive(Self.bytes("+OK\r\n"))
        #expect(client.state == .transaction)
        _ = try client.send(.retr(9))
        #expect(client.receive(Self.bytes("-ERR no such message\r\n")) == [.completed(.retr, POP3Reply(status: .err, text: "no such message"))])
        _ = try client.send(.stat)
        #expect(client.receive(Self.bytes("+OK 2 320\r\n")) == [.completed(.stat, POP3Reply(status: .ok, text: "2 320"))])
    }

    @Test func violationsAndStateErrors() throws {
        var refused = POP3UpstreamClient()
        #expect(refused.receive(Self.bytes("-ERR go away\r\n")) == [.sessionEnded(.greetingRefused("go away"))])

        var client = Self.greeted()
        #expect(throws: POP3Error.self) { try client.send(.retr(1)) }  // not in transaction
        #expect(throws: POP3Error.self) { try client.send(.auth(mechanism: "XOAUTH2", initialResponse: nil)) }
        #expect(client.receive(Self.bytes("+OK unsolicited\r\n")) == [.protocolViolation("the server replied while no command was running")])

        var garbled = Self.greeted()
        _ = try garbled.send(.noop)
        guard case .protocolViolation? = garbled.receive(Self.bytes("250 what\r\n")).first else {
            Issue.record("expected a violation")
            return
        }
        var flooded = Self.greeted()
        _ = try flooded.send(.noop)
        guard case .protocolViolation? = flooded.receive(Array(repeating: UInt8(ascii: "+"), count: 20_000)).first else {
            Issue.record("expected a violation for an overlong line")
            return
        }
    }

    @Test func connectionLoss() {
        var client = Self.greeted()
        #expect(client.connectionClosed() == [.sessionEnded(.connectionClosed)])
    }
}
