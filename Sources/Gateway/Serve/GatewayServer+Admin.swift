// Gateway: what `serve` keeps for the administrator: batched counters, latency, and the `[admin]` status server.
import Foundation
public import Logging
public import Store
import TLS
public import Transport
import Config
import OAuth

/// The statistics side of a running gateway, owned by `GatewayServer` (one stored property) so that the shared
/// server file only calls `startAdmin()` / `stopAdmin()`.
public final class ServeStatistics: @unchecked Sendable {
    // @unchecked: `server` is set in start and cleared in stop, both on the thread that runs the gateway's
    // start()/stop(); everything else is immutable and Sendable.
    /// Session counters, flushed every `interval` seconds and at stop.
    public let counters: CounterBatch
    /// Latency histograms, flushed with the counters.
    public let latency: LatencyBook
    /// The status server, when `[admin] listen` is set.
    public private(set) var server: AdminHTTPServer?
    let logger: Logger

    public init(database: MailGateDatabase, logger: Logger, flushInterval: Double = 2) {
        self.logger = logger
        let latency = LatencyBook(database: database, logger: logger)
        self.latency = latency
        counters = CounterBatch(
            database: database, interval: flushInterval, logger: logger, alongside: { latency.flush() })
    }

    /// What the sessions count with.
    var sessionCounters: StoreCounters { StoreCounters(batch: counters, latency: latency) }

    func start() {
        counters.start()
    }

    func startServer(_ make: () throws -> AdminHTTPServer) throws {
        server = try make()
    }

    func stop() {
        server?.close()
        server = nil
        counters.stop()
    }
}

extension GatewayServer {
    /// Starts the periodic statistics flush and, with `[admin] listen`, the status server (called early in
    /// `start()`; the sessions it counts are read lazily).
    func startAdmin() throws {
        statistics.start()
        let counters = statistics.counters
        for service in directory.tokenServices.values {
            Task {
                await service.observeRefreshes { account, succeeded in
                    counters.add(succeeded ? "token.refresh.ok" : "token.refresh.failed", account: account, listener: nil)
                }
            }
        }
        let settings = configuration.admin
        guard let listen = settings.listen else { return }
        guard let address = HostPort(host: listen.host, port: listen.port) else {
            throw AdminServerError("[admin] listen = \(listen) is not an address MailGate can bind.")
        }
        var tls: TLSContext? = nil
        if let certificate = settings.certificate, let key = settings.privateKey {
            tls = try TLSContext.server(certificateChainFile: certificate, privateKeyFile: key)
        }
        let site = AdminSite(
            database: statistics.counters.database, configuration: configuration,
            sessionsNow: { [weak self] in
                guard let self else { return [:] }
                return [
                    "smtp": smtpGateways.values.reduce(0) { $0 + $1.activeSessionCount },
                    "imap": imapGateways.values.reduce(0) { $0 + $1.activeSessionCount },
                ]
            },
            flush: { [statistics] in statistics.counters.flush() })
        try statistics.startServer {
            try AdminHTTPServer(address: address, tls: tls, token: settings.token, logger: statistics.logger) {
                site.handle($0)
            }
        }
    }

    /// Where the status server listens (port 0 in the configuration resolved), if it runs.
    public var adminAddress: HostPort? { statistics.server?.boundAddress }

    /// Closes the status server and writes the last counters (called at the end of `stop()`, after the drain).
    func stopAdmin() {
        statistics.stop()
    }
}

/// The status server could not start; one sentence.
struct AdminServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
