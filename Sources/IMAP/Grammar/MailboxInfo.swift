// IMAP: one LIST or LSUB line (RFC 3501 §7.2.2).

/// What one LIST line says about a mailbox: attributes, hierarchy delimiter, name.
///
///     S: * LIST (\HasNoChildren \Sent) "/" "Gesendete Elemente"
public struct MailboxInfo: Hashable, Sendable {
    public var attributes: [MailboxAttribute]
    public var path: MailboxPath

    public init(attributes: [MailboxAttribute], path: MailboxPath) {
        self.attributes = attributes
        self.path = path
    }

    /// The mailbox's wire name.
    public var name: MailboxName { path.name }

    /// Whether the mailbox can be selected (no `\Noselect` or `\NonExistent`).
    public var isSelectable: Bool {
        !attributes.contains(.noSelect) && !attributes.contains(.nonExistent)
    }
}
