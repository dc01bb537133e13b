// Policy: lock after send — what a client may not do to sent mail in the server's Sent folder (DESIGN.md §6).

public import IMAP

/// A client command as far as the lock needs to know it. The gateway builds it from the parsed command, with
/// every mailbox name already translated to the server's name (`FolderMap.serverName(forClient:)`), so `Sent`
/// and `Sent Items` addressed directly are protected alike.
///
///     C: A7 UID STORE 4:9 +FLAGS.SILENT (\Deleted)   → .store(uid: true, mode: .add, flags: [.deleted])
public enum LockedCommand: Sendable, Hashable {
    /// `STORE` / `UID STORE` (with or without `.SILENT`).
    case store(uid: Bool, mode: StoreMode, flags: [Flag])
    /// `EXPUNGE`.
    case expunge
    /// `UID EXPUNGE set` (RFC 4315).
    case uidExpunge
    /// `MOVE` / `UID MOVE` (RFC 6851) to `target`.
    case move(uid: Bool, target: MailboxName)
    /// `COPY` / `UID COPY` to `target`: never harmful (the original stays).
    case copy(uid: Bool, target: MailboxName)
    /// `DELETE mailbox`.
    case delete(MailboxName)
    /// `RENAME from to`.
    case rename(from: MailboxName, to: MailboxName)
    /// `APPEND mailbox (flags) …`.
    case append(mailbox: MailboxName, flags: [Flag])
    /// `CLOSE`: expunges the selected mailbox silently (RFC 3501 §6.4.2).
    case close
    /// Anything else (FETCH, SEARCH, SELECT, UNSELECT, …): the lock has nothing to say.
    case other

    /// The command's name for logs and counters (`UID STORE`).
    public var name: String {
        switch self {
        case .store(let uid, _, _): return uid ? "UID STORE" : "STORE"
        case .expunge: return "EXPUNGE"
        case .uidExpunge: return "UID EXPUNGE"
        case .move(let uid, _): return uid ? "UID MOVE" : "MOVE"
        case .copy(let uid, _): return uid ? "UID COPY" : "COPY"
        case .delete: return "DELETE"
        case .rename: return "RENAME"
        case .append: return "APPEND"
        case .close: return "CLOSE"
        case .other: return "OTHER"
        }
    }
}

/// How a STORE changes the flags: `+FLAGS`, `-FLAGS`, or `FLAGS` (replacing the set).
public enum StoreMode: String, Sendable, Hashable {
    case add = "+FLAGS"
    case remove = "-FLAGS"
    case replace = "FLAGS"
}

/// Why the lock refused a command; `sentence` is what follows `NO [CANNOT]`.
public enum LockRefusal: String, Sendable, Hashable, CaseIterable {
    case markDeleted
    case expunge
    case moveOut
    case deleteFolder
    case renameFolder
    case appendDeleted

    /// The human sentence after `TAG NO [CANNOT] `.
    public var sentence: String {
        switch self {
        case .markDeleted:
            return "Sent mail is locked: messages in the Sent folder cannot be marked \\Deleted (lock_after_send)."
        case .expunge:
            return "Sent mail is locked: the Sent folder cannot be expunged (lock_after_send)."
        case .moveOut:
            return "Sent mail is locked: messages cannot be moved out of the Sent folder; copy them instead (lock_after_send)."
        case .deleteFolder:
            return "Sent mail is locked: the Sent folder and its subfolders cannot be deleted (lock_after_send)."
        case .renameFolder:
            return "Sent mail is locked: the Sent folder and its subfolders cannot be renamed (lock_after_send)."
        case .appendDeleted:
            return "Sent mail is locked: messages cannot be added to the Sent folder already marked \\Deleted (lock_after_send)."
        }
    }
}

/// The lock's answer to one command.
public enum LockDecision: Sendable, Hashable {
    /// Forward the command as it came.
    case allow
    /// Answer `TAG NO [CANNOT] <sentence>` without forwarding; count and log the refusal with account and command.
    case refuse(LockRefusal)
    /// Send `TAG UNSELECT` upstream instead of `TAG CLOSE` (CLOSE would expunge `\Deleted` messages in Sent);
    /// the client gets the upstream's tagged OK as its CLOSE completion. Exchange and Dovecot offer UNSELECT
    /// (RFC 3691); without it the gateway should refuse the CLOSE rather than send it.
    case rewriteCloseToUnselect
}

