// mailgate: `download`: one scheduled-download run now (not available yet).
import ArgumentParser

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Run one download now for imap-download servers (the schedule itself runs inside serve).")

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Only this account.", valueName: "EMAIL"))
    var account: String?

    func run() throws {
        _ = try global.load()
        throw CommandFailure.failed("download: scheduled downloads are not available in this version yet.")
    }
}
