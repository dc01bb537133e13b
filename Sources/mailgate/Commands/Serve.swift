// mailgate: `serve`: run the gateway in the foreground (the lead wires the Gateway here).
import ArgumentParser
import Config
import Store

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway in the foreground; SIGTERM drains connections and stops.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let (_, _, _) = try global.openStore()
        throw CommandFailure.failed("serve: the gateway is not wired yet.")
    }
}
