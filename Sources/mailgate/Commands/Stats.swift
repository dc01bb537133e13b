// mailgate: `stats`: figures per account and protocol, latency percentiles; table, JSON (versioned) or CSV.
import ArgumentParser
import Config
import Foundation
import Gateway
import Store

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show statistics per account and protocol: sessions, logins, messages, sent copies, bytes, refusals, errors, latency.",
        discussion: """
            Reads the state database, so it works whether `mailgate serve` runs or not (a running serve writes its \
            figures every few seconds). --json prints the documented shape {"version": 1, …} (README, "Statistics, \
            metrics and the status page"); --csv prints kind,account,protocol,name,value rows.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON (the versioned shape that /stats.json serves too).")
    var json = false

    @Flag(help: "Print CSV rows: kind,account,protocol,name,value.")
    var csv = false

    @Option(
        help: ArgumentHelp(
            "From when: a duration back from now (30m, 1h, 7d) or a UTC date (2026-12-01, 2026-12-01T10:00); counted in whole UTC hours. Default: everything stored.",
            valueName: "DURATION|DATE"))
    var since: String?

    @Option(help: ArgumentHelp("Only this account.", valueName: "EMAIL"))
    var account: String?

    func validate() throws {
        if json && csv { throw ValidationError("--json and --csv exclude each other; choose one.") }
        if let since, SinceParser.parse(since, seconds: DurationParser.seconds) == nil {
            throw ValidationError(
                "--since \"\(since)\" is neither a duration such as 1h or 7d nor a date such as 2026-12-01 or 2026-12-01T10:00.")
        }
    }

    func run() throws {
        let (_, _, database) = try global.openStore()
        let start = since.flatMap { SinceParser.parse($0, seconds: DurationParser.seconds) }
        let report = try StatsReport.load(from: database, since: start, account: account)
        if json {
            print(report.json())
        } else if csv {
            print(report.csv(), terminator: "")
        } else {
            print(report.table(), terminator: "")
        }
    }
}
