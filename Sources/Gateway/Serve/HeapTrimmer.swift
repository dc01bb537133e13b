// Gateway: serve hands memory that ended sessions freed back to the kernel. glibc keeps freed heap pages mapped
// (only the top of an arena shrinks by itself), so after a peak of 1,000 sessions serve would stay at its peak RSS
// for good; malloc_trim(0) also releases the free pages in the middle of every arena.
public import Dispatch
import Glibc

/// Calls `malloc_trim(0)` once sessions have ended, checked every `interval` seconds on `queue`.
///
/// A trim is done when the number of open sessions fell by at least `minimumDrop` below its high point since the
/// last trim, or fell to zero; never while sessions only grow (their memory is in use), never more than once per
/// check. A trim walks the free lists (milliseconds for a heap of some 100 MiB), so at most one per interval.
public final class HeapTrimmer: @unchecked Sendable {
    // @unchecked Sendable: `highWater`, `timer` and `trims` are used only on `queue`.
    private let queue: DispatchQueue
    private let interval: Double
    private let minimumDrop: Int
    private let openSessions: @Sendable () -> Int
    private let trim: @Sendable () -> Void
    private var timer: (any DispatchSourceTimer)?
    private var highWater = 0
    /// Trims done so far (tests, logs).
    public private(set) var trims = 0

    /// - Parameters:
    ///   - queue: where `openSessions` may be read (serve: its signal queue, which also runs reloads).
    ///   - openSessions: the sessions open now, over all listeners.
    ///   - trim: the trim itself (tests count calls instead of trimming).
    public init(
        queue: DispatchQueue, interval: Double = 5, minimumDrop: Int = 8,
        openSessions: @escaping @Sendable () -> Int,
        trim: @escaping @Sendable () -> Void = HeapTrimmer.mallocTrim
    ) {
        self.queue = queue
        self.interval = interval
        self.minimumDrop = minimumDrop
        self.openSessions = openSessions
        self.trim = trim
    }

    /// glibc's `malloc_trim(0)`, looked up at run time (Swift's Glibc module does not import malloc.h); nothing on a
    /// C library without it.
    public static let mallocTrim: @Sendable () -> Void = {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return {} }
        let trim = unsafeBitCast(symbol, to: Trim.self)
        return { _ = trim(0) }
    }()

    public func start() {
        queue.async { [self] in
            guard timer == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            source.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(500))
            source.setEventHandler { [weak self] in self?.check() }
            source.resume()
            timer = source
        }
    }

    public func stop() {
        queue.async { [self] in
            timer?.cancel()
            timer = nil
        }
    }

    /// One check (the timer's handler; tests call it on `queue` directly). Returns whether it trimmed.
    @discardableResult
    func check() -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        let now = openSessions()
        guard now < highWater, highWater - now >= minimumDrop || now == 0 else {
            highWater = max(highWater, now)
            return false
        }
        trim()
        trims += 1
        highWater = now
        return true
    }
}
