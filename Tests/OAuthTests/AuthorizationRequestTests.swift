// OAuthTests: the browser URL, form encoding, endpoint URLs and provider settings.
import MailCore
import Testing

@testable import OAuth

@Suite("Authorization request and settings")
struct AuthorizationRequestTests {
    @Test("the authorize URL carries exactly the expected parameters, percent-encoded")
    func authorizeURL() throws {
        let pkce = PKCEPair(verifier: "v", challenge: "E9Melhoa2OwvFrEMTJguCHjoKlUOJSszvuuTIXLpR-M")
        let url = AuthorizationRequest.url(
            settings: .testDelegated, redirectURI: "http://localhost:53682/", pkce: pkce, state: "st/ate+1",
            loginHint: "shared mailbox+x@contoso.com")
        let prefix = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
        #expect(url.hasPrefix(prefix))
        let query = String(url.dropFirst(prefix.count))
        #expect(
            query
                == "client_id=00000000-1111-2222-3333-444444444444&response_type=code"
                + "&redirect_uri=http%3A%2F%2Flocalhost%3A53682%2F&response_mode=query"
                + "&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20https%3A%2F%2Foutlook.office.com%2FPOP.AccessAsUser.All%20https%3A%2F%2Foutlook.office.com%2FSMTP.Send%20offline_access"
                + "&state=st%2Fate%2B1&code_challenge=E9Melhoa2OwvFrEMTJguCHjoKlUOJSszvuuTIXLpR-M"
                + "&code_challenge_method=S256&login_hint=shared%20mailbox%2Bx%40contoso.com")
        // Round trip through the decoder: every parameter once, values intact, nothing secret (no verifier).
        let pairs = try FormEncoding.decode(query)
        #expect(
            pairs.map(\.0) == [
                "client_id", "response_type", "redirect_uri", "response_mode", "scope", "state", "code_challenge",
                "code_challenge_method", "login_hint",
            ])
        #expect(pairs.first { $0.0 == "login_hint" }?.1 == "shared mailbox+x@contoso.com")
        #expect(pairs.first { $0.0 == "state" }?.1 == "st/ate+1")
        #expect(!query.contains("code_verifier"))
    }

    @Test("without a login hint there is no login_hint parameter")
    func noLoginHint() throws {
        let url = AuthorizationRequest.url(
            settings: .testDelegated, redirectURI: "http://localhost:1/", pkce: PKCEPair(verifier: "v", challenge: "c"),
            state: "s")
        #expect(!url.contains("login_hint"))
        #expect(try FormEncoding.decode(String(url.split(separator: "?")[1])).count == 8)
    }

    @Test("percent-encoding keeps only unreserved characters; decoding rejects malformed escapes")
    func formEncoding() throws {
        #expect(FormEncoding.percentEncode("aZ09-._~ /?&=+%ü") == "aZ09-._~%20%2F%3F%26%3D%2B%25%C3%BC")
        #expect(FormEncoding.encode([("a b", "c&d"), ("e", "")]) == "a%20b=c%26d&e=")
        #expect(try FormEncoding.percentDecode("a+b%20c%C3%BC") == "a b cü")
        let pairs = try FormEncoding.decode("a=1&&b&c=x%3Dy")
        #expect(pairs.map(\.0) == ["a", "b", "c"])
        #expect(pairs.map(\.1) == ["1", "", "x=y"])
        #expect(throws: FormDecodingError.malformedEscape) { try FormEncoding.percentDecode("%") }
        #expect(throws: FormDecodingError.malformedEscape) { try FormEncoding.percentDecode("%4") }
        #expect(throws: FormDecodingError.malformedEscape) { try FormEncoding.percentDecode("%zz") }
        #expect(throws: FormDecodingError.notUTF8) { try FormEncoding.percentDecode("%C3%28") }
        #expect(throws: FormDecodingError.tooManyPairs(64)) {
            try FormEncoding.decode(Array(repeating: "a=b", count: 65).joined(separator: "&"))
        }
    }

    @Test("Microsoft 365 defaults: scopes, endpoints, client-credentials scope")
    func microsoftDefaults() throws {
        let settings = OAuthProviderSettings.microsoft365(clientID: "id")
        #expect(settings.authority == "https://login.microsoftonline.com")
        #expect(settings.tenant == "organizations")
        #expect(
            settings.scopes == [
                "https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/POP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send", "offline_access",
            ])
        #expect(settings.tokenURL == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
        #expect(settings.authorizeURL == "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize")
        #expect(settings.deviceCodeURL == "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode")
        #expect(settings.issuesRefreshTokens)
        let app = OAuthProviderSettings.microsoft365(
            clientID: "id", tenant: "contoso.com", clientSecret: Redacted("s"), flow: .clientCredentials,
            authority: "http://127.0.0.1:8080/")
        #expect(app.scopes == ["https://outlook.office365.com/.default"])
        #expect(app.tokenURL == "http://127.0.0.1:8080/contoso.com/oauth2/v2.0/token")
        #expect(!app.issuesRefreshTokens)
        try app.validate()
        try settings.validate()
    }

    @Test("unusable settings are refused with a sentence")
    func validation() {
        var settings = OAuthProviderSettings.microsoft365(clientID: "id", flow: .clientCredentials)
        #expect(throws: OAuthError.self) { try settings.validate() }  // no secret
        settings.clientSecret = Redacted("s")
        #expect(throws: OAuthError.self) { try settings.validate() }  // tenant "organizations"
        settings.tenant = "contoso.com"
        #expect(throws: Never.self) { try settings.validate() }
        settings.tenant = "evil/../x"
        #expect(throws: OAuthError.self) { try settings.validate() }
        let empty = OAuthProviderSettings.microsoft365(clientID: "")
        #expect(throws: OAuthError.self) { try empty.validate() }
        let noScopes = OAuthProviderSettings.microsoft365(clientID: "x", scopes: [])
        #expect(throws: OAuthError.self) { try noScopes.validate() }
        let badAuthority = OAuthProviderSettings.microsoft365(clientID: "x", authority: "ftp://login")
        #expect(throws: OAuthError.self) { try badAuthority.validate() }
    }

    @Test("endpoint URLs: https only, loopback http only when allowed, no user info or fragments")
    func endpointURL() throws {
        let url = try EndpointURL(
            parsing: "https://login.microsoftonline.com/t/oauth2/v2.0/token", allowInsecureLoopback: false)
        #expect(url.host == "login.microsoftonline.com")
        #expect(url.port == 443)
        #expect(url.target == "/t/oauth2/v2.0/token")
        #expect(url.hostHeader == "login.microsoftonline.com")
        let local = try EndpointURL(parsing: "http://127.0.0.1:8080?x=1", allowInsecureLoopback: true)
        #expect(local.port == 8080)
        #expect(local.target == "/?x=1")
        #expect(local.hostHeader == "127.0.0.1:8080")
        let v6 = try EndpointURL(parsing: "https://[::1]:8443/a", allowInsecureLoopback: false)
        #expect(v6.host == "::1")
        #expect(v6.hostHeader == "[::1]:8443")
        #expect(throws: OAuthError.insecureEndpoint(url: "http://127.0.0.1/x")) {
            try EndpointURL(parsing: "http://127.0.0.1/x", allowInsecureLoopback: false)
        }
        #expect(throws: OAuthError.insecureEndpoint(url: "http://example.com/x")) {
            try EndpointURL(parsing: "http://example.com/x", allowInsecureLoopback: true)
        }
        for bad in [
            "login.microsoftonline.com/x", "https://", "https://user:pw@host/x", "https://host/x#frag",
            "https://host:0/", "https://host:99999/", "https://host:x/", "https://host /x", "gopher://host/",
            "https://[::1/x", "https://:443/",
        ] {
            #expect(throws: OAuthError.self, "\(bad)") { try EndpointURL(parsing: bad, allowInsecureLoopback: true) }
        }
    }
}
