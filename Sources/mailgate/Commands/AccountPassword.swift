// mailgate: `account password`: change an account's local password.
import ArgumentParser
import Crypto
import Store

struct AccountPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password",
        abstract: "Change an account's local password (the Microsoft 365 sign-in is untouched).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    @Flag(name: .customLong("password-stdin"), help: "Read the new password from standard input (one line).")
    var passwordStdin = false

    func run() throws {
        let (_, _, database) = try global.openStore()
        guard try database.account(email: email) != nil else {
            throw StoreError.accountNotFound(email: email.lowercased())
        }
        let password = passwordStdin ? try PasswordInput.fromStandardInput() : try PasswordInput.prompt(for: email)
        try database.setPassword(email: email, hash: try PasswordHash.hash(password))
        print("Changed the local password of \(email.lowercased()).")
    }
}
