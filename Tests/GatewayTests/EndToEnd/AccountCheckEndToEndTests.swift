// GatewayTests/EndToEnd: `mailgate account test` against the stand-in: green over IMAP and POP3, red with the
// server's own reply when SMTP AUTH is switched off for the mailbox.

import Foundation
import Testing

extension StandInTests {
    /// Switches SMTP AUTH off only for info@ (no other suite uses it) and always switches it back on.
    @Suite("Account test end to end (AccountE2E)")
    struct AccountE2ECheckTests {
        @Test(
            "green with IMAP; red with the server's 535 while SMTP AUTH is disabled for the mailbox; green again after")
        func smtpAuthDisabled() throws {
            guard let standIn = StandIn.load() else { return }
            let control = AccountControl(standIn: standIn)
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.info)
            let connect = try AccountE2E.connect(installation, AccountE2E.info, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            let smtpName = "smtp 127.0.0.1:\(standIn["SUBMISSION_PORT"])"
            let imapName = "imap 127.0.0.1:\(standIn["IMAPS_PORT"])"

            let green = try installation.run(["account", "test", AccountE2E.info])
            #expect(green.status == 0, "stdout: \(green.stdout) stderr: \(green.stderr)")
            #expect(AccountE2E.lines(green.stdout, startingWith: "ok   token: ").count == 1)
            #expect(AccountE2E.lines(green.stdout, startingWith: "ok   \(smtpName): ").count == 1)
            #expect(AccountE2E.lines(green.stdout, startingWith: "ok   \(imapName): ").count == 1)
            #expect(AccountE2E.lines(green.stdout, startingWith: "FAIL").isEmpty)

            let disabled = try control.post("smtp_auth", ["user": AccountE2E.info, "disabled": true])
            defer { _ = try? control.post("smtp_auth", ["user": AccountE2E.info, "disabled": false]) }
            #expect((disabled["disabled"] as? [String])?.contains(AccountE2E.info) == true)

            let red = try installation.run(["account", "test", AccountE2E.info])
            #expect(red.status == 1)
            let smtpLine = AccountE2E.lines(red.stdout, startingWith: "FAIL \(smtpName): ")
            #expect(smtpLine.count == 1, "stdout: \(red.stdout)")
            #expect(smtpLine.first?.contains("AUTH XOAUTH2 refused: 535") == true, "stdout: \(red.stdout)")
            // Only SMTP is refused: the token and the IMAP login still pass, each on its own line.
            #expect(AccountE2E.lines(red.stdout, startingWith: "ok   token: ").count == 1)
            #expect(AccountE2E.lines(red.stdout, startingWith: "ok   \(imapName): ").count == 1)
            #expect(red.stderr.contains("did not pass every step"))

            let enabled = try control.post("smtp_auth", ["user": AccountE2E.info, "disabled": false])
            #expect((enabled["disabled"] as? [String])?.contains(AccountE2E.info) == false)
            let greenAgain = try installation.run(["account", "test", AccountE2E.info])
            #expect(greenAgain.status == 0, "stdout: \(greenAgain.stdout)")
        }

        @Test("green with incoming = \"pop3\": token, SMTP AUTH and POP3 AUTH XOAUTH2, one ok line each")
        func pop3Green() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn, incoming: "pop3")
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            let connect = try AccountE2E.connect(installation, AccountE2E.bob, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")

            let test = try installation.run(["account", "test", AccountE2E.bob])
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            #expect(AccountE2E.lines(test.stdout, startingWith: "ok   ").count == 3, "stdout: \(test.stdout)")
            #expect(
                AccountE2E.lines(test.stdout, startingWith: "ok   pop3 127.0.0.1:\(standIn["POP3S_PORT"]): ").count
                    == 1,
                "stdout: \(test.stdout)")
            #expect(!test.stdout.contains("imap "))
        }
    }
}
