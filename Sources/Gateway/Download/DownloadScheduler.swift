// Gateway/Download: `[download] every` inside serve: a run now, then one every interval, until stopped.
import Foundation
import Logging
import Synchronization

/// Repeats download runs over every imap-download account; a run that fails for one account only shows in its
/// report (logged and counted by the runner). Stopping cancels the wait; a run in flight is abandoned safely
/// (everything recorded is durable, the rest is fetched again next time).
final class DownloadScheduler: Sendable {
    let runner: DownloadRunner
    /// Seconds between the start of one run and the next.
    let interval: Int
    private let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(runner: DownloadRunner, interval: Int, logger: Logger) {
        self.runner = runner
        self.interval = max(1, interval)
        self.logger = logger
    }

    func start() {
        let runner = runner
        let interval = interval
        let logger = logger
        let started = Task.detached {
            while !Task.isCancelled {
                let began = Date()
                // No imap-download server (yet; a SIGHUP may add one): nothing to run or log this time.
                if runner.hasDownloadServers { await Self.runOnce(runner, logger: logger) }
                let wait = max(0.05, Double(interval) - Date().timeIntervalSince(began))
                try? await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000))
            }
        }
        task.withLock { $0 = started }
    }

    /// One run over every account of the imap-download servers in force, with its summary line.
    private static func runOnce(_ runner: DownloadRunner, logger: Logger) async {
        do {
            let accounts = try runner.accounts()
            let reports = await runner.run(accounts: accounts)
            let failed = reports.filter { $0.failure != nil }.count
            let messages = reports.reduce(0) { $0 + $1.messages }
            logger.info("download run: \(reports.count) accounts, \(messages) messages, \(failed) failed")
        } catch {
            logger.error("download run could not list the accounts: \(error)")
        }
    }

    func stop() {
        task.withLock {
            $0?.cancel()
            $0 = nil
        }
    }
}
