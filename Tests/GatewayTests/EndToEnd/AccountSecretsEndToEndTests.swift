// GatewayTests/EndToEnd: what an account leaves behind: tokens sealed at rest under a 0600 key, no secret in any
// output or log, and `account password` / `account remove` taking effect.

import Foundation
import MailCore
import OAuth
import Store
import Testing

extension StandInTests {
    @Suite("Account secrets end to end (AccountE2E)")
    struct AccountE2ESecretTests {
        /// Every occurrence of `needle` in the files of `paths` (missing files are skipped), as "file" strings.
        static func files(_ paths: [String], containing needle: String) -> [String] {
            let bytes = Array(needle.utf8)
            return paths.filter { path in
                guard let data = FileManager.default.contents(atPath: path) else { return false }
                return Array(data).firstRange(of: bytes) != nil
            }
        }

        @Test("tokens are sealed in SQLite, survive into a new process, and the key must stay 0600")
        func tokensEncryptedAtRest() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            let connect = try AccountE2E.connect(installation, AccountE2E.bob, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")

            let stored = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            let access = stored.accessToken.revealed
            let refresh = try #require(stored.refreshToken?.revealed)
            #expect(access.count > 1_000 && refresh.count > 40)
            let state = installation.stateDirectory
            let databaseFiles = ["", "-wal", "-shm", "-journal"].map { state + "/" + MailGateDatabase.fileName + $0 }
            // The row is there (sealed, at least as long as both tokens) …
            let row = try #require(try MailGateDatabase(stateDirectory: state).token(email: AccountE2E.bob))
            #expect(row.sealed.count > access.count + refresh.count)
            // … and no file holds either token, whole or a distinctive slice of it.
            for secret in [access, refresh, String(access.suffix(48)), String(access.dropFirst(1_000).prefix(48))] {
                #expect(Self.files(databaseFiles, containing: secret).isEmpty)
            }

            // A new process decrypts and uses the stored token without a new sign-in or refresh.
            let test = try installation.run(["account", "test", AccountE2E.bob])
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            let afterTest = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            #expect(afterTest.accessToken.revealed == access)
            #expect(afterTest.refreshToken?.revealed == refresh)

            let keyPath = state + "/vault.key"
            let mode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(chmod(keyPath, 0o644) == 0)
            defer { _ = chmod(keyPath, 0o600) }
            for command in [
                ["account", "test", AccountE2E.bob], ["account", "connect", AccountE2E.bob, "--timeout", "2"],
            ] {
                let refused = try installation.run(command, environment: ["BROWSER": "/bin/true"], timeout: 30)
                #expect(refused.status == 1, "\(command): \(refused.stdout) \(refused.stderr)")
                #expect(refused.stderr.contains("run chmod 600 \(keyPath)"), "\(command) stderr: \(refused.stderr)")
                #expect(!refused.stdout.contains("ok   "))
            }
            #expect(chmod(keyPath, 0o600) == 0)
            let restored = try installation.run(["account", "test", AccountE2E.bob])
            #expect(restored.status == 0, "stdout: \(restored.stdout) stderr: \(restored.stderr)")
        }

        @Test("no password, token or XOAUTH2 string in the output of add/connect/list/test or in serve's log")
        func noSecretsInOutputs() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            let password = "Local-Secret-\(UInt64.random(in: 1_000_000...9_999_999))"
            var outputs: [(String, String)] = []
            func keep(_ name: String, _ run: CommandRun) {
                outputs.append((name + " stdout", run.stdout))
                outputs.append((name + " stderr", run.stderr))
            }
            keep("add", try AccountE2E.add(installation, AccountE2E.bob, password: password))
            let connect = try AccountE2E.connect(installation, AccountE2E.bob, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            keep("connect", connect)
            let first = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))

