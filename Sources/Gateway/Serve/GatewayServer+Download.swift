// Gateway: the download schedule of `serve` (one-line calls from GatewayServer.start()/stop()).
import Foundation
import Logging
import Store
import Config
import Synchronization

extension GatewayServer {
    /// Schedulers by server instance (an extension cannot add stored properties).
    private static let downloadSchedulers = Mutex<[ObjectIdentifier: DownloadScheduler]>([:])

    /// Starts `[download] every`. It runs whenever some server of the configuration in force has
    /// `incoming = "imap-download"` (a SIGHUP may add the first one) and idles otherwise.
    func startDownloads(database: MailGateDatabase, stateDirectory: String) {
        let runner = DownloadRunner(
            live: live, database: database, stateDirectory: stateDirectory, logger: Logger(label: "mailgate.download"))
        let scheduler = DownloadScheduler(
            runner: runner, interval: configuration.download.every, logger: Logger(label: "mailgate.download"))
        Self.downloadSchedulers.withLock { $0[ObjectIdentifier(self)] = scheduler }
        scheduler.start()
    }

    /// Stops the schedule (a run in flight is abandoned; what it recorded is durable).
    func stopDownloads() {
        let scheduler = Self.downloadSchedulers.withLock { $0.removeValue(forKey: ObjectIdentifier(self)) }
        scheduler?.stop()
    }
}
