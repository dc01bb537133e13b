// SASLTests: client mechanisms XOAUTH2 and OAUTHBEARER against published vectors and hostile input.
import Foundation
import MailCore
import Testing

@testable import SASL

@Suite struct XOAuth2Tests {
    @Test func microsoftDocumentedVector() throws {
        let response = try XOAuth2.initialResponse(
            user: "test@contoso.onmicrosoft.com", accessToken: Redacted("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"))
        #expect(
            response.revealed
                == "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==")
    }

    @Test func rawResponseIsTheMessageBeforeBase64() throws {
        let raw = try XOAuth2.rawResponse(user: "a@b.example", accessToken: Redacted("tok"))
        #expect(raw.revealed == Array("user=a@b.example\u{1}auth=Bearer tok\u{1}\u{1}".utf8))
        #expect(throws: SASLError.self) { try XOAuth2.rawResponse(user: "a\u{1}@b", accessToken: Redacted("tok")) }
    }

    @Test func responseIsRedactedWhenPrinted() throws {
        let response = try XOAuth2.initialResponse(user: "a@b.example", accessToken: Redacted("tok"))
        #expect("\(response)" == "<redacted>")
        #expect(!String(describing: response).contains("dXNl"))
    }

    @Test(arguments: ["a\u{1}b@example.com", "a@example.com\r\n", "a\n@example.com"])
    func refusesSeparatorsInUser(user: String) {
        #expect(throws: SASLError.forbiddenCharacter(field: "user name")) {
            _ = try XOAuth2.initialResponse(user: user, accessToken: Redacted("token"))
        }
    }

    @Test(arguments: ["tok\u{1}en", "token\r", "tok\nen"])
    func refusesSeparatorsInToken(token: String) {
        #expect(throws: SASLError.forbiddenCharacter(field: "access token")) {
            _ = try XOAuth2.initialResponse(user: "a@example.com", accessToken: Redacted(token))
        }
    }

    @Test func matchesFoundationBase64ForLongToken() throws {
        let token = String(repeating: "eyJ0eXAiOiJKV1Qi.", count: 200)
        let response = try XOAuth2.initialResponse(user: "shared@contoso.com", accessToken: Redacted(token))
        let expected = Data("user=shared@contoso.com\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8).base64EncodedString()
        #expect(response.revealed == expected)
    }
}

@Suite struct OAuthBearerTests {
    @Test func initialResponseFollowsRFC7628() throws {
        let response = try OAuthBearer.initialResponse(
            user: "user@example.com", host: "server.example.com", port: 587, accessToken: Redacted("vF9dft4qmT"))
        let decoded = try #require(Data(base64Encoded: response.revealed))
        #expect(
            String(decoding: decoded, as: UTF8.self)
                == "n,a=user@example.com,\u{1}host=server.example.com\u{1}port=587\u{1}auth=Bearer vF9dft4qmT\u{1}\u{1}")
    }

    @Test func escapesCommaAndEqualsInAuthzid() throws {
        let response = try OAuthBearer.initialResponse(
            user: "a,b=c@example.com", host: "h", port: 993, accessToken: Redacted("t"))
        let decoded = String(decoding: try #require(Data(base64Encoded: response.revealed)), as: UTF8.self)
        #expect(decoded.hasPrefix("n,a=a=2Cb=3Dc@example.com,\u{1}"))
    }

    @Test func errorAcknowledgementIsBase64OfControlA() {
        #expect(OAuthBearer.errorAcknowledgement == "AQ==")
        #expect(Data(base64Encoded: OAuthBearer.errorAcknowledgement) == Data([1]))
    }

    @Test func refusesSeparatorInHost() {
        #expect(throws: SASLError.forbiddenCharacter(field: "host name")) {
            _ = try OAuthBearer.initialResponse(user: "u", host: "h\u{1}x", port: 1, accessToken: Redacted("t"))
        }
    }
}

@Suite struct Base64Tests {
    @Test func roundTripsEveryLengthAgainstFoundation() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<64 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let encoded = Base64Codec.standard.encodeString(bytes, padding: .required)
            #expect(encoded == Data(bytes).base64EncodedString())
            #expect(Base64Codec.standard.decode(encoded, padding: .required) == bytes)
        }
    }

    @Test(arguments: ["A", "AB", "ABC", "A===", "AB=C", "AB==AB==", "ZmZm\n", "Zm9v!A==", "Zm9=", "Zg=A", "Zh==", " Zm9v"])
    func rejectsMalformed(text: String) {
        #expect(Base64Codec.standard.decode(text, padding: .required) == nil)
    }

    @Test func decodesEmptyString() {
        #expect(Base64Codec.standard.decode("", padding: .required) == [])
    }
}
