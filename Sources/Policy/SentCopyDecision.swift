// Policy: pure decisions on messages — here, whether a sent message still needs its copy in the Sent folder.

/// The `sent_copy` setting of a `[server.NAME]` (DESIGN.md §6).
public enum SentCopyMode: String, Sendable, CaseIterable {
    /// Look for the Message-ID in the Sent folder first: Exchange Online files SMTP-submitted mail itself.
    case auto
    /// Append the copy without looking (servers that never file submitted mail).
    case always
    /// No copy at all.
    case never
}

/// What becomes of one sent message's copy, as the journal records it.
public enum SentCopyOutcome: String, Sendable, Equatable {
    /// Appended by MailGate.
    case made
    /// The server had filed it already: nothing appended.
    case skipped
    /// No copy is wanted (`never`) or possible (no IMAP endpoint).
    case disabled
}

/// The sent-copy rules, free of I/O: the worker asks before it connects and after it searched.
public enum SentCopyDecision {
    /// The next step for a message.
    public enum Step: Sendable, Equatable {
        /// Nothing to do; record this outcome.
        case finished(SentCopyOutcome)
        /// Search the Sent folder for the Message-ID (after the server had time to file the message).
        case searchFolder
        /// Append the message to the Sent folder.
        case append
    }

    /// Before anything is queued: a copy job is needed only when a copy is wanted and an IMAP endpoint exists.
    public static func needsJob(mode: SentCopyMode, hasIMAPEndpoint: Bool) -> Bool {
        mode != .never && hasIMAPEndpoint
    }

    /// The first step once connected to the Sent folder.
    public static func firstStep(mode: SentCopyMode) -> Step {
        switch mode {
        case .never: return .finished(.disabled)
        case .always: return .append
        case .auto: return .searchFolder
        }
    }

    /// After `UID SEARCH HEADER Message-ID`: any hit means the server (or the client) filed the message already.
    public static func afterSearch(foundUIDs: [UInt32]) -> Step {
        foundUIDs.isEmpty ? .append : .finished(.skipped)
    }

    /// Seconds to wait before the next attempt after `failedAttempts` failures, or nil when the attempts are used
    /// up and the copy is given up (kept on disk for an administrator).
    public static func retryDelay(afterFailedAttempts failedAttempts: Int, delays: [Double]) -> Double? {
        guard failedAttempts >= 1, failedAttempts <= delays.count else { return nil }
        return max(0, delays[failedAttempts - 1])
    }
}
