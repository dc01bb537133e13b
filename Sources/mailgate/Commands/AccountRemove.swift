// mailgate: `account remove`: delete an account and its token (the journal keeps its entries).
import ArgumentParser
import Store

struct AccountRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove an account and its stored token; its journal entries are kept.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The account's email address.")
    var email: String

    func run() throws {
        let (_, _, database) = try global.openStore()
        try database.removeAccount(email: email)
        print("Removed \(email.lowercased()).")
    }
}
