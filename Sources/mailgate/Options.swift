// mailgate: options every command shares (--config, --state-dir), loading the configuration, logging bootstrap.
import ArgumentParser
import Config
import Foundation
import Gateway
import Logging
import Store
import Synchronization

/// `--config` and `--state-dir`, taken by every command.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "Configuration file (default: $MAILGATE_CONFIG, else conf/mailgate.toml).", valueName: "FILE"))
    var configPath: String?

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp(
            "State directory (default: the configuration's state_dir).", valueName: "DIR"))
    var stateDirectory: String?

    /// The configuration file to read.
    var resolvedConfigPath: String {
        if let configPath { return configPath }
        if let fromEnvironment = ProcessInfo.processInfo.environment["MAILGATE_CONFIG"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return "conf/mailgate.toml"
    }

    /// Loads and validates the configuration, bootstraps logging at its level, and says where the state lives.
    /// Warnings go to stderr when `printWarnings` is set.
    func load(printWarnings: Bool = false) throws(ConfigError) -> (
        configuration: MailGateConfiguration, stateDirectory: String
    ) {
        let configuration = try ConfigurationLoader.load(path: resolvedConfigPath)
        if printWarnings {
            for warning in configuration.warnings {
                FileHandle.standardError.write(Data((warning.description + "\n").utf8))
            }
        }
        Logs.bootstrap(level: configuration.logLevel)
        var state = configuration.stateDirectory
        if let stateDirectory {
            state =
                stateDirectory.hasPrefix("/")
                ? stateDirectory : FileManager.default.currentDirectoryPath + "/" + stateDirectory
        }
        return (configuration, state)
    }

    /// Loads the configuration and opens the state database.
    func openStore() throws -> (
        configuration: MailGateConfiguration, stateDirectory: String, database: MailGateDatabase
    ) {
        let (configuration, state) = try load()
        let database = try MailGateDatabase(stateDirectory: state)
        let logger = Logger(label: "mailgate")
        for repair in database.permissionRepairs { logger.warning("\(repair)") }
        return (configuration, state, database)
    }
}

extension GlobalOptions {
    /// Loads the configuration and the store, and resolves `email` to its account and `[server]` through the
    /// account directory (vault and token services included), for the commands that act on one account.
    func openAccount(_ email: String) throws -> (
        configuration: MailGateConfiguration, directory: AccountDirectory, account: Account, server: ServerSettings
    ) {
        let (configuration, stateDirectory, database) = try openStore()
        let directory = try AccountDirectory(
            configuration: configuration, database: database, stateDirectory: stateDirectory,
            logger: Logger(label: "mailgate.account"))
        let account = try directory.account(email)
        return (configuration, directory, account, try directory.server(for: account))
    }
}

/// Logging to stderr through swift-log's StreamLogHandler, bootstrapped once per process.
enum Logs {
    private static let done = Mutex(false)

    static func bootstrap(level: String) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        let logLevel = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
    }
}
