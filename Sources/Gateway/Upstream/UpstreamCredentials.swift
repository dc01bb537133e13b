// Gateway: the XOAUTH2 identity every upstream login uses.
public import MailCore

/// Supplies the XOAUTH2 identity for an account.
///
/// For a shared mailbox (a user group's account) the token is the delegate's, stored under the mailbox, and
/// `user` is the shared mailbox's address (Microsoft: "SASL XOAUTH2 authentication for shared mailboxes").
public protocol UpstreamCredentials: Sendable {
    /// A valid token (refreshed when near expiry) and the user name to put in XOAUTH2.
    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>)
    /// The upstream refused `rejected` although it looked valid: refresh once, forcibly, and return the new one.
    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws
        -> (user: String, token: Redacted<String>)
}