            try installation.startServe()
            let messageID = "<accounts-e2e-\(UInt64.random(in: 0...UInt64.max))@contoso.test>"
            let client = try await AccountSMTPClient.open(port: installation.smtpPort)
            let auth = try await client.login(AccountE2E.bob, password: password)
            #expect(auth.hasPrefix("235"), "AUTH: \(auth)")
            let message = """
                From: <\(AccountE2E.bob)>
                To: <\(AccountE2E.bob)>
                Subject: account secrets end-to-end
                Message-ID: \(messageID)

                One message through serve, so that its log covers a real XOAUTH2 login upstream.
                """
            let accepted = try await client.submit(from: AccountE2E.bob, to: AccountE2E.bob, message: message)
            #expect(accepted.hasPrefix("250"), "end of DATA: \(accepted)")
            await client.close()
            outputs.append(("smtp transcript", client.transcript))
            #expect(installation.stopServe() == 0)
            outputs.append(("serve log", installation.serveOutput))
            // The log covers the session (login and the accepted message), so the checks below read something real.
            #expect(installation.serveOutput.contains("listening on"))
            #expect(
                installation.serveOutput.contains("account=\(AccountE2E.bob)"), "serve log: \(installation.serveOutput)"
            )
            #expect(installation.serveOutput.contains("SMTP login"))

            keep("list", try installation.run(["account", "list"]))
            keep("list --json", try installation.run(["account", "list", "--json"]))
            let test = try installation.run(["account", "test", AccountE2E.bob])
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            keep("test", test)

            // Every token the account had during the run (serve's refresher may have rotated them).
            let last = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            var secrets: [(String, String)] = [
                ("local password", password), ("AUTH PLAIN string", AccountSMTPClient.plain(AccountE2E.bob, password)),
            ]
            for (label, token) in [("first", first), ("last", last)] {
                let access = token.accessToken.revealed
                secrets.append(("\(label) access token", access))
                secrets.append(("\(label) access token tail", String(access.suffix(48))))
                secrets.append(
                    ("\(label) XOAUTH2 string", AccountE2E.xoauth2String(user: AccountE2E.bob, token: access)))
                if let refresh = token.refreshToken?.revealed { secrets.append(("\(label) refresh token", refresh)) }
            }
            #expect(outputs.contains { $0.0 == "serve log" && !$0.1.isEmpty })
            for (secretName, secret) in secrets {
                for (outputName, text) in outputs where text.contains(secret) {
                    Issue.record("the \(secretName) appears in the \(outputName)")
                }
            }
        }

        @Test(
            "account password: serve refuses the old password, accepts the new; account remove drops account and token"
        )
        func passwordChangeAndRemove() async throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try AccountE2E.installation(standIn)
            let old = "old-Passw0rd-\(UInt32.random(in: 1...UInt32.max))"
            let new = "new-Passw0rd-\(UInt32.random(in: 1...UInt32.max))"
            _ = try AccountE2E.add(installation, AccountE2E.bob, password: old)
            let connect = try AccountE2E.connect(installation, AccountE2E.bob, standIn: standIn)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")

            // serve is already running and has a successful login with the old password cached when the password
            // is changed by another process: the change must still take effect at once.
            try installation.startServe()
            let before = try await AccountSMTPClient.open(port: installation.smtpPort)
            #expect(try await before.login(AccountE2E.bob, password: old).hasPrefix("235"))
            await before.close()

            let change = try installation.run(
                ["account", "password", AccountE2E.bob, "--password-stdin"], stdin: new + "\n")
            #expect(change.status == 0, "stderr: \(change.stderr)")
            #expect(change.stdout.contains("Changed the local password of \(AccountE2E.bob)."))

            for (password, expected) in [(old, "535"), (new, "235")] {
                let client = try await AccountSMTPClient.open(port: installation.smtpPort)
                let auth = try await client.login(AccountE2E.bob, password: password)
                #expect(auth.hasPrefix(expected), "AUTH with the \(password == old ? "old" : "new") password: \(auth)")
                await client.close()
            }
            #expect(installation.stopServe() == 0)

            let database = try MailGateDatabase(stateDirectory: installation.stateDirectory)
            #expect(try database.token(email: AccountE2E.bob) != nil)
            let remove = try installation.run(["account", "remove", AccountE2E.bob])
            #expect(remove.status == 0, "stderr: \(remove.stderr)")
            #expect(remove.stdout.contains("Removed \(AccountE2E.bob)."))
            #expect(try database.account(email: AccountE2E.bob) == nil)
            #expect(try database.token(email: AccountE2E.bob) == nil)
            #expect(try AccountE2E.list(installation).isEmpty)
            let test = try installation.run(["account", "test", AccountE2E.bob])
            #expect(test.status == 1)
            #expect(test.stderr.contains("There is no account \(AccountE2E.bob)"), "stderr: \(test.stderr)")
            let again = try installation.run(["account", "remove", AccountE2E.bob])
            #expect(again.status == 1)
        }
    }
}
