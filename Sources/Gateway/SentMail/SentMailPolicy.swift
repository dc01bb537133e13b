// Gateway/SentMail: what the gateway must do with one account's sent messages, as the lead builds it from config.

public import Policy

/// `sent_copy` of a `[server.NAME]`: `auto` (look for the Message-ID first), `always`, `never`.
public typealias SentCopyMode = Policy.SentCopyMode

/// What the gateway must do with one account's sent messages (built by the lead from `[server.X]`).
public struct SentMailPolicy: Sendable {
    /// `lock_after_send`: journal every accepted message and keep its exact bytes in the archive.
    public var lockAfterSend: Bool
    /// `sent_copy`.
    public var sentCopy: SentCopyMode
    /// `sent_folder`: the server's name for the Sent folder; nil → found by `\Sent` or by known names.
    public var sentFolder: String?
    /// Domain for generated Message-IDs (the account's domain).
    public var messageIDDomain: String
    /// Where to APPEND the copy; nil → no sent copy is possible (journal state "disabled").
    public var imap: UpstreamIMAPEndpoint?

    public init(
        lockAfterSend: Bool, sentCopy: SentCopyMode = .auto, sentFolder: String? = nil, messageIDDomain: String,
        imap: UpstreamIMAPEndpoint?
    ) {
        self.lockAfterSend = lockAfterSend
        self.sentCopy = sentCopy
        self.sentFolder = sentFolder
        self.messageIDDomain = messageIDDomain
        self.imap = imap
    }
}

/// The IMAP server of an account's `[server.X]`, for the sent copy: the lead's `UpstreamEndpoint`
/// (address, `tls` / `starttls` / `none`, `ca_file`; the certificate must name the configured host).
public typealias UpstreamIMAPEndpoint = UpstreamEndpoint
