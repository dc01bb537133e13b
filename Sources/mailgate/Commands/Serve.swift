// mailgate: `serve`: run the gateway in the foreground until SIGTERM or SIGINT, then drain and stop.
import ArgumentParser
import Config
import Dispatch
import Foundation
import Gateway
import Logging
import Store

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway in the foreground; SIGTERM drains connections and stops.",
        discussion: """
            Binds every listener of [listen], relays SMTP to each account's Microsoft 365 server with XOAUTH2, \
            files sent copies and keeps tokens fresh. On SIGTERM or SIGINT it stops accepting, lets messages in \
            flight finish (at most 30 seconds) and exits 0.
            """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let (configuration, stateDirectory, database) = try global.openStore()
        let logger = Logger(label: "mailgate")
        for warning in configuration.warnings { logger.warning("\(warning.description)") }
        let server = try GatewayServer(
            configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        do {
            try server.start()
        } catch {
            server.stop(drain: false, timeout: 1)
            throw error
        }
        let addresses = server.boundAddresses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        FileHandle.standardOutput.write(Data("mailgate serve: listening on \(addresses.joined(separator: ", ")); state in \(stateDirectory)\n".utf8))
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                logger.notice("signal \(signalNumber): draining and stopping")
                server.stop(drain: true)
                logger.notice("stopped")
                Foundation.exit(0)
            }
            source.resume()
            sources.append(source)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }
}
