// GatewayTests/EndToEnd: the token life of an account against the stand-in: refresh of a short-lived token, one
// refresh for many concurrent callers, and a revoked sign-in that needs (and gets) a reconnect.

import Foundation
import MailCore
import OAuth
import Testing

@testable import Gateway

extension StandInTests {
    /// Changes the stand-in's token lifetime only for the moment of a connect and puts the old value back.
    @Suite("Account tokens end to end (AccountE2E)")
    struct AccountE2ETokenTests {
        /// Connects `email` while the stand-in issues `seconds`-long access tokens, then restores the lifetime.
        static func connectWithShortLifetime(
            _ installation: MailGateInstallation, _ email: String, seconds: Int, control: AccountControl
        ) throws -> CommandRun {
            let previous = try control.setting("access_token_lifetime")
            try control.post("token_lifetime", ["seconds": seconds])
            defer { _ = try? control.post("token_lifetime", ["seconds": previous]) }
            return try AccountE2E.connect(installation, email, standIn: control.standIn)
        }

        @Test("a 30 s token is inside the 300 s margin: account test refreshes it exactly once, saves it, and passes")
        func refreshOfShortLivedToken() async throws {
            guard let standIn = StandIn.load() else { return }
            let control = AccountControl(standIn: standIn)
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            let connect = try Self.connectWithShortLifetime(installation, AccountE2E.bob, seconds: 30, control: control)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            let before = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            #expect(before.expiresAt < Date().addingTimeInterval(31))

            let refreshesBefore = try control.counter("refresh_token")
            let test = try installation.run(["account", "test", AccountE2E.bob])
            let refreshesAfter = try control.counter("refresh_token")
            #expect(test.status == 0, "stdout: \(test.stdout) stderr: \(test.stderr)")
            #expect(AccountE2E.lines(test.stdout, startingWith: "ok   ").count == 3, "stdout: \(test.stdout)")
            #expect(refreshesAfter - refreshesBefore == 1)

            // The rotated set was persisted: a new access and refresh token, valid well beyond the margin.
            let after = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            #expect(after.accessToken != before.accessToken)
            #expect(after.refreshToken != nil && after.refreshToken != before.refreshToken)
            #expect(after.expiresAt > Date().addingTimeInterval(300))
            #expect(try AccountE2E.list(installation).first?.token == "connected")
        }

        @Test("50 concurrent token requests for an account near expiry cause exactly one refresh; all get one token")
        func concurrentRequestsRefreshOnce() async throws {
            guard let standIn = StandIn.load() else { return }
            let control = AccountControl(standIn: standIn)
            let installation = try AccountE2E.installation(standIn)
            _ = try AccountE2E.add(installation, AccountE2E.bob)
            let connect = try Self.connectWithShortLifetime(installation, AccountE2E.bob, seconds: 30, control: control)
            #expect(connect.status == 0, "stderr: \(connect.stderr)")
            let before = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))

            let directory = try AccountE2E.directory(installation)
            let refreshesBefore = try control.counter("refresh_token")
            let results = await withTaskGroup(of: Result<String, any Error>.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        do {
                            let identity = try await directory.xoauth2(for: AccountE2E.bob)
                            return .success(identity.user + " " + identity.token.revealed)
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                var all: [Result<String, any Error>] = []
                for await result in group { all.append(result) }
                return all
            }
            let refreshesAfter = try control.counter("refresh_token")

            let tokens = results.compactMap { try? $0.get() }
            #expect(
                tokens.count == 50,
                "failures: \(results.compactMap { if case .failure(let e) = $0 { "\(e)" } else { nil } })")
            #expect(Set(tokens).count == 1)
            #expect(refreshesAfter - refreshesBefore == 1)
            let after = try #require(try await AccountE2E.storedToken(installation, AccountE2E.bob))
            #expect(tokens.first == AccountE2E.bob + " " + after.accessToken.revealed)
            #expect(after.accessToken != before.accessToken)
            let introspection = try control.introspect(after.accessToken.revealed)
            #expect(introspection["active"] as? Bool == true)
        }

        @Test(
            "revoked sign-in: account test exits 1 naming `account connect`; list: needs-reconnect; connect fixes it"
        )
        func revokedRefreshTokenNeedsReconnect() async throws {
            guard let standIn = StandIn.load() else { return }
            let control = AccountControl(standIn: standIn)
            let installation = try AccountE2E.installation(standIn)
            // info@ signs in as itself here (not shared): the only stand-in user these suites may revoke.
            _ = try AccountE2E.add(installation, AccountE2E.info)
            let first = try AccountE2E.connect(installation, AccountE2E.info, standIn: standIn)
            #expect(first.status == 0, "stderr: \(first.stderr)")

            let revoked = try control.post("revoke", ["user": AccountE2E.info])
            #expect((revoked["revoked_refresh_tokens"] as? Int ?? 0) >= 1)

            let failing = try installation.run(["account", "test", AccountE2E.info])
            #expect(failing.status == 1)
            let sentence = "run `mailgate account connect \(AccountE2E.info)`"
            #expect(failing.stdout.contains(sentence), "stdout: \(failing.stdout) stderr: \(failing.stderr)")
            #expect(AccountE2E.lines(failing.stdout, startingWith: "FAIL").count >= 1)

            let listed = try #require(try AccountE2E.list(installation).first)
            #expect(listed.token == "needsReconnect")
            #expect(listed.lastError?.contains("AADSTS50173") == true, "lastError: \(listed.lastError ?? "nil")")
            let text = try installation.run(["account", "list"])
            #expect(text.stdout.contains("NEEDS RECONNECT"))
            #expect(text.stdout.contains("mailgate account connect \(AccountE2E.info)"))

            // While it needs a reconnect, no refresh is attempted at all.
            let refreshesBefore = try control.counter("refresh_token")
            let again = try installation.run(["account", "test", AccountE2E.info])
            #expect(again.status == 1)
            #expect(again.stdout.contains("FAIL token: ") && again.stdout.contains(sentence))
            #expect(try control.counter("refresh_token") == refreshesBefore)

            let reconnect = try AccountE2E.connect(installation, AccountE2E.info, standIn: standIn)
            #expect(reconnect.status == 0, "stderr: \(reconnect.stderr)")
            let green = try installation.run(["account", "test", AccountE2E.info])
            #expect(green.status == 0, "stdout: \(green.stdout) stderr: \(green.stderr)")
            #expect(AccountE2E.lines(green.stdout, startingWith: "ok   ").count == 3)
            let fixed = try #require(try AccountE2E.list(installation).first)
            #expect(fixed.token == "connected")
            #expect(fixed.lastError == nil)
        }
    }
}
