// Gateway: lets the SMTP session tell a passing identity-platform outage (454) from a needed reconnect (535).
import OAuth

extension OAuthError: TemporaryFailureClassifying {}

/// A credentials failure that has a sentence fit for an SMTP client: fixed text naming at most the account and
/// the command an administrator must run. Every other failure reaches the client as a fixed sentence and its
/// description goes to the log only (descriptions can name store paths, the state directory, configuration keys).
protocol ClientPresentableFailure {
    /// The sentence for the client, or nil when only the generic one may be shown.
    var clientSentence: String? { get }
}

extension OAuthError: ClientPresentableFailure {
    var clientSentence: String? {
        switch self {
        case .needsReconnect, .notConnected: description
        default: nil
        }
    }
}
