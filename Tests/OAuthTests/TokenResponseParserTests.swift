// OAuthTests: token and error JSON from the token endpoint, well-formed and hostile.
import MailCore
import Testing

@testable import OAuth

@Suite("Token response parsing")
struct TokenResponseParserTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("a Microsoft success body with expires_in as a number")
    func success() throws {
        let body =
            #"{"token_type":"Bearer","scope":"https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send","expires_in":4242,"ext_expires_in":4242,"access_token":"AT-1","refresh_token":"RT-1","id_token":"x"}"#
        let response = try TokenResponseParser.parseSuccess(bytes(body))
        #expect(response.accessToken.revealed == "AT-1")
        #expect(response.refreshToken?.revealed == "RT-1")
        #expect(response.expiresIn == 4242)
        #expect(
            response.scope == "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send")
        #expect(response.tokenType == "Bearer")
    }

    @Test("expires_in as a string, and no refresh token (client credentials)")
    func expiresInStringNoRefresh() throws {
        let response = try TokenResponseParser.parseSuccess(
            bytes(#"{"token_type":"bearer","expires_in":"3599","access_token":"AT-2"}"#))
        #expect(response.expiresIn == 3599)
        #expect(response.refreshToken == nil)
        #expect(response.scope == nil)
    }

    @Test("missing expires_in falls back to one hour; huge values are capped")
    func expiresInDefaults() throws {
        #expect(try TokenResponseParser.parseSuccess(bytes(#"{"access_token":"A"}"#)).expiresIn == 3600)
        #expect(
            try TokenResponseParser.parseSuccess(bytes(#"{"access_token":"A","expires_in":999999999}"#)).expiresIn
                == TokenResponseParser.maximumExpiresIn)
    }

    @Test(
        "malformed and hostile success bodies are rejected",
        arguments: [
            "", "not json", "[]", #""just a string""#, #"{"expires_in":3599}"#, #"{"access_token":""}"#,
            #"{"access_token":42}"#, #"{"access_token":"A","expires_in":true}"#,
            #"{"access_token":"A","expires_in":"12abc"}"#, #"{"access_token":"A","expires_in":-5}"#,
            #"{"access_token":"A","expires_in":0}"#, #"{"access_token":"A","expires_in":1.5}"#,
            #"{"access_token":"A","token_type":"mac"}"#, #"{"access_token":"A","refresh_token":7}"#,
            #"{"access_token":"A","expires_in":"99999999999999999999"}"#,
            String(repeating: "[", count: 5_000),
        ])
    func malformedSuccess(body: String) {
        #expect(throws: OAuthError.self) { try TokenResponseParser.parseSuccess(bytes(body)) }
    }

    @Test("a Microsoft error body yields error, description and AADSTS codes")
    func errorBody() throws {
        let body =
            #"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Trace ID: 0000","error_codes":[70008],"timestamp":"2026-01-01 10:00:00Z","trace_id":"0000","correlation_id":"1111","error_uri":"https://login.microsoftonline.com/error?code=70008"}"#
        let parsed = try #require(TokenResponseParser.parseError(bytes(body)))
        #expect(parsed.error == "invalid_grant")
        #expect(parsed.errorCodes == [70008])
        #expect(parsed.errorDescription.hasPrefix("AADSTS70008:"))
        let error = TokenResponseParser.error(for: HTTPResponse(status: 400, body: bytes(body)))
        guard case .tokenEndpoint(let name, _, let codes, let status) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(name == "invalid_grant")
        #expect(codes == [70008])
        #expect(status == 400)
    }

    @Test("error codes given as strings are read; non-numbers are skipped")
    func errorCodesMixed() throws {
        let parsed = try #require(
            TokenResponseParser.parseError(
                bytes(#"{"error":"invalid_client","error_codes":["7000215",true,"x",50173]}"#)))
        #expect(parsed.errorCodes == [7_000_215, 50173])
        #expect(parsed.errorDescription == "")
    }

    @Test("a non-OAuth error page becomes an http_<status> error")
    func htmlErrorPage() {
        let error = TokenResponseParser.error(for: HTTPResponse(status: 502, body: bytes("<html>Bad gateway</html>")))
        guard case .tokenEndpoint(let name, _, _, let status) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(name == "http_502")
        #expect(status == 502)
        #expect(error.isTemporary)
        #expect(TokenResponseParser.parseError(bytes(#"{"error":""}"#)) == nil)
        #expect(TokenResponseParser.parseError(bytes(#"{"error":5}"#)) == nil)
    }
}
