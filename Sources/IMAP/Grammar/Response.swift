// IMAP: the three kinds of server response (RFC 3501 §2.2.2, §7).

/// One complete server response.
public enum IMAPResponse: Hashable, Sendable {
    /// `tag OK|NO|BAD [code] text`: completion of the command with that tag.
    case tagged(TaggedResponse)
    /// `* ...`: data or status not tied to a tag.
    case untagged(UntaggedResponse)
    /// `+ text`: the server waits for a literal's octets or a SASL response. Some servers send a bare `+`,
    /// which arrives as an empty text.
    case continuation(String)
}

/// `response-tagged = tag SP resp-cond-state CRLF`
///
///     S: A0001 OK AUTHENTICATE completed.
public struct TaggedResponse: Hashable, Sendable {
    public var tag: String
    public var status: ResponseStatus
    public var code: ResponseCode?
    public var text: String

    public init(tag: String, status: ResponseStatus, code: ResponseCode? = nil, text: String) {
        self.tag = tag
        self.status = status
        self.code = code
        self.text = text
    }

    /// Code and text together.
    public var responseText: ResponseText { ResponseText(code: code, text: text) }
}

/// The untagged responses MailGate understands; everything else is kept raw.
public enum UntaggedResponse: Hashable, Sendable {
    case ok(ResponseText)
    case no(ResponseText)
    case bad(ResponseText)
    /// The server is closing the connection (`* BYE Session invalidated - AccessTokenExpired`).
    case bye(ResponseText)
    /// Greeting of a connection that is already authenticated.
    case preauth(ResponseText)
    case capability([Capability])
    case list(MailboxInfo)
    case lsub(MailboxInfo)
    /// `* SEARCH 4 9 12`: the matching numbers (UIDs after UID SEARCH).
    case search([UInt32])
    case flags([Flag])
    case exists(UInt32)
    case recent(UInt32)
    case expunge(UInt32)
    case fetch(FetchResponse)
    /// Any other response: its first atom (upper-cased) and the bytes after it up to the CRLF, literals included.
    case other(name: String, raw: [UInt8])
}
