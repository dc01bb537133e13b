// OAuthTests: the forms each grant sends, and how the client reads what comes back.
import MailCore
import Testing

@testable import OAuth

@Suite("OAuth client grants")
struct OAuthClientTests {
    @Test("code exchange sends the code, verifier and redirect URI; a public client sends no secret")
    func exchangeCode() async throws {
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access1, refresh: FakeSecrets.refresh1)
        ])
        let client = OAuthClient(settings: .testDelegated, endpoint: endpoint)
        let response = try await client.exchangeCode(
            code: Redacted(FakeSecrets.code), verifier: "verifier-123", redirectURI: "http://localhost:4000/")
        #expect(response.accessToken.revealed == FakeSecrets.access1)
        #expect(response.refreshToken?.revealed == FakeSecrets.refresh1)
        let request = try #require(await endpoint.requests.first)
        #expect(request.form.map(\.0) == ["client_id", "grant_type", "code", "redirect_uri", "code_verifier", "scope"])
        #expect(request.value("grant_type") == "authorization_code")
        #expect(request.value("code") == FakeSecrets.code)
        #expect(request.value("code_verifier") == "verifier-123")
        #expect(request.value("redirect_uri") == "http://localhost:4000/")
        #expect(request.value("client_secret") == nil)
    }

    @Test("a confidential client adds its secret to a refresh")
    func confidentialRefresh() async throws {
        var settings = OAuthProviderSettings.testDelegated
        settings.clientSecret = Redacted(FakeSecrets.secret)
        let endpoint = FakeTokenEndpoint([
            FakeTokenEndpoint.token(access: FakeSecrets.access2, refresh: FakeSecrets.refresh2)
        ])
        let client = OAuthClient(settings: settings, endpoint: endpoint)
        _ = try await client.refresh(refreshToken: Redacted(FakeSecrets.refresh1))
        let request = try #require(await endpoint.requests.first)
        #expect(request.value("grant_type") == "refresh_token")
        #expect(request.value("refresh_token") == FakeSecrets.refresh1)
        #expect(request.value("client_secret") == FakeSecrets.secret)
        #expect(request.value("scope")?.contains("offline_access") == true)
    }

    @Test("an error status with Microsoft's body becomes tokenEndpoint; invalid settings send nothing")
    func errors() async throws {
        let endpoint = FakeTokenEndpoint([FakeTokenEndpoint.oauthError(400, "invalid_scope", codes: [70011])])
        let client = OAuthClient(settings: .testDelegated, endpoint: endpoint)
        await #expect(throws: OAuthError.self) {
            try await client.exchangeCode(code: Redacted("c"), verifier: "v", redirectURI: "http://localhost/")
        }
        let unusable = OAuthClient(
            settings: .microsoft365(clientID: "id", flow: .clientCredentials), endpoint: endpoint)
        await #expect(throws: OAuthError.self) { try await unusable.clientCredentials() }
        #expect(await endpoint.requestCount == 1)
    }
}
