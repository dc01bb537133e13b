// mailgate: `account connect`: obtain and store an account's OAuth token (the lead wires OAuth here).
import ArgumentParser

struct AccountConnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Sign in to Microsoft 365 for an account and store its token.",
        discussion: """
            By default prints the sign-in URL, opens $BROWSER (else xdg-open) and waits for the redirect on a \
            loopback port; with --device it shows a code to enter on another device. Connecting again replaces \
            the stored token.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    @Flag(help: "Use the device-code flow instead of the browser.")
    var device = false

    func run() throws {
        _ = try global.openStore()
        throw CommandFailure.failed("account connect: OAuth sign-in is not wired into this build yet.")
    }
}
