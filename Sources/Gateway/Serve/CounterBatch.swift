// Gateway: counters gathered in memory and written to the Store in one transaction every few seconds.
import Dispatch
public import Foundation
public import Logging
public import Store

/// Session counters summed in memory and flushed to the `counter` table every `interval` seconds, at `flush()`
/// and at `stop()`.
///
/// A SQLite write per event put a transaction (and an fsync in WAL) on every login, command batch and message;
/// summing first turns a busy minute into a handful of upserts. Increments keep the hour in which they happened,
/// so a flush that crosses an hour boundary still lands each figure in its own bucket.
///
/// Bounded: at most `maximumKeys` distinct (name, account, listener, hour) sums wait in memory (failed logins
/// carry the user name the client typed, so a scan could otherwise grow the table between flushes); reaching the
/// bound schedules an early flush, and past it increments wait for that flush rather than grow the table.
public final class CounterBatch: @unchecked Sendable {
    // @unchecked: `pending`, `droppedSinceLog` and `writes` are guarded by `lock`; the timer lives on `queue`.

    /// One sum waiting for the next flush.
    struct Key: Hashable {
        var name: String
        var account: String?
        var listener: String?
        /// Start of the UTC hour, in seconds since 1970.
        var hour: Int64
    }

    public let database: MailGateDatabase
    /// Seconds between flushes.
    public let interval: Double
    /// Most distinct sums held between flushes.
    public let maximumKeys: Int
    private let clock: @Sendable () -> Date
    private let logger: Logger
    /// Runs after each flush on the flush queue (the latency histograms go out with the counters).
    private let alongside: (@Sendable () -> Void)?
    private let queue = DispatchQueue(label: "mailgate.counters")
    private let lock = NSLock()
    private var pending: [Key: Int64] = [:]
    private var earlyFlushScheduled = false
    private var droppedSinceLog = 0
    private var writes = 0
    private var timer: (any DispatchSourceTimer)?

    /// `clock` decides the hour of each increment (injectable for tests); `alongside` is flushed with it.
    public init(
        database: MailGateDatabase, interval: Double = 2, maximumKeys: Int = 10_000, logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }, alongside: (@Sendable () -> Void)? = nil
    ) {
        self.alongside = alongside
        self.database = database
        self.interval = interval
        self.maximumKeys = maximumKeys
        self.logger = logger
        self.clock = clock
    }

    /// Adds `amount` to the sum of `name` for the account and listener in the current hour; never blocks on SQLite.
    public func add(_ name: String, amount: Int64 = 1, account: String?, listener: String?) {
        guard amount != 0 else { return }
        let seconds = Int64(clock().timeIntervalSince1970.rounded(.down))
        let key = Key(
            name: name, account: account?.lowercased(), listener: listener,
            hour: seconds - ((seconds % 3_600) + 3_600) % 3_600)
        var scheduleEarly = false
        lock.lock()
        if let value = pending[key] {
            pending[key] = value + amount
        } else if pending.count < maximumKeys {
            pending[key] = amount
        } else {
            droppedSinceLog += 1
        }
        if pending.count >= maximumKeys && !earlyFlushScheduled {
            earlyFlushScheduled = true
            scheduleEarly = true
        }
        lock.unlock()
        if scheduleEarly { queue.async { [self] in flushNow() } }
    }

    /// Starts the periodic flush.
    public func start() {
        queue.sync {
            guard timer == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            source.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(200))
            source.setEventHandler { [weak self] in self?.flushNow() }
            source.resume()
            timer = source
        }
    }

    /// Writes what is pending now (in one transaction) and returns when it is in the database.
    public func flush() {
        queue.sync { flushNow() }
    }

    /// Stops the timer and writes what is pending. Increments after this still count until the next `flush()`.
    public func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
            flushNow()
        }
    }

    /// Transactions written so far (for tests: many increments, one write).
    public var writeCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return writes
    }

    /// Sums waiting for the next flush.
    public var pendingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return pending.count
    }

    /// Swaps the pending sums out and writes them; on a failed write they are put back (still bounded) so the
    /// next flush retries them.
    private func flushNow() {
        lock.lock()
        let batch = pending
        pending = [:]
        earlyFlushScheduled = false
        let dropped = droppedSinceLog
        droppedSinceLog = 0
        lock.unlock()
        defer { alongside?() }
        if dropped > 0 {
            logger.warning(
                "statistics increments were dropped: more distinct counters than the in-memory bound between two flushes",
                metadata: ["dropped": "\(dropped)", "bound": "\(maximumKeys)"])
        }
        guard !batch.isEmpty else { return }
        let increments = batch.map { key, value in
            CounterIncrement(
                key.name, account: key.account, listener: key.listener, amount: value,
                at: Date(timeIntervalSince1970: Double(key.hour)))
        }
        do {
            try database.increment(increments)
            lock.lock()
            writes += 1
            lock.unlock()
        } catch {
            logger.warning("statistics could not be written; retrying at the next flush", metadata: ["error": "\(error)"])
            lock.lock()
            for (key, value) in batch {
                if let current = pending[key] {
                    pending[key] = current + value
                } else if pending.count < maximumKeys {
                    pending[key] = value
                }
            }
            lock.unlock()
        }
    }
}
