// OAuth: the device authorization grant (RFC 8628) for `account connect --device`.
public import Foundation
public import MailCore

/// What the user needs to finish a device sign-in, from `…/oauth2/v2.0/devicecode`.
public struct DeviceAuthorization: Sendable, Equatable {
    /// Identifies this sign-in when polling; a secret between us and the token endpoint.
    public var deviceCode: Redacted<String>
    /// The short code the user types at `verificationURI`.
    public var userCode: String
    /// Where the user goes (Microsoft: `https://microsoft.com/devicelogin`).
    public var verificationURI: String
    /// Seconds until the codes expire (Microsoft: 900).
    public var expiresIn: Int
    /// Minimum seconds between polls (RFC 8628 §3.2; 5 when absent).
    public var interval: Int
    /// Microsoft's ready-made instruction sentence for the user.
    public var message: String

    /// A device authorization from its parts.
    public init(
        deviceCode: Redacted<String>, userCode: String, verificationURI: String, expiresIn: Int, interval: Int,
        message: String
    ) {
        self.deviceCode = deviceCode
        self.userCode = userCode
        self.verificationURI = verificationURI
        self.expiresIn = expiresIn
        self.interval = interval
        self.message = message
    }
}

/// Starts a device sign-in and polls until the user finished it, declined it, or the code expired.
public struct DeviceCodeFlow: Sendable {
    /// Provider settings and endpoint.
    public let client: OAuthClient
    /// The clock that bounds polling by `expiresIn` (injected so tests need not wait).
    public let now: @Sendable () -> Date
    /// Consecutive network failures tolerated while polling before giving up.
    public var maximumConsecutiveFailures = 3

    /// The `grant_type` for polling (RFC 8628 §3.4).
    public static let grantType = "urn:ietf:params:oauth:grant-type:device_code"

    /// A flow over `client`; `now` defaults to the wall clock.
    public init(client: OAuthClient, now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.now = now
    }

    /// Asks for a device code and user code (RFC 8628 §3.1/§3.2).
    public func start() async throws(OAuthError) -> DeviceAuthorization {
        try client.settings.validate()
        let response = try await client.endpoint.post(
            url: client.settings.deviceCodeURL,
            form: [("client_id", client.settings.clientID), ("scope", client.settings.scopes.joined(separator: " "))])
        guard (200..<300).contains(response.status) else { throw TokenResponseParser.error(for: response) }
        let json = try JSONValue.object(from: response.body)
        guard let deviceCode = json["device_code"]?.string, !deviceCode.isEmpty,
            let userCode = json["user_code"]?.string, !userCode.isEmpty,
            let verification = (json["verification_uri"] ?? json["verification_url"])?.string, !verification.isEmpty
        else {
            throw .invalidResponse(reason: "the device code response lacks device_code, user_code or verification_uri")
        }
        guard let expiresIn = json["expires_in"]?.integer, expiresIn > 0 else {
            throw .invalidResponse(reason: "the device code response has no positive expires_in")
        }
        var interval = json["interval"]?.integer ?? 5
        if interval < 1 { interval = 5 }
        let message =
            json["message"]?.string
            ?? "To sign in, open \(verification) and enter the code \(userCode) to authenticate."
        return DeviceAuthorization(
            deviceCode: Redacted(deviceCode), userCode: userCode, verificationURI: verification,
            expiresIn: min(expiresIn, 3_600), interval: min(interval, 60), message: message)
    }

    /// Polls the token endpoint until the user is done (RFC 8628 §3.4/§3.5).
    ///
    /// Waits `interval` seconds before each poll through `sleep`; `authorization_pending` keeps the pace,
    /// `slow_down` adds 5 seconds for this and every later poll. Stops with a typed error on `expired_token`,
    /// `authorization_declined`/`access_denied` and `bad_verification_code`, and when `expiresIn` has passed.
    public func poll(_ authorization: DeviceAuthorization, sleep: @Sendable (Double) async -> Void)
        async throws(OAuthError) -> TokenResponse
    {
        let grant = [("grant_type", Self.grantType), ("device_code", authorization.deviceCode.revealed)]
        let deadline = now().addingTimeInterval(TimeInterval(authorization.expiresIn))
        var interval = max(authorization.interval, 1)
        // Besides the clock, a count bound: even a clock that never moves cannot make this loop forever.
        var pollsLeft = authorization.expiresIn / interval + 2
        var failures = 0
        while pollsLeft > 0 {
            pollsLeft -= 1
            await sleep(Double(interval))
            if now() >= deadline { throw .deviceCodeExpired }
            let response: HTTPResponse
            do {
                response = try await client.postToken(grant)
            } catch {
                failures += 1
                if error.isTemporary && failures < maximumConsecutiveFailures { continue }
                throw error
            }
            if (200..<300).contains(response.status) {
                return try TokenResponseParser.parseSuccess(response.body)
            }
            guard let body = TokenResponseParser.parseError(response.body) else {
                failures += 1
                if (response.status >= 500 || response.status == 429) && failures < maximumConsecutiveFailures {
                    continue
                }
                throw client.scrubbed(TokenResponseParser.error(for: response), grant: grant)
            }
            failures = 0
            switch body.error {
            case "authorization_pending":
                continue
            case "slow_down":
                interval += 5
            case "expired_token", "code_expired":
                throw .deviceCodeExpired
            case "authorization_declined", "access_denied":
                throw .deviceAuthorizationDeclined
            case "bad_verification_code":
                throw .badVerificationCode
            default:
                throw client.scrubbed(TokenResponseParser.error(for: response), grant: grant)
            }
        }
        throw .deviceCodeExpired
    }
}
