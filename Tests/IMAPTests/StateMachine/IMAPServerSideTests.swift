import MailCore
import Testing
@testable import IMAP

@Suite struct IMAPServerSideTests {
    @Test func greetingThenLoginThenOK() {
        var machine = IMAPServerSide(configuration: .init())
        let greeting = machine.handle(.connected)
        #expect(greeting == [.send(Array("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] MailGate ready\r\n".utf8))])
        let actions = machine.handle(.received(Array("a LOGIN joe \"p w\"\r\nb SELECT INBOX\r\n".utf8)))
        #expect(actions == [.verify(username: "joe", password: Redacted("p w"), mechanism: .login)])
        let done = machine.handle(.loginSucceeded(capabilities: [.imap4rev1, .idle]))
        #expect(done == [
            .send(Array("a OK [CAPABILITY IMAP4rev1 IDLE] LOGIN completed\r\n".utf8)),
            .authenticated(username: "joe", leftover: Array("b SELECT INBOX\r\n".utf8)),
        ])
        #expect(machine.state == .authenticated)
    }
}
