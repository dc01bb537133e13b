// mailgate: `account list`: accounts with their server and token state, as text or JSON.
import ArgumentParser
import Foundation
import Store

struct AccountList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List accounts with their server, token state, expiry and needs-reconnect.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// One account as `--json` prints it.
    struct Item: Encodable {
        var email: String
        var server: String
        var shared: Bool
        var delegate: String?
        /// connected, needsReconnect or notConnected
        var token: String
        var accessExpiresAt: String?
        var lastRefreshAt: String?
        var lastError: String?
    }

    func run() throws {
        let (_, _, database) = try global.openStore()
        var items: [Item] = []
        for account in try database.accounts() {
            let token = try database.token(email: account.email)
            items.append(
                Item(
                    email: account.email, server: account.serverName, shared: account.isShared,
                    delegate: account.delegateEmail, token: token?.state.rawValue ?? "notConnected",
                    accessExpiresAt: token.map { UTCTimestamp.format($0.accessExpiresAt) },
                    lastRefreshAt: token?.lastRefreshAt.map(UTCTimestamp.format), lastError: token?.lastError))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(items), as: UTF8.self))
            return
        }
        guard !items.isEmpty else {
            print("No accounts. Add one with: mailgate account add EMAIL")
            return
        }
        for item in items {
            var line = "\(item.email)  server \(item.server)"
            if item.shared, let delegate = item.delegate { line += "  shared (delegate \(delegate))" }
            switch item.token {
            case "connected":
                line += "  connected, access token expires \(item.accessExpiresAt ?? "?")"
                if let refreshed = item.lastRefreshAt { line += ", last refresh \(refreshed)" }
            case "needsReconnect":
                line +=
                    "  NEEDS RECONNECT (\(item.lastError ?? "no reason recorded")): mailgate account connect "
                    + item.email
            default:
                line += "  not connected: mailgate account connect \(item.email)"
            }
            print(line)
        }
    }
}
