// mailgate: `serve`: run the gateway in the foreground until SIGTERM or SIGINT, then drain and stop; SIGHUP
// re-reads the configuration; systemd is told READY / RELOADING / STOPPING when it started us (Type=notify).
import ArgumentParser
import Config
import Dispatch
import Foundation
import Gateway
import LogHandling
import Logging
import Store
import Synchronization

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway in the foreground; SIGTERM drains connections and stops, SIGHUP reloads.",
        discussion: """
            Binds every listener of [listen], relays SMTP and IMAP to each account's Microsoft 365 server with \
            XOAUTH2, files sent copies and keeps tokens fresh. On SIGTERM or SIGINT it stops accepting, lets \
            messages and commands in flight finish (at most [limits] drain_timeout, default 30 seconds), closes \
            the rest (SMTP 421 4.3.2, IMAP BYE) and exits 0. On SIGHUP it re-reads the configuration: accounts, \
            servers, limits, listeners and the log level change without dropping a session; what needs a \
            restart is logged. Under systemd (Type=notify) it reports READY=1, RELOADING=1 and STOPPING=1.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical (default: the configuration's log_level).",
            valueName: "LEVEL"))
    var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "auto (plain on a terminal, journal otherwise), plain, journal (syslog <N> prefixes) or json.",
            valueName: "FORMAT"))
    var logFormat: String = "auto"

    func validate() throws {
        if LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be auto, plain, journal or json (got \(logFormat)).")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError(
                "--log-level must be one of trace, debug, info, notice, warning, error, critical (got \(logLevel)).")
        }
    }

    func run() throws {
        Logs.request(format: LogFormat(rawValue: logFormat) ?? .auto, level: logLevel.flatMap(Logger.Level.init(rawValue:)))
        let (configuration, stateDirectory, database) = try global.openStore()
        let logger = Logger(label: "mailgate")
        for warning in configuration.warnings { logger.warning("\(warning.description)") }
        let notifier = SystemdNotifier()
        let server = try GatewayServer(
            configuration: configuration, database: database, stateDirectory: stateDirectory, logger: logger)
        do {
            try server.start()
        } catch {
            server.stop(drain: false, timeout: 1)
            throw error
        }
        let addresses = server.boundAddresses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        let listening = "listening on \(addresses.joined(separator: ", "))"
        FileHandle.standardOutput.write(Data("mailgate serve: \(listening); state in \(stateDirectory)\n".utf8))
        notify(logger) { try notifier.ready(status: listening) }
        // One serial queue for every signal: a reload and a drain never run at the same time.
        let control = DispatchQueue(label: "mailgate.signals")
        var sources: [any DispatchSourceSignal] = []
        let stopping = Mutex(false)
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: control)
            source.setEventHandler {
                let first = stopping.withLock { stopping in
                    defer { stopping = true }
                    return !stopping
                }
                guard first else { return }
                logger.notice("signal \(signalNumber): draining and stopping")
                notify(logger) { try notifier.stopping() }
                server.drainAndStop()
                logger.notice("stopped")
                Foundation.exit(0)
            }
            source.resume()
            sources.append(source)
        }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: control)
        let path = global.resolvedConfigPath
        hangup.setEventHandler {
            guard !stopping.withLock({ $0 }) else { return }
            notify(logger) { try notifier.reloading() }
            reload(server, path: path, logger: logger)
            let now = server.boundAddresses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            notify(logger) { try notifier.ready(status: "listening on \(now.joined(separator: ", ")) (reloaded)") }
        }
        hangup.resume()
        sources.append(hangup)
        let trimmer = HeapTrimmer(queue: control) { server.openSessionCount }  // memory of ended sessions back
        trimmer.start()
        withExtendedLifetime((sources, trimmer)) { dispatchMain() }
    }

    /// SIGHUP: a configuration that does not load leaves everything as it was (and says why).
    private func reload(_ server: GatewayServer, path: String, logger: Logger) {
        logger.notice("SIGHUP: reloading \(path)")
        let configuration: MailGateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: path)
        } catch {
            logger.error("reload refused, the running configuration stays: \(error.description)")
            return
        }
        for warning in configuration.warnings { logger.warning("\(warning.description)") }
        LogLevelControl.shared.current = Logs.effectiveLevel(configured: configuration.logLevel)
        let report = server.reload(configuration)
        for line in report.applied { logger.notice("reload: \(line)") }
        for line in report.needsRestart { logger.warning("reload: \(line) changed; that takes a restart to apply") }
        for line in report.failed { logger.error("reload: \(line)") }
        logger.notice("reload done (log level \(LogLevelControl.shared.current.rawValue))")
    }

    /// A failed notification is logged, never fatal (systemd then reports the start as timed out, with our reason).
    private func notify(_ logger: Logger, _ body: () throws -> Void) {
        do { try body() } catch { logger.error("\(error)") }
    }
}
