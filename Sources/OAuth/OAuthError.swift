// OAuth: every way obtaining or refreshing a Microsoft 365 token can fail, each as one sentence that says what to do.
public import MailCore

/// A failure of the OAuth module.
///
/// `description` is one sentence for an administrator. It never contains a token, a code, a verifier or a
/// client secret: remote text (Microsoft's `error_description`, a browser's query) is sanitized and cut first.
public enum OAuthError: MailGateError, Equatable {
    /// The browser came back with a `state` that is not the one we sent (a forged or stale redirect).
    case stateMismatch
    /// The identity platform redirected with `error=` instead of a code (the user declined, or the app is not allowed).
    case authorizationDenied(error: String, description: String)
    /// No usable redirect reached the loopback listener in time.
    case timedOut(seconds: Double)
    /// The loopback listener could not run, or the browser sent too many requests that were not the redirect.
    case loopbackFailed(reason: String)
    /// The token endpoint answered with an OAuth error (RFC 6749 §5.2) that is not a reconnect or a temporary one.
    case tokenEndpoint(error: String, description: String, codes: [Int], status: Int)
    /// The account's refresh token expired or was revoked; a person must sign in again.
    case needsReconnect(account: String)
    /// The account has never been connected: no token is stored for it.
    case notConnected(account: String)
    /// The identity platform could not be reached or kept failing (network, 5xx, 429) after the bounded retries.
    case temporarilyUnavailable(attempts: Int, lastReason: String)
    /// A connection to the identity platform failed (DNS, TCP, TLS, reset, timeout).
    case network(reason: String)
    /// The identity platform answered with something that is not valid HTTP or not the expected JSON.
    case invalidResponse(reason: String)
    /// The response exceeded one of our bounds (headers, header lines, body).
    case responseTooLarge(what: String, limit: Int)
    /// The endpoint URL is not `https://` (plain HTTP is refused unless explicitly allowed for a loopback test).
    case insecureEndpoint(url: String)
    /// The endpoint URL cannot be parsed.
    case invalidURL(url: String)
    /// The provider settings are unusable (for example client credentials without a secret).
    case invalidSettings(reason: String)
    /// The device code expired before the user finished signing in.
    case deviceCodeExpired
    /// The user declined the device sign-in.
    case deviceAuthorizationDeclined
    /// The identity platform did not recognise the device code.
    case badVerificationCode
    /// Loading or saving a token in the token store failed.
    case tokenStoreFailed(account: String, reason: String)

    public var description: String {
        switch self {
        case .stateMismatch:
            return "The sign-in redirect carried a state value that does not match this sign-in; it may be forged or "
                + "stale, so start `mailgate account connect` again."
        case .authorizationDenied(let error, let description):
            let detail = description.isEmpty ? "" : " (\(clean(description)))"
            return "Microsoft refused the sign-in with \(clean(error))\(detail); check the account, the consent and "
                + "the app registration, then run `mailgate account connect` again."
        case .timedOut(let seconds):
            return "No sign-in response reached MailGate within \(Int(seconds)) seconds; run "
                + "`mailgate account connect` again and finish the sign-in in the browser, or use `--device`."
        case .loopbackFailed(let reason):
            return "The local sign-in listener failed (\(clean(reason))); run `mailgate account connect` again or "
                + "use `--device`."
        case .tokenEndpoint(let error, let description, let codes, let status):
            let codeText = codes.isEmpty ? "" : " [AADSTS\(codes.map(String.init).joined(separator: ", AADSTS"))]"
            let detail = description.isEmpty ? "" : ": \(clean(description))"
            return "The Microsoft token endpoint refused the request with HTTP \(status) \(clean(error))\(codeText)"
                + "\(detail); check the OAuth settings (client id, secret, tenant, scopes) and the app registration."
        case .needsReconnect(let account):
            return "The Microsoft 365 sign-in for \(clean(account)) has expired or was revoked: run "
                + "`mailgate account connect \(clean(account))`."
        case .notConnected(let account):
            return "No Microsoft 365 sign-in is stored for \(clean(account)): run "
                + "`mailgate account connect \(clean(account))`."
        case .temporarilyUnavailable(let attempts, let lastReason):
            return "The Microsoft token endpoint stayed unavailable after \(attempts) attempts (last: "
                + "\(clean(lastReason))); this is usually temporary, so try again in a few minutes."
        case .network(let reason):
            return "Could not talk to the Microsoft identity platform (\(clean(reason))); check the network, DNS, "
                + "proxy and the `ca_file` setting."
        case .invalidResponse(let reason):
            return "The Microsoft identity platform sent a response MailGate cannot read (\(clean(reason))); check "
                + "that `authority` points at a Microsoft identity endpoint."
        case .responseTooLarge(let what, let limit):
            return "The identity platform's \(clean(what)) exceeded MailGate's limit of \(limit); check that "
                + "`authority` points at a Microsoft identity endpoint."
        case .insecureEndpoint(let url):
            return "Refusing to send OAuth requests to \(clean(url)) without TLS; use an https:// authority."
        case .invalidURL(let url):
            return "The OAuth endpoint \(clean(url)) is not a valid URL; fix `authority` or `tenant`."
        case .invalidSettings(let reason):
            return "The OAuth settings are unusable: \(clean(reason))."
        case .deviceCodeExpired:
            return "The device code expired before the sign-in was finished; run "
                + "`mailgate account connect --device` again and enter the new code promptly."
        case .deviceAuthorizationDeclined:
            return "The device sign-in was declined; run `mailgate account connect --device` again and approve it."
        case .badVerificationCode:
            return "Microsoft did not recognise the device code; run `mailgate account connect --device` again."
        case .tokenStoreFailed(let account, let reason):
            return "Could not read or save the token for \(clean(account)) (\(clean(reason))); check the state "
                + "directory and its permissions."
        }
    }

    /// Remote or user-supplied text goes through the log sanitizer before it becomes part of a sentence.
    private func clean(_ text: String) -> String { sanitizeForLog(text) }

    /// True for failures that a later retry may cure (network trouble, 5xx, 429, `temporarily_unavailable`).
    public var isTemporary: Bool {
        switch self {
        case .network, .temporarilyUnavailable:
            return true
        case .tokenEndpoint(let error, _, _, let status):
            return status >= 500 || status == 429 || error == "temporarily_unavailable"
        case .invalidResponse, .responseTooLarge:
            // A proxy or load balancer in trouble can answer with junk; treat it as passing.
            return true
        default:
            return false
        }
    }
}
