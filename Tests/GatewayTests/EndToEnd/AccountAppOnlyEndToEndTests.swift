// GatewayTests/EndToEnd: an app-only provider (flow = "client_credentials", a confidential client) against the
// stand-in: no person signs in, the token names the mailbox in XOAUTH2, and it is re-requested, not refreshed.

import Foundation
import OAuth
import Store
import Testing

@testable import Gateway

extension StandInTests {
    @Suite("App-only accounts end to end")
    struct AccountAppOnlyEndToEndTests {
        @Test("client credentials: connect needs no sign-in, account test passes, the stored token has no refresh token")
        func clientCredentials() async throws {
            guard let standIn = StandIn.load() else { return }
            let secret = standIn["CONFIDENTIAL_CLIENT_SECRET"]
            let installation = try MailGateInstallation(
                standIn, smtpPort: 26101, clientID: standIn["CONFIDENTIAL_CLIENT_ID"],
                extraOAuth: "flow = \"client_credentials\"\nclient_secret = \"\(secret)\"")
            let account = "bob@contoso.test"
            let add = try installation.run(["account", "add", account, "--password-stdin"], stdin: "app-only-pw\n")
            #expect(add.status == 0, "stderr: \(add.stderr)")

            // No browser: a browser that would fail the test if it were started.
            let connect = try installation.run(
                ["account", "connect", account, "--timeout", "5"], environment: ["BROWSER": "/bin/false"])
            #expect(connect.status == 0, "stdout: \(connect.stdout) stderr: \(connect.stderr)")
            #expect(connect.stdout.contains("Connected \(account)"))
            #expect(!connect.stdout.contains("Open this address"))

            let test = try installation.run(["account", "test", account])
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            let okLines = test.stdout.split(separator: "\n").filter { $0.hasPrefix("ok   ") }
            #expect(okLines.count == 3, "stdout: \(test.stdout)")

            let store = VaultTokenStore(
                database: try MailGateDatabase(stateDirectory: installation.stateDirectory),
                vault: try Vault.open(stateDirectory: installation.stateDirectory))
            let stored = try #require(try await store.load(account: account))
            #expect(stored.refreshToken == nil)
            #expect(stored.expiresAt > Date())

            // The secret never shows in what the administrator sees.
            for output in [connect.stdout, connect.stderr, test.stdout, test.stderr] {
                #expect(!output.contains(secret))
            }
        }
    }
}
