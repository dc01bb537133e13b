// Gateway/SentMail: what can go wrong while recording a sent message (spool, archive, journal, sent copy).

public import MailCore

/// A failure of the sent-mail recorder, as one sentence that says what to do. Never contains message bytes,
/// tokens or unsanitized remote text.
public enum SentMailError: MailGateError, Equatable {
    /// The message grew past `Limits.messageSize`.
    case messageTooLarge(actualCount: Int, maximumCount: Int)
    /// A spool, archive or job file could not be written or read.
    case fileFailed(path: String, operation: String, reason: String)
    /// The journal (SQLite) refused a write; the message's fate is then recorded as pending or not at all.
    case journalFailed(reason: String)
    /// A method was called out of order (a MailGate bug in the caller).
    case invalidUse(String)
    /// The sent copy could not be made this time (connect, TLS, login, folder, APPEND); it is retried.
    case copyFailed(reason: String)

    public var description: String {
        switch self {
        case .messageTooLarge(let actual, let maximum):
            return "The message reached \(actual) bytes, more than the limit of \(maximum); "
                + "send it in smaller parts or raise the message size limit."
        case .fileFailed(let path, let operation, let reason):
            return "MailGate could not \(operation) \(sanitizeForLog(path, maximumLength: 300)) (\(reason)); "
                + "check that the state directory exists, is writable by MailGate and has free space."
        case .journalFailed(let reason):
            return "The sent journal could not be written (\(sanitizeForLog(reason, maximumLength: 300))); "
                + "check the state directory's database and free space, then run `mailgate journal verify`."
        case .invalidUse(let what):
            return "The sent-mail recorder was used out of order (\(what)); this is a MailGate bug, please report it."
        case .copyFailed(let reason):
            return "The copy for the Sent folder could not be made (\(sanitizeForLog(reason, maximumLength: 300))); "
                + "it stays in the spool and is retried."
        }
    }
}
