// Gateway: `mailgate account connect`: the browser (authorization code + PKCE) and device-code sign-ins.
public import Foundation
import MailCore
public import OAuth

/// Signs a person in to Microsoft 365 for one account and stores the resulting token set.
///
/// For a shared mailbox the delegate signs in (`login_hint` is the delegate) and the token is stored under the
/// shared mailbox, which XOAUTH2 then names. Client-credentials providers need no person at all.
public struct AccountConnector: Sendable {
    public let client: OAuthClient
    public let store: any TokenStore
    /// Where messages for the person go (stdout in the CLI).
    public let say: @Sendable (String) -> Void

    public init(client: OAuthClient, store: any TokenStore, say: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.store = store
        self.say = say
    }

    /// Browser sign-in: a one-shot loopback listener, the URL printed and opened, the code exchanged.
    ///
    /// `browser` is `$BROWSER` (a colon-separated list of commands, `%s` for the URL; else `xdg-open`, see
    /// `BrowserLauncher`); if none can be started that is said, and the URL is printed anyway.
    /// `redirectPort` is `redirect_port` (0: any free port; Microsoft ignores the port of a loopback redirect).
    public func connectWithBrowser(
        account: String, loginHint: String, browser: String?, redirectPort: Int = 0, timeout: Double = 300
    ) async throws -> Date {
        let receiver = try LoopbackRedirectReceiver(port: redirectPort)
        defer { receiver.close() }
        let pkce = PKCE.generate()
        let state = OAuthState.generate()
        let url = AuthorizationRequest.url(
            settings: client.settings, redirectURI: receiver.redirectURI, pkce: pkce, state: state, loginHint: loginHint)
        say("Open this address in a browser and sign in as \(loginHint):\n  \(url)")
        await BrowserLauncher().open(url, browser: browser, say: say)
        let redirect = try await receiver.waitForRedirect(expectedState: state, timeout: timeout)
        say("The authorisation code could be determined.")
        let response = try await client.exchangeCode(
            code: redirect.code, verifier: pkce.verifier, redirectURI: receiver.redirectURI)
        return try await save(response, account: account)
    }

    /// Device-code sign-in: Microsoft's message (URL and code) is printed; polling honours `slow_down`.
    public func connectWithDeviceCode(account: String) async throws -> Date {
        let flow = DeviceCodeFlow(client: client)
        let authorization = try await flow.start()
        say(authorization.message.isEmpty
            ? "To sign in, open \(authorization.verificationURI) and enter the code \(authorization.userCode)."
            : authorization.message)
        let response = try await flow.poll(authorization) { seconds in
            try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1_000_000_000))
        }
        say("The device sign-in was approved.")
        return try await save(response, account: account)
    }

    /// App-only (client credentials): no sign-in, just a first token to prove the registration works.
    public func connectAppOnly(account: String) async throws -> Date {
        let response = try await client.clientCredentials()
        return try await save(response, account: account)
    }

    /// Stores the token set (replacing any earlier one, clearing needs-reconnect); returns the access expiry.
    private func save(_ response: TokenResponse, account: String) async throws -> Date {
        let token = response.storedToken(issuedAt: Date())
        try await store.save(account: account, token: token)
        return token.expiresAt
    }
}
