// mailgate: runs async gateway work from a synchronous command.
import Dispatch
import Synchronization

/// Runs `body` on the concurrency pool and waits for it on the calling (main) thread.
///
/// Commands are short-lived and the main thread is not part of the pool, so waiting here blocks nothing that the
/// work needs; the result (or error) is handed back unchanged.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
