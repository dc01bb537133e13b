// OAuth: reading the token endpoint's JSON, success (RFC 6749 §5.1) and error (§5.2, with Microsoft's extras).
public import Foundation
public import MailCore

/// A successful token response.
public struct TokenResponse: Sendable, Equatable {
    /// The bearer token for XOAUTH2.
    public var accessToken: Redacted<String>
    /// Present for delegated flows with `offline_access`; Microsoft rotates it on every refresh.
    public var refreshToken: Redacted<String>?
    /// Seconds until the access token expires (Microsoft: 60–90 minutes; never assumed, 3600 only if absent).
    public var expiresIn: Int
    /// The scopes actually granted, space-separated.
    public var scope: String?
    /// Always `Bearer` from Microsoft.
    public var tokenType: String

    /// A response from its parts.
    public init(
        accessToken: Redacted<String>, refreshToken: Redacted<String>?, expiresIn: Int, scope: String?,
        tokenType: String = "Bearer"
    ) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
        self.scope = scope
        self.tokenType = tokenType
    }

    /// What to store: keeps `previousRefreshToken` when the response carries none (client credentials never do).
    public func storedToken(issuedAt now: Date, previousRefreshToken: Redacted<String>? = nil) -> StoredToken {
        StoredToken(
            accessToken: accessToken, refreshToken: refreshToken ?? previousRefreshToken,
            expiresAt: now.addingTimeInterval(TimeInterval(expiresIn)), scope: scope, needsReconnect: false,
            issuedAt: now)
    }
}

/// Microsoft's error body: `{"error": "...", "error_description": "...", "error_codes": [..], ...}`.
public struct TokenErrorBody: Sendable, Equatable {
    /// The RFC 6749 error code, e.g. `invalid_grant`, `authorization_pending`.
    public var error: String
    /// Human text from Microsoft (includes AADSTS number, trace and correlation ids).
    public var errorDescription: String
    /// AADSTS numbers, e.g. 70008 (refresh token expired), 50173 (grant revoked).
    public var errorCodes: [Int]
}

/// Turns token-endpoint bodies into typed values.
public enum TokenResponseParser {
    /// Seconds assumed when a success response has no `expires_in` (email-oauth2-proxy does the same).
    public static let defaultExpiresIn = 3_600
    /// Longest lifetime believed from a response (Microsoft's CAE tokens reach 28 hours; this is generous).
    public static let maximumExpiresIn = 7 * 24 * 3_600

    /// Reads a success body. `expires_in` may be a number or a numeric string; `refresh_token` may be absent.
    public static func parseSuccess(_ body: [UInt8]) throws(OAuthError) -> TokenResponse {
        let json = try JSONValue.object(from: body)
        guard let access = json["access_token"]?.string, !access.isEmpty else {
            throw .invalidResponse(reason: "no access_token in the token response")
        }
        let tokenType = json["token_type"]?.string ?? "Bearer"
        guard tokenType.lowercased() == "bearer" else {
            throw .invalidResponse(reason: "token_type \(tokenType) is not Bearer")
        }
        var expiresIn = defaultExpiresIn
        if let raw = json["expires_in"] {
            guard let value = raw.integer, value > 0 else {
                throw .invalidResponse(reason: "expires_in is not a positive number")
            }
            expiresIn = min(value, maximumExpiresIn)
        }
        var refresh: Redacted<String>?
        if let value = json["refresh_token"], value != .null {
            guard let text = value.string else { throw .invalidResponse(reason: "refresh_token is not a string") }
            if !text.isEmpty { refresh = Redacted(text) }
        }
        let scope = json["scope"]?.string
        return TokenResponse(
            accessToken: Redacted(access), refreshToken: refresh, expiresIn: expiresIn, scope: scope,
            tokenType: tokenType)
    }

    /// Reads an error body; `nil` when the body is not an OAuth error object (an HTML page from a proxy).
    public static func parseError(_ body: [UInt8]) -> TokenErrorBody? {
        guard let json = try? JSONValue.object(from: body), let error = json["error"]?.string, !error.isEmpty else {
            return nil
        }
        let description = json["error_description"]?.string ?? ""
        var codes: [Int] = []
        if case .array(let list)? = json["error_codes"] {
            codes = list.prefix(16).compactMap(\.integer)
        }
        return TokenErrorBody(error: error, errorDescription: description, errorCodes: codes)
    }

    /// The error for a non-2xx response: Microsoft's JSON when present, else the bare status.
    static func error(for response: HTTPResponse) -> OAuthError {
        if let body = parseError(response.body) {
            return .tokenEndpoint(
                error: body.error, description: body.errorDescription, codes: body.errorCodes, status: response.status)
        }
        return .tokenEndpoint(
            error: "http_\(response.status)", description: "the response carried no OAuth error object", codes: [],
            status: response.status)
    }
}
