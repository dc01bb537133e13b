// mailgate: `account test`: check an account's token, SMTP AUTH and IMAP/POP3 login.
import ArgumentParser
import Config
import Gateway
import Logging
import MailCore
import Store

struct AccountTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Check an account end to end: token, SMTP AUTH, IMAP (or POP3) login; one line each.",
        discussion: """
            Gets a token (refreshing it if needed) and logs in to the upstream services the way the gateway \
            does. Each step prints one line; a failed step shows the upstream's own reply. Exit 0 only if all pass.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    func run() throws {
        let (configuration, directory, account, server) = try global.openAccount(email)
        let plan = AccountTester.Plan(
            smtp: server.smtpAuth ? AccountDirectory.smtpEndpoint(server) : nil,
            incoming: AccountDirectory.incomingEndpoint(server), ehloHostname: "mailgate.localhost",
            timeout: configuration.limits.connectTimeoutSeconds)
        let tester = AccountTester(plan: plan, credentials: directory)
        let passed = try runBlocking {
            await tester.run(account: account.email) { step in
                print("\(step.passed ? "ok  " : "FAIL") \(step.name): \(step.detail)")
            }
        }
        if !passed { throw CommandFailure.failed("account test: \(account.email) did not pass every step.") }
    }
}
