// Gateway: retries a journal completion (pending row → sent/failed/unknown) that failed, with a bounded back-off.
import Dispatch
import Store

/// Retries one failed journal completion on the recording's queue: 0.5 s, doubling to `maximumDelay`, at most
/// `maximumAttempts` times.
///
/// A pending row ends the journal chain (nothing after it can be hashed), so one completion that failed for a moment
/// (the disk full, the database locked past its busy timeout) must not stall every later row until the next
/// restart. An answer that cannot change by waiting (the row is not pending any more, or is gone) ends the
/// retries at once. When the attempts run out the row stays pending; the next start marks it `unknown`.
struct JournalCompletionRetry {
    var initialDelay: Double = 0.5
    var maximumDelay: Double = 30
    var maximumAttempts: Int = 12

    /// Whether `error` may go away by waiting.
    static func isTransient(_ error: StoreError) -> Bool {
        switch error {
        case .journalEntryNotFound, .journalEntryNotPending: false
        default: true
        }
    }

    /// The delay before retry number `attempt` (1-based).
    func delay(beforeAttempt attempt: Int) -> Double {
        var value = initialDelay
        for _ in 1..<max(attempt, 1) { value = min(value * 2, maximumDelay) }
        return min(value, maximumDelay)
    }

    /// Runs `complete` again after each back-off until it succeeds, fails for good, or the attempts run out;
    /// `finished` gets the attempts used and the last error (nil on success). Everything runs on `queue`.
    func run(
        on queue: DispatchQueue, attempt: Int = 1, _ complete: @escaping () throws(StoreError) -> Void,
        finished: @escaping (_ attempts: Int, _ lastError: StoreError?) -> Void
    ) {
        let boxed = UncheckedSendable((complete, finished))
        queue.asyncAfter(deadline: .now() + delay(beforeAttempt: attempt)) {
            let (complete, finished) = boxed.value
            do throws(StoreError) {
                try complete()
                finished(attempt, nil)
            } catch {
                if Self.isTransient(error) && attempt < maximumAttempts {
                    run(on: queue, attempt: attempt + 1, complete, finished: finished)
                } else {
                    finished(attempt, error)
                }
            }
        }
    }
}
