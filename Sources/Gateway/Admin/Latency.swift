// Gateway: latency histograms (HdrHistogram) kept per hour in memory and merged into the Store's `latency` table.
import Dispatch
public import Foundation
import Histogram
public import Logging
public import Store

/// The latencies the gateway measures.
public enum LatencyMetric: String, Sendable, CaseIterable, Codable {
    /// SMTP: connect, TLS and AUTH XOAUTH2 to the upstream, until it is ready for MAIL.
    case smtpUpstreamLogin = "smtp.upstream_login"
    /// SMTP: from the client's end of data to MailGate's 250 (upstream verdict and journal commit included).
    case smtpReply250 = "smtp.reply_250"
    /// IMAP: connect, TLS and AUTHENTICATE XOAUTH2 to the upstream, until it is ready.
    case imapUpstreamLogin = "imap.upstream_login"
    /// IMAP: the time MailGate itself spends on a command: from its last byte from the client to its write
    /// upstream, plus from the upstream's tagged reply to its forwarding (the upstream's own time excluded).
    case imapAdded = "imap.added"

    /// A sentence for the table and the page.
    public var title: String {
        switch self {
        case .smtpUpstreamLogin: "SMTP upstream login"
        case .smtpReply250: "SMTP end of data to 250"
        case .imapUpstreamLogin: "IMAP upstream login"
        case .imapAdded: "IMAP time added per command"
        }
    }
}

/// Records one latency; implemented by the serve counters, checked for with a cast so the session seams stay
/// as they are.
public protocol LatencyRecording: Sendable {
    func record(_ metric: LatencyMetric, microseconds: UInt64, account: String?)
}

extension GatewayCounters {
    /// Records the time since `start` (`DispatchTime.now().uptimeNanoseconds`) if these counters keep latencies;
    /// a zero `start` (never set) records nothing.
    func latency(_ metric: LatencyMetric, since start: UInt64, account: String?) {
        guard start > 0, let recorder = self as? any LatencyRecording else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        recorder.record(metric, microseconds: now > start ? (now - start) / 1_000 : 0, account: account)
    }

    /// Records `nanoseconds` directly.
    func latency(_ metric: LatencyMetric, nanoseconds: UInt64, account: String?) {
        guard let recorder = self as? any LatencyRecording else { return }
        recorder.record(metric, microseconds: nanoseconds / 1_000, account: account)
    }
}

/// An HdrHistogram of microseconds (1 µs to 1 h, two significant digits: 1 % resolution), with a compact
/// serialization (only the non-empty buckets) for the Store.
public struct LatencyHistogram: Sendable, Equatable {
    /// The largest value kept; longer waits count as this (an hour is already a failure).
    public static let highestMicroseconds: UInt64 = 3_600_000_000

    var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: LatencyHistogram.highestMicroseconds,
        numberOfSignificantValueDigits: .two)

    public init() {}

    public mutating func record(microseconds: UInt64) {
        _ = histogram.record(min(microseconds, Self.highestMicroseconds))
    }

    public mutating func add(_ other: LatencyHistogram) {
        histogram.add(other.histogram)
    }

    public var count: UInt64 { histogram.totalCount }

    /// The value at `percentile` (0–100), in microseconds; 0 when empty.
    public func microseconds(atPercentile percentile: Double) -> UInt64 {
        count == 0 ? 0 : histogram.valueAtPercentile(percentile)
    }

    public var maxMicroseconds: UInt64 { count == 0 ? 0 : histogram.max }

    public static func == (lhs: LatencyHistogram, rhs: LatencyHistogram) -> Bool {
        lhs.serialized() == rhs.serialized()
    }

    /// `{"v":1,"unit":"us","buckets":[[value,count],…]}`: the highest equivalent value of each non-empty bucket
    /// and its count; recording those values again rebuilds the same histogram.
    public func serialized() -> Data {
        var text = "{\"v\":1,\"unit\":\"us\",\"buckets\":["
        var first = true
        for item in histogram.recordedValues() {
            text += (first ? "" : ",") + "[\(item.value),\(item.count)]"
            first = false
        }
        text += "]}"
        return Data(text.utf8)
    }

    /// Parses `serialized()`; nil for anything else (a damaged row is skipped, not a crash).
    public init?(serialized data: Data) {
        struct Stored: Decodable {
            var v: Int
            var unit: String
            var buckets: [[UInt64]]
        }
        guard data.count <= 1_048_576, let stored = try? JSONDecoder().decode(Stored.self, from: data), stored.v == 1,
            stored.unit == "us"
        else { return nil }
        for pair in stored.buckets {
            guard pair.count == 2 else { return nil }
            _ = histogram.record(min(pair[0], Self.highestMicroseconds), count: pair[1])
        }
    }
}

/// Latencies gathered in memory per (metric, account, hour) and merged into the Store on `flush()` (called by
/// the statistics timer and at stop). Bounded like `CounterBatch`: at most `maximumKeys` histograms wait.
public final class LatencyBook: LatencyRecording, @unchecked Sendable {
    // @unchecked: `pending` is guarded by `lock`.
    struct Key: Hashable {
        var metric: LatencyMetric
        var account: String?
        var hour: Int64
    }

    public let database: MailGateDatabase
    public let maximumKeys: Int
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let lock = NSLock()
    private var pending: [Key: LatencyHistogram] = [:]

    public init(
        database: MailGateDatabase, maximumKeys: Int = 2_000, logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.database = database
        self.maximumKeys = maximumKeys
        self.logger = logger
        self.clock = clock
    }

    public func record(_ metric: LatencyMetric, microseconds: UInt64, account: String?) {
        let seconds = Int64(clock().timeIntervalSince1970.rounded(.down))
        let key = Key(metric: metric, account: account?.lowercased(), hour: seconds - ((seconds % 3_600) + 3_600) % 3_600)
        lock.lock()
        defer { lock.unlock() }
        if pending[key] == nil {
            guard pending.count < maximumKeys else { return }
            pending[key] = LatencyHistogram()
        }
        pending[key]?.record(microseconds: microseconds)
    }

    /// Merges what is pending into the stored hour histograms, in one transaction.
    public func flush() {
        lock.lock()
        let batch = pending
        pending = [:]
        lock.unlock()
        guard !batch.isEmpty else { return }
        let buckets = batch.map { key, histogram in
            LatencyBucket(
                bucket: UTCTimestamp.hourBucket(Date(timeIntervalSince1970: Double(key.hour))), metric: key.metric.rawValue,
                accountEmail: key.account, histogram: histogram.serialized())
        }
        do {
            try database.mergeLatency(buckets) { stored, new in
                guard var merged = LatencyHistogram(serialized: stored), let more = LatencyHistogram(serialized: new)
                else { return new }
                merged.add(more)
                return merged.serialized()
            }
        } catch {
            logger.warning("latency figures could not be written; they are dropped", metadata: ["error": "\(error)"])
        }
    }

    /// Histograms waiting for the next flush.
    public var pendingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return pending.count
    }
}