/// The lock-after-send rules, free of I/O (issue 8 point 5).
///
/// Protected: the server's Sent folder and every folder below it. Refused there: adding `\Deleted` (by
/// `+FLAGS`, or by `FLAGS (…)` replacing the set with one that holds `\Deleted`), `EXPUNGE` and `UID EXPUNGE`
/// while a protected folder is selected, `MOVE`/`UID MOVE` from a protected folder to a folder outside the
/// protected tree, `DELETE` and `RENAME` of a protected folder or of a folder above it (renaming the parent moves
/// Sent), `APPEND` into a protected folder with `\Deleted`. Rewritten: `CLOSE` with a protected folder selected
/// read-write becomes `UNSELECT`. Allowed: everything else, in particular `\Seen`, `\Flagged`, `\Answered`,
/// `\Draft` and keywords by any STORE mode (replacing the set may drop flags, but never adds `\Deleted`),
/// `-FLAGS (\Deleted)`, COPY out of Sent, moves between Sent and its own subfolders (the message stays in the
/// protected tree), and APPEND without `\Deleted`.
///
/// Moving or copying a message *into* Sent or one of its subfolders from elsewhere is allowed (decided for
/// issue 8): a user files sent mail into `Sent/2025` by hand, and a message there is protected from then on like
/// one in Sent. What this means elsewhere: a journaled message may end up in a subfolder of Sent, so a check of
/// the journal against the server (`journal verify --against-server`) must search Sent's subfolders too.
public struct SentLock: Sendable {
    /// The server's Sent folder; nil when none is known (nothing is protected then).
    public let sentFolder: MailboxName?
    /// The server's hierarchy delimiter, for recognising subfolders.
    public let delimiter: UInt8?
    /// `lock_after_send`.
    public let enabled: Bool

    public init(sentFolder: MailboxName?, delimiter: UInt8?, enabled: Bool = true) {
        self.sentFolder = sentFolder
        self.delimiter = delimiter
        self.enabled = enabled
    }

    /// The lock for the map's Sent folder.
    public init(folderMap: FolderMap, enabled: Bool) {
        let mapping = folderMap.mapping(for: .sent)
        self.init(
            sentFolder: mapping?.serverName, delimiter: mapping?.delimiter ?? folderMap.delimiter, enabled: enabled)
    }

    /// Whether `serverName` is the Sent folder or below it.
    public func isProtected(_ serverName: MailboxName) -> Bool {
        guard let sentFolder else { return false }
        return FolderMap.relation(of: serverName, to: sentFolder, delimiter: delimiter) != .unrelated
    }

    /// The decision for `command`.
    ///
    /// - Parameters:
    ///   - selected: the server-side name of the selected mailbox, nil when none is selected.
    ///   - readOnly: whether it was opened with EXAMINE (CLOSE does not expunge then).
    public func decide(_ command: LockedCommand, selected: MailboxName?, readOnly: Bool = false) -> LockDecision {
        guard enabled, sentFolder != nil else { return .allow }
        let inSent = selected.map(isProtected) ?? false
        switch command {
        case .store(_, let mode, let flags):
            guard inSent else { return .allow }
            switch mode {
            case .add, .replace: return flags.contains(.deleted) ? .refuse(.markDeleted) : .allow
            case .remove: return .allow
            }
        case .expunge, .uidExpunge:
            return inSent ? .refuse(.expunge) : .allow
        case .move(_, let target):
            return inSent && !isProtected(target) ? .refuse(.moveOut) : .allow
        case .copy:
            return .allow
        case .delete(let mailbox):
            return isProtected(mailbox) ? .refuse(.deleteFolder) : .allow
        case .rename(let from, _):
            return isProtected(from) || isAbove(from) ? .refuse(.renameFolder) : .allow
        case .append(let mailbox, let flags):
            return isProtected(mailbox) && flags.contains(.deleted) ? .refuse(.appendDeleted) : .allow
        case .close:
            return inSent && !readOnly ? .rewriteCloseToUnselect : .allow
        case .other:
            return .allow
        }
    }

    /// Whether `serverName` is a folder above Sent (`INBOX` above `INBOX.Sent`); renaming it would move Sent.
    /// Renaming INBOX is special (RFC 3501 §6.3.5: it moves the messages and leaves the children), so it is not
    /// counted as above.
    func isAbove(_ serverName: MailboxName) -> Bool {
        guard let sentFolder, !serverName.isInbox else { return false }
        return FolderMap.relation(of: sentFolder, to: serverName, delimiter: delimiter) == .child
    }
}
