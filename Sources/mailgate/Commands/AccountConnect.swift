// mailgate: `account connect`: obtain and store an account's OAuth token.
import ArgumentParser
import Config
import Foundation
import Gateway
import Glibc
import Logging
import OAuth
import Store

struct AccountConnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Sign in to Microsoft 365 for an account and store its token.",
        discussion: """
            By default prints the sign-in URL, opens $BROWSER (else xdg-open) and waits for the redirect on a \
            loopback port; with --device it shows a code to enter on another device. For a shared mailbox the \
            delegate signs in. Connecting again replaces the stored token. App-only providers \
            (flow = "client_credentials") need no sign-in: connect fetches a first token to check the registration.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    @Flag(help: "Use the device-code flow instead of the browser.")
    var device = false

    @Option(help: "Seconds to wait for the browser sign-in.")
    var timeout: Double = 300

    func run() throws {
        let (configuration, directory, account, server) = try global.openAccount(email)
        guard let oauth = configuration.oauth[server.oauth] else {
            throw CommandFailure.failed("[server.\(server.name)] names [oauth.\(server.oauth)], which does not exist.")
        }
        let settings = try AccountDirectory.providerSettings(oauth)
        let client = OAuthClient(settings: settings, endpoint: try HTTPSTokenEndpoint(caFile: oauth.caFile))
        // Flushed at once: the URL or device code must reach a pipe or log file while connect waits, not at exit.
        let connector = AccountConnector(client: client, store: directory.tokenStore) { line in
            print(line)
            fflush(nil)  // every output stream; naming `stdout` is not concurrency-safe
        }
        let loginHint = account.isShared ? (account.delegateEmail ?? account.email) : account.email
        let browser = ProcessInfo.processInfo.environment["BROWSER"]
        let (device, timeout, redirectPort) = (device || settings.flow == .device, timeout, oauth.redirectPort ?? 0)
        let expires = try runBlocking {
            if settings.flow == .clientCredentials {
                return try await connector.connectAppOnly(account: account.email)
            } else if device {
                return try await connector.connectWithDeviceCode(account: account.email)
            } else {
                return try await connector.connectWithBrowser(
                    account: account.email, loginHint: loginHint, browser: browser, redirectPort: redirectPort,
                    timeout: timeout)
            }
        }
        let via = account.isShared ? " (signed in as the delegate \(loginHint))" : ""
        print("Connected \(account.email)\(via); the access token is valid until \(UTCTimestamp.format(expires)).")
    }
}
