// Gateway/SentMail: windows the crash tests must be able to hit; inert unless a test asks (debug builds only).

import Foundation

/// Test hooks of the sent-mail path. The end-to-end crash tests run the real `serve` and must kill it inside
/// windows that last microseconds in production (after the upstream's 250 but before the journal completion;
/// after the client's 250 but before the copy); unit tests need a persist that fails. Debug builds read
/// `MAILGATE_TEST_HOLD_AFTER_UPSTREAM_REPLY` and `MAILGATE_TEST_HOLD_SENT_COPY` (seconds) from the environment;
/// release builds compile every hook to nothing.
final class SentMailTestHooks: @unchecked Sendable {
    // @unchecked Sendable: every field is read and written under `lock`.
    private let lock = NSLock()
    private var holdAfterReply: Double = 0
    private var holdCopies: Double = 0
    private var persistFailures = 0

    init() {
        #if DEBUG
            let environment = ProcessInfo.processInfo.environment
            holdAfterReply = environment["MAILGATE_TEST_HOLD_AFTER_UPSTREAM_REPLY"].flatMap(Double.init) ?? 0
            holdCopies = environment["MAILGATE_TEST_HOLD_SENT_COPY"].flatMap(Double.init) ?? 0
        #endif
    }

    /// Makes the next `count` persists of a copy job fail (unit tests).
    func failNextPersists(_ count: Int) {
        lock.withLock { persistFailures = count }
    }

    /// On the recording's queue, between the upstream's 2xx and the journal completion.
    func holdAfterUpstreamReply() {
        #if DEBUG
            let seconds = lock.withLock { holdAfterReply }
            guard seconds > 0 else { return }
            FileHandle.standardError.write(Data("mailgate test hook: holding after the upstream's reply\n".utf8))
            Thread.sleep(forTimeInterval: seconds)
        #endif
    }

    /// In the copy worker, before it looks at its queue for the first time.
    func holdSentCopies() async {
        #if DEBUG
            let seconds = lock.withLock { holdCopies }
            guard seconds > 0 else { return }
            FileHandle.standardError.write(Data("mailgate test hook: holding the sent-copy worker\n".utf8))
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
        #endif
    }

    /// Throws while injected persist failures remain.
    func failPersist() throws(SentMailError) {
        let fail = lock.withLock {
            guard persistFailures > 0 else { return false }
            persistFailures -= 1
            return true
        }
        if fail { throw .fileFailed(path: "(test)", operation: "persist", reason: "injected failure") }
    }
}
