// Store: the typed errors of the database and the vault.
public import MailCore

/// A failure of the state database, said as one sentence with what to do.
public enum StoreError: MailGateError, Equatable {
    /// The state directory could not be created or used.
    case stateDirectory(path: String, reason: String)
    /// SQLite refused an operation (`operation` says which, e.g. "add account").
    case database(operation: String, reason: String)
    case accountExists(email: String)
    case accountNotFound(email: String)
    case journalEntryNotFound(sequence: Int64)
    /// `completeJournalEntry` on an entry that is no longer pending, or with status pending.
    case journalEntryNotPending(sequence: Int64, status: String)
    /// A value that the schema cannot hold (empty email, negative size, …).
    case invalidValue(String)

    public var description: String {
        switch self {
        case .stateDirectory(let path, let reason):
            return "cannot use the state directory \(path) (\(reason)); check that it exists and is writable by this "
                + "user, or pass --state-dir."
        case .database(let operation, let reason):
            return "the state database failed to \(operation) (\(reason)); check the disk and the state directory's "
                + "permissions."
        case .accountExists(let email):
            return "the account \(email) already exists; use `mailgate account password` to change its password."
        case .accountNotFound(let email):
            return "there is no account \(email); add it with `mailgate account add \(email)`."
        case .journalEntryNotFound(let sequence):
            return "journal entry \(sequence) does not exist."
        case .journalEntryNotPending(let sequence, let status):
            return "journal entry \(sequence) is \(status), not pending; a completed entry cannot be completed again."
        case .invalidValue(let what):
            return "refused to store an invalid value: \(what)."
        }
    }
}
