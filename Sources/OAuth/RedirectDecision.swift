// OAuth: what one request to the loopback listener means for the sign-in (pure, no I/O).
public import MailCore

/// What the redirect brought back when the sign-in succeeded.
public struct AuthorizationRedirect: Sendable, Equatable {
    /// The authorization code, redeemed once with `OAuthClient.exchangeCode` (valid about 10 minutes).
    public var code: Redacted<String>
    /// The state value, already checked against ours.
    public var state: String

    /// A redirect result from its parts.
    public init(code: Redacted<String>, state: String) {
        self.code = code
        self.state = state
    }
}

/// The meaning of one request to the redirect listener, and the page to answer it with.
struct RedirectDecision: Sendable {
    /// HTTP status line text, e.g. `200 OK`.
    var status: String
    /// One sentence for the browser window.
    var message: String
    /// nil: not the redirect (keep waiting); else the end of the sign-in.
    var outcome: Result<AuthorizationRedirect, OAuthError>?

    static let success = "MailGate: sign-in complete. You can close this window."

    /// GET `/` with `code` or `error` ends the wait; anything else is answered and ignored.
    static func decide(head: HTTPRequestHead, expectedState: String) -> RedirectDecision {
        guard head.method == "GET" else {
            return RedirectDecision(status: "405 Method Not Allowed", message: "MailGate: only GET is served here.")
        }
        guard head.path == "/" else {
            return RedirectDecision(status: "404 Not Found", message: "MailGate: nothing here.")
        }
        let pairs: [(String, String)]
        do {
            pairs = try FormEncoding.decode(head.query)
        } catch {
            return RedirectDecision(status: "400 Bad Request", message: "MailGate: the query could not be read.")
        }
        func value(_ key: String) -> String? { pairs.first { $0.0 == key }?.1 }
        let code = value("code")
        let error = value("error")
        guard code != nil || error != nil else {
            return RedirectDecision(
                status: "400 Bad Request",
                message: "MailGate: this is not a sign-in response; keep the sign-in tab open.")
        }
        guard let state = value("state"), stateMatches(state, expectedState) else {
            return RedirectDecision(
                status: "400 Bad Request",
                message: "MailGate: sign-in failed: the response does not belong to this sign-in. Start it again.",
                outcome: .failure(.stateMismatch))
        }
        if let error {
            let description = value("error_description") ?? ""
            let shown = sanitizeForLog(description.isEmpty ? error : "\(error): \(description)", maximumLength: 300)
            return RedirectDecision(
                status: "200 OK", message: "MailGate: sign-in failed: \(shown)",
                outcome: .failure(.authorizationDenied(error: error, description: description)))
        }
        guard let code, !code.isEmpty else {
            return RedirectDecision(
                status: "400 Bad Request", message: "MailGate: the sign-in response carried an empty code.",
                outcome: .failure(.authorizationDenied(error: "invalid_request", description: "empty code")))
        }
        return RedirectDecision(
            status: "200 OK", message: success,
            outcome: .success(AuthorizationRedirect(code: Redacted(code), state: state)))
    }

    /// Compares without an early exit, so timing says nothing about how much of the state matched.
    static func stateMatches(_ returned: String, _ expected: String) -> Bool {
        let left = Array(returned.utf8)
        let right = Array(expected.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
