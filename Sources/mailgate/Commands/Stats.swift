// mailgate: `stats`: the counters of the last DURATION, per statistic, account and listener.
import ArgumentParser
import Config
import Foundation
import Store

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show statistics (messages sent, logins, failures) per account and listener.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("How far back: 30m, 24h, 7d … (counted in whole UTC hours).", valueName: "DURATION"))
    var since = "24h"

    @Option(help: ArgumentHelp("Only this account.", valueName: "EMAIL"))
    var account: String?

    struct Report: Encodable {
        var since: String
        var totals: [Total]
    }

    struct Total: Encodable {
        var name: String
        var account: String?
        var listener: String?
        var value: Int64
    }

    func validate() throws {
        guard let seconds = DurationParser.seconds(since), seconds > 0 else {
            throw ValidationError("--since \"\(since)\" is not a duration such as 30m, 24h or 7d.")
        }
    }

    func run() throws {
        let (_, _, database) = try global.openStore()
        let start = Date().addingTimeInterval(-Double(DurationParser.seconds(since) ?? 86_400))
        let totals = try database.counters(since: start, account: account)
        let report = Report(
            since: UTCTimestamp.format(start),
            totals: totals.map {
                Total(name: $0.name, account: $0.accountEmail, listener: $0.listener, value: $0.value)
            })
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("Statistics since \(report.since) (hour buckets, UTC):")
        guard !totals.isEmpty else {
            print("  nothing counted")
            return
        }
        for total in totals {
            var who = total.accountEmail ?? "-"
            if let listener = total.listener { who += " via \(listener)" }
            print("  \(total.name)  \(who)  \(total.value)")
        }
    }
}
