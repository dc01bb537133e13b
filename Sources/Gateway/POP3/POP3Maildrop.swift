// Gateway: where a POP3 session's messages come from. The POP3 front speaks to one of these after login: the
// server's INBOX over IMAP (incoming = "imap" / "imap-download" without a schedule), or the local download store
// (a download schedule exists). The relayed POP3 mode (incoming = "pop3") does not use it: it pumps bytes.
public import Foundation

/// One message as a POP3 client sees it.
public struct MaildropMessage: Sendable, Equatable {
    /// Stable across sessions (RFC 1939 §7: 1–70 printable characters 0x21…0x7E).
    public var uidl: String
    /// Exact octets RETR sends for it before dot-stuffing, CRLF line ends included.
    public var size: Int

    public init(uidl: String, size: Int) {
        self.uidl = uidl
        self.size = size
    }
}

/// Why a maildrop operation failed, already sorted into the RFC 2449 / RFC 3206 response code the client gets.
public enum MaildropError: Error, Sendable, Equatable {
    /// `-ERR [SYS/TEMP]`: try again later (upstream down, token service failing, store busy).
    case temporary(String)
    /// `-ERR [SYS/PERM]`: will not get better by retrying.
    case permanent(String)
    /// `-ERR [IN-USE]`: another session holds the maildrop.
    case inUse(String)

    /// The sentence for the client; never a path, token or upstream detail beyond a short reason.
    public var sentence: String {
        switch self {
        case .temporary(let text), .permanent(let text), .inUse(let text): text
        }
    }
}

/// A POP3 maildrop. Every method is called on the session's serial queue and calls back on that same queue;
/// callbacks come exactly once. Indices are 0-based positions in the list `open` delivered.
public protocol POP3Maildrop: AnyObject, Sendable {
    /// Loads the message list (the TRANSACTION state starts after it).
    func open(_ done: @escaping @Sendable (Result<[MaildropMessage], MaildropError>) -> Void)

    /// Streams message `index`: the whole message (`bodyLines == nil`, RETR) or its header plus the first
    /// `bodyLines` body lines (TOP). Bytes are the raw message with CRLF line ends; the caller dot-stuffs.
    /// `chunk` hands over bytes and a `resume` to call when the caller wants more (back-pressure); `done`
    /// follows the last chunk. Nothing is held whole.
    func retrieve(
        _ index: Int, bodyLines: Int?,
        chunk: @escaping @Sendable (_ bytes: [UInt8], _ resume: @escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable (Result<Void, MaildropError>) -> Void)

    /// The UPDATE state (QUIT after DELE): removes these messages. Never called when the connection drops.
    func commit(deleting indices: [Int], _ done: @escaping @Sendable (Result<Void, MaildropError>) -> Void)

    /// Ends the session without deleting anything; idempotent.
    func close()
}

/// Opens the maildrop of the local download store for an account, when that account is served from it
/// (a download schedule exists and the store holds the account). Implemented by the download store.
public protocol LocalMaildropProvider: Sendable {
    /// nil when this account is not served from the local store.
    func localMaildrop(for accountEmail: String, queue: DispatchQueue) -> (any POP3Maildrop)?
}
