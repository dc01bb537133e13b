// mailgate: `account add`: create a local account with a password hash.
import ArgumentParser
import Config
import Crypto
import Store

struct AccountAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add an account that clients log in to with a local password.",
        discussion: """
            The password is stored only as a salted scrypt hash. Afterwards run `mailgate account connect EMAIL` \
            to sign in to Microsoft 365. A shared mailbox (--shared) is opened with a delegate's sign-in.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The Microsoft 365 email address.")
    var email: String

    @Option(help: ArgumentHelp("The [server.NAME] to use (default: the only one).", valueName: "NAME"))
    var server: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the local password from standard input (one line).")
    var passwordStdin = false

    @Flag(help: "A shared mailbox, reached with --delegate's sign-in.")
    var shared = false

    @Option(help: ArgumentHelp("Whose sign-in opens the shared mailbox.", valueName: "EMAIL"))
    var delegate: String?

    func validate() throws {
        guard Self.looksLikeEmail(email) else { throw ValidationError("\"\(email)\" is not an email address.") }
        if shared != (delegate != nil) { throw ValidationError("--shared and --delegate EMAIL go together.") }
        if let delegate, !Self.looksLikeEmail(delegate) {
            throw ValidationError("--delegate \"\(delegate)\" is not an email address.")
        }
    }

    func run() throws {
        let (configuration, _, database) = try global.openStore()
        let serverName = try Self.chooseServer(server, in: configuration)
        if try database.account(email: email) != nil {
            throw StoreError.accountExists(email: email.lowercased())
        }
        let password = passwordStdin ? try PasswordInput.fromStandardInput() : try PasswordInput.prompt(for: email)
        let hash = try PasswordHash.hash(password)
        try database.addAccount(
            Account(email: email, serverName: serverName, isShared: shared, delegateEmail: delegate, passwordHash: hash)
        )
        print(
            "Added \(email.lowercased()) (server \(serverName)). Next: mailgate account connect \(email.lowercased())")
    }

    static func chooseServer(_ requested: String?, in configuration: MailGateConfiguration) throws -> String {
        let names = configuration.servers.keys.sorted()
        if let requested {
            guard configuration.servers[requested] != nil else {
                throw CommandFailure.usage(
                    "there is no [server.\(requested)] in \(configuration.sourceFile); "
                        + "choose one of: \(names.joined(separator: ", ")).")
            }
            return requested
        }
        guard names.count == 1, let only = names.first else {
            throw CommandFailure.usage(
                "the configuration has several servers (\(names.joined(separator: ", "))); "
                    + "pass --server NAME.")
        }
        return only
    }

    static func looksLikeEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && text.utf8.count <= 254
            && !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F })
    }
}
