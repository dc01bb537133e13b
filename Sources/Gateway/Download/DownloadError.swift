// Gateway/Download: why a download run of one account stopped, as a sentence and a counter cause.
public import MailCore

/// A failed download run of one account (other accounts go on). `cause` names the
/// `download.failures.<cause>` counter.
public enum DownloadError: MailGateError, Equatable {
    /// The account, its server or its IMAP endpoint is missing from the configuration.
    case notConfigured(String)
    /// No token could be obtained.
    case token(String)
    /// Connecting or TLS failed.
    case connect(String)
    /// XOAUTH2 was refused even after a token refresh.
    case loginRefused(String)
    /// The server answered NO/BAD/BYE to a command.
    case upstreamRefused(String, String)
    /// The server broke the protocol.
    case protocolViolation(String)
    /// Storing the message would take the local store past `max_store_bytes`.
    case storeFull(limit: Int)
    /// The local store could not be written (directory, file, fsync, rename).
    case storeWrite(String)
    /// The state database failed.
    case database(String)

    public var description: String {
        switch self {
        case .notConfigured(let sentence): sentence
        case .token(let reason): "No token for the download: \(reason)"
        case .connect(let reason): "Could not connect to the IMAP server: \(reason)"
        case .loginRefused(let text):
            "The IMAP server refused the XOAUTH2 login after a token refresh (\(text)); run `mailgate account test`."
        case .upstreamRefused(let command, let text): "The IMAP server refused \(command): \(text)."
        case .protocolViolation(let reason): "The IMAP server broke the protocol: \(reason)."
        case .storeFull(let limit):
            "The local download store would exceed max_store_bytes (\(limit) bytes); this account's run stops and "
                + "nothing is deleted on the server. Let POP3 clients delete mail or raise [download] max_store_bytes."
        case .storeWrite(let reason): "The local download store could not be written: \(reason)"
        case .database(let reason): "The state database failed: \(reason)"
        }
    }

    /// The counter suffix.
    public var cause: String {
        switch self {
        case .notConfigured: "config"
        case .token: "token"
        case .connect: "connect"
        case .loginRefused: "login"
        case .upstreamRefused: "upstream"
        case .protocolViolation: "protocol"
        case .storeFull: "store_full"
        case .storeWrite: "store_write"
        case .database: "database"
        }
    }
}
