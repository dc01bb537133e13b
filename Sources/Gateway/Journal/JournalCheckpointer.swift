// Gateway/Journal: `serve` anchors the journal's head: every N entries or M minutes and at shutdown, a checkpoint
// goes to the log and to the append-only checkpoint file, and to the TSA when one is configured.
public import Config
import Crypto
import Dispatch
import Foundation
public import Logging
public import Store

/// Writes journal checkpoints while `serve` runs.
///
/// It polls the journal's head (one indexed query) every `pollInterval` seconds on its own serial queue instead of
/// hooking into the recorder, so that the SMTP path is not touched: a checkpoint is due when at least
/// `checkpointEveryEntries` entries were chained since the last one, or `checkpointEverySeconds` have passed and
/// any entry was chained. Nothing is written while the head has not moved. With a TSA, each checkpoint's hash is
/// time-stamped in the background and the verified token is stored as `checkpoints/SEQ.tsr`; a TSA failure is
/// logged and leaves that checkpoint without a token (`journal verify` lists it).
public final class JournalCheckpointer: @unchecked Sendable {
    // @unchecked: `last`, `lastTime`, `timer` and `reportedDamage` are only touched on `queue`.
    private let database: MailGateDatabase
    private let stateDirectory: String
    private let settings: JournalSettings
    private let logger: Logger
    private let stamper: TimeStampClient?
    private let pollInterval: Double
    private let queue = DispatchQueue(label: "mailgate.journal.checkpoints")
    private let stamping = DispatchGroup()
    private var timer: (any DispatchSourceTimer)?
    private var last: JournalCheckpoint?
    private var lastTime = Date()
    private var reportedDamage = false

    public init(
        database: MailGateDatabase, stateDirectory: String, settings: JournalSettings, logger: Logger,
        stamper: TimeStampClient?, pollInterval: Double = 1
    ) {
        self.database = database
        self.stateDirectory = stateDirectory
        self.settings = settings
        self.logger = logger
        self.stamper = stamper
        self.pollInterval = pollInterval
    }

    /// Reads the last checkpoint written by an earlier run and starts polling.
    public func start() {
        queue.sync {
            let path = JournalCheckpointFile.path(stateDirectory: stateDirectory)
            if FileManager.default.fileExists(atPath: path) {
                do {
                    last = try JournalCheckpointFile.read(path: path).last
                    if let last { lastTime = last.time }
                } catch {
                    logger.error(
                        "journal checkpoints: \(error); no checkpoint is appended until the file is repaired or moved away")
                    reportedDamage = true
                }
            }
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + pollInterval, repeating: pollInterval)
            timer.setEventHandler { [weak self] in self?.tick(final: false) }
            timer.resume()
            self.timer = timer
        }
    }

    /// Stops polling, writes the shutdown checkpoint when the head moved, and waits (at most `timeout` seconds)
    /// for time-stamps still being fetched.
    public func stop(timeout: Double = 15) {
        queue.sync {
            timer?.cancel()
            timer = nil
            tick(final: true)
        }
        if stamping.wait(timeout: .now() + timeout) == .timedOut {
            logger.warning("journal checkpoints: a time-stamp request was still running at shutdown; its checkpoint has no token")
        }
    }

    /// On `queue`: writes a checkpoint when one is due (always when `final`, if the head moved).
    private func tick(final: Bool) {
        let head: (sequence: Int64, hash: String)?
        do {
            head = try database.journalHead()
        } catch {
            logger.error("journal checkpoints: \(error)")
            return
        }
        guard let head, head.sequence > (last?.sequence ?? 0) else { return }
        let now = Date()
        let added = head.sequence - (last?.sequence ?? 0)
        let due =
            final || added >= Int64(settings.checkpointEveryEntries)
            || now.timeIntervalSince(lastTime) >= Double(settings.checkpointEverySeconds)
        guard due else { return }
        let checkpoint = JournalCheckpoint(sequence: head.sequence, entryHash: head.hash, time: now)
        do {
            try JournalCheckpointFile.append(checkpoint, stateDirectory: stateDirectory)
        } catch {
            if !reportedDamage { logger.error("journal checkpoints: \(error)") }
            reportedDamage = true
            logger.notice("\(checkpoint.logLine) (not in the checkpoint file)")
            return
        }
        reportedDamage = false
        last = checkpoint
        lastTime = now
        logger.notice("\(checkpoint.logLine)")
        if let stamper { stamp(checkpoint, with: stamper) }
    }

    /// Fetches, verifies and stores the checkpoint's token in the background.
    private func stamp(_ checkpoint: JournalCheckpoint, with stamper: TimeStampClient) {
        let stateDirectory = stateDirectory
        let logger = logger
        let group = stamping
        group.enter()
        Task {
            defer { group.leave() }
            do {
                let (der, token) = try await stamper.stamp(entryHash: checkpoint.entryHash)
                try JournalCheckpointFile.storeToken(der, sequence: checkpoint.sequence, stateDirectory: stateDirectory)
                logger.notice(
                    "journal checkpoint \(checkpoint.sequence) time-stamped by \(stamper.url): serial \(token.serial), time \(UTCTimestamp.format(Date(timeIntervalSince1970: Double(token.genTime))))")
            } catch {
                logger.error(
                    "journal checkpoint \(checkpoint.sequence): time-stamping at \(stamper.url) failed: \(error); the checkpoint stays without a token")
            }
        }
    }
}
