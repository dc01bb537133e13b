// GatewayTests/EndToEnd: `mailgate account connect` against the stand-in: browser flow, its timeout, the device
// flow (approved and declined) and a shared mailbox reached with a delegate's sign-in.

import Foundation
import MailCore
import OAuth
import Testing

extension StandInTests {
    /// Runs the real binary; skipped with a message when the stand-in is not running.
    @Suite("Account connect end to end (AccountE2E)")
    struct AccountE2EConnectTests {
        @Test(
            "browser flow: connect prints the URL and the code sentence, exits 0; list shows connected with an expiry")
        func browserFlow() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            #expect(try AccountE2E.list(installation).first?.token == "notConnected")

            let started = Date()
            let connect = try AccountE2E.connect(installation, AccountE2E.bob, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            #expect(connect.stdout.contains("The authorisation code could be determined"))
            #expect(connect.stdout.contains("Connected \(AccountE2E.bob)"))
            // The URL was printed (for a person without a working $BROWSER) and names the account as login_hint.
            #expect(connect.stdout.contains(standIn["AUTHORIZE_URL"] + "?"))
            #expect(connect.stdout.contains("login_hint=bob%40contoso.test"))
            #expect(connect.stdout.contains("code_challenge_method=S256"))

            let listed = try #require(try AccountE2E.list(installation).first)
            #expect(listed.email == AccountE2E.bob)
            #expect(listed.token == "connected")
            #expect(listed.lastError == nil)
            let expiry = try #require(listed.expiry, "accessExpiresAt: \(listed.accessExpiresAt ?? "nil")")
            let lifetime = Double(try AccountControl(standIn: standIn).setting("access_token_lifetime"))
            #expect(expiry > started.addingTimeInterval(lifetime - 60))
            #expect(expiry < Date().addingTimeInterval(lifetime + 60))

            let text = try installation.run(["account", "list"])
            #expect(text.status == 0)
            #expect(text.stdout.contains("\(AccountE2E.bob)  server standin  connected, access token expires"))
        }

        @Test("browser flow without a redirect: the URL shows while connect waits; --timeout 3 exits 1 with a sentence")
        func browserTimeout() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            let started = Date()
            let connect = try AccountBackgroundCommand(
                installation, ["account", "connect", AccountE2E.bob, "--timeout", "3"],
                environment: ["BROWSER": "/bin/true"])
            // A person whose browser did not open copies the URL from the output: it must be there while the
            // command waits, also when stdout is a pipe or a log file.
            let url = try connect.waitForStdout("(https://[^ \n]+/authorize\\?[^ \n]+)", timeout: 10)
            #expect(connect.isRunning, "the URL appeared only when connect ended")
            #expect(url?.hasPrefix(standIn["AUTHORIZE_URL"] + "?") == true, "stdout: \(connect.stdout)")
            #expect(url?.contains("login_hint=bob%40contoso.test") == true)
            let status = connect.waitForExit(timeout: 30)
            #expect(status == 1)
            #expect(Date().timeIntervalSince(started) < 25)
            #expect(
                connect.stderr.contains(
                    "No sign-in response reached MailGate within 3 seconds; run `mailgate account connect` again"),
                "stderr: \(connect.stderr)")
            #expect(!connect.stdout.contains("Connected"))
            #expect(try AccountE2E.list(installation).first?.token == "notConnected")
        }

        @Test("device flow: the code shows while connect waits; approved → exit 0 and stored; declined → exit 1")
        func deviceFlow() throws {
            guard let standIn = StandIn.load() else { return }
            let control = AccountControl(standIn: standIn)
            let previousInterval = try control.setting("device_code_interval")
            try control.post("config", ["device_code_interval": 1])
            defer { _ = try? control.post("config", ["device_code_interval": previousInterval]) }

            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)

            // Approved.
            let approved = try AccountBackgroundCommand(
                installation, ["account", "connect", AccountE2E.bob, "--device"])
            let code = try #require(
                try approved.waitForStdout("enter the code ([A-Z0-9-]+)", timeout: 20),
                "no user code on stdout while connect waits; stdout: \(approved.stdout) stderr: \(approved.stderr)")
            let pending = try control.get("device")["pending"] as? [[String: Any]] ?? []
            #expect(pending.contains { ($0["user_code"] as? String) == code && ($0["status"] as? String) == "pending" })
            let answer = try control.post("device/approve", ["user_code": code, "user": AccountE2E.bob])
            #expect(answer["ok"] as? Bool == true)
            let status = approved.waitForExit(timeout: 30)
            #expect(status == 0, "stdout: \(approved.stdout) stderr: \(approved.stderr)")
            #expect(approved.stdout.contains("The device sign-in was approved."))
            #expect(approved.stdout.contains("Connected \(AccountE2E.bob)"))
            let listed = try #require(try AccountE2E.list(installation).first)
            #expect(listed.token == "connected")
            #expect(listed.expiry.map { $0 > Date() } == true)

            // Declined: a clear sentence, exit 1, and the token from before stays.
            let declined = try AccountBackgroundCommand(
                installation, ["account", "connect", AccountE2E.bob, "--device"])
            let secondCode = try #require(try declined.waitForStdout("enter the code ([A-Z0-9-]+)", timeout: 20))
            #expect(secondCode != code)
            #expect(try control.post("device/deny", ["user_code": secondCode])["ok"] as? Bool == true)
            #expect(declined.waitForExit(timeout: 30) == 1, "stdout: \(declined.stdout) stderr: \(declined.stderr)")
            #expect(
                declined.stderr.contains(
                    "The device sign-in was declined; run `mailgate account connect --device` again and approve it."),
                "stderr: \(declined.stderr)")
            #expect(!declined.stdout.contains("Connected"))
            #expect(try AccountE2E.list(installation).first?.token == "connected")
        }

        @Test("shared mailbox: the delegate signs in, list shows shared/delegate, account test passes as info@")
        func sharedMailbox() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.info, extra: ["--shared", "--delegate", AccountE2E.alice])
            let connect = try AccountE2E.connect(installation, AccountE2E.info, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            #expect(connect.stdout.contains("login_hint=alice%40contoso.test"))
            #expect(
                connect.stdout.contains("Connected \(AccountE2E.info) (signed in as the delegate \(AccountE2E.alice))"))

            let listed = try #require(try AccountE2E.list(installation).first)
            #expect(listed.email == AccountE2E.info)
            #expect(listed.shared)
            #expect(listed.delegate == AccountE2E.alice)
            #expect(listed.token == "connected")

            // The token stored under info@ is alice's (the stand-in signs in the login_hint user).
            let stored = try #require(try await AccountE2E.storedToken(installation, AccountE2E.info))
            let introspection = try AccountControl(standIn: standIn).introspect(stored.accessToken.revealed)
            #expect(introspection["active"] as? Bool == true)
            #expect(introspection["username"] as? String == AccountE2E.alice)

            // XOAUTH2 names info@ with alice's token: SMTP AUTH and IMAP both accept it.
            let test = try installation.run(["account", "test", AccountE2E.info])
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            #expect(AccountE2E.lines(test.stdout, startingWith: "ok   ").count == 3, "stdout: \(test.stdout)")
            #expect(test.stdout.contains("ok   token: an access token for \(AccountE2E.info) is ready"))
            #expect(test.stdout.contains("ok   smtp 127.0.0.1:\(standIn["SUBMISSION_PORT"]): AUTH XOAUTH2 accepted"))
            #expect(test.stdout.contains("ok   imap 127.0.0.1:\(standIn["IMAPS_PORT"]): AUTHENTICATE XOAUTH2 accepted"))
        }
    }
}
