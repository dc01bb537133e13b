// mailgate: `download`: one download run now for imap-download servers, a line per account and a summary.
import ArgumentParser
import Config
import Foundation
import Gateway
import Logging

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Run one download now for imap-download servers (the schedule itself runs inside serve).",
        discussion: """
            Fetches each account's new INBOX messages into the local store (<state>/download), one line per \
            account and a summary; exit 1 if any account failed. --reload fetches again what is still on the \
            server although it was downloaded before (needs [download] allow_reloading = true).
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Only this account.", valueName: "EMAIL"))
    var account: String?

    @Flag(help: "Fetch again what was already downloaded (needs [download] allow_reloading = true).")
    var reload = false

    func run() throws {
        let (configuration, stateDirectory, database) = try global.openStore()
        if reload && !configuration.download.allowReloading {
            throw CommandFailure.usage(
                "download --reload: reloading is switched off; set [download] allow_reloading = true to allow it.")
        }
        let logger = Logger(label: "mailgate.download")
        let directory = try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        let runner = DownloadRunner(
            configuration: configuration, database: database, stateDirectory: stateDirectory, credentials: directory,
            logger: logger)
        guard runner.hasDownloadServers else {
            throw CommandFailure.failed(
                "download: no [server] has incoming = \"imap-download\"; there is nothing to download.")
        }
        let accounts = try runner.accounts(only: account)
        let reload = reload
        let reports = try runBlocking {
            await runner.run(accounts: accounts, reload: reload) { report in
                FileHandle.standardOutput.write(Data((report.line + "\n").utf8))
            }
        }
        let failed = reports.filter { $0.failure != nil }.count
        let messages = reports.reduce(0) { $0 + $1.messages }
        let bytes = reports.reduce(0) { $0 + $1.bytes }
        let deleted = reports.reduce(0) { $0 + $1.deletedAfterLoading + $1.deletedAfterDays }
        FileHandle.standardOutput.write(
            Data(
                ("download: \(reports.count) account\(reports.count == 1 ? "" : "s"), \(messages) messages, "
                    + "\(bytes) bytes, \(deleted) deleted on the server, \(failed) failed\n").utf8))
        if failed > 0 { throw CommandFailure.failed("download: \(failed) of \(reports.count) accounts failed.") }
    }
}
