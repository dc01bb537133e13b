// mailgate: options every command shares (--config, --state-dir), loading the configuration, logging bootstrap.
import ArgumentParser
import Config
import Foundation
import Gateway
import LogHandling
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

/// Logging to stderr through MailGate's handler (plain, journal or JSON lines), bootstrapped once per process.
/// `serve` sets `format` and `levelOverride` from its flags before the configuration is loaded.
enum Logs {
    private static let done = Mutex(false)
    private static let requested = Mutex<(format: LogFormat, level: Logger.Level?)>((.auto, nil))

    /// `--log-format` and `--log-level` of `serve` (the flag wins over the configuration's `log_level`).
    static func request(format: LogFormat, level: Logger.Level?) {
        requested.withLock { $0 = (format, level) }
    }

    /// The level in force: the flag, else `configured` (the configuration's `log_level`).
    static func effectiveLevel(configured: String) -> Logger.Level {
        requested.withLock { $0.level } ?? Logger.Level(rawValue: configured) ?? .info
    }

    static func bootstrap(level: String) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LogLevelControl.shared.current = effectiveLevel(configured: level)
        let format = requested.withLock { $0.format }
        LoggingSystem.bootstrap { label in MailGateLogHandler(label: label, format: format) }
    }
}
