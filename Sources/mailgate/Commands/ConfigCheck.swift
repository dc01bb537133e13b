// mailgate: `config check`: parse and validate the configuration; errors name the file, line and key.
import ArgumentParser
import Config
import Foundation

struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Parse and validate the configuration; errors name the file, line and key.",
        discussion: "Exit status 0 when the file is valid (warnings go to stderr), 2 when it is not.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customLong("list-keys"), help: "Print every configuration key with its type, default and meaning.")
    var listKeys = false

    func run() throws {
        if listKeys {
            print(Self.keyList())
            return
        }
        let (configuration, state) = try global.load(printWarnings: true)
        print("OK: \(configuration.sourceFile): " + Self.summary(configuration) + "; state in \(state)")
    }

    static func summary(_ configuration: MailGateConfiguration) -> String {
        func count(_ number: Int, _ noun: String) -> String { "\(number) \(noun)\(number == 1 ? "" : "s")" }
        let listeners = configuration.listen.all.map { "\($0.name) \($0.address)" }
        return count(configuration.servers.count, "server") + ", "
            + count(configuration.oauth.count, "oauth provider") + ", listeners "
            + (listeners.isEmpty ? "none" : listeners.joined(separator: ", "))
    }

    static func keyList() -> String {
        var lines: [String] = []
        var section: ConfigSection? = nil
        for parameter in ConfigParameters.all {
            if parameter.section != section {
                section = parameter.section
                if !lines.isEmpty { lines.append("") }
                lines.append(parameter.section.header)
            }
            lines.append("  \(parameter.key) = \(parameter.defaultValue.phrase)")
            lines.append("      \(parameter.kind.phrase). \(parameter.doc)")
        }
        return lines.joined(separator: "\n")
    }
}
