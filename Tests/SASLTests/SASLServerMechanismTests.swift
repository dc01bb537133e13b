// SASLTests: server-side PLAIN and LOGIN step machines, including cancel, bad base64 and hostile sizes.
import Foundation
import MailCore
import Testing

@testable import SASL

private func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
private func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

@Suite struct PlainServerTests {
    @Test func initialResponseWithEmptyAuthzid() {
        var plain = SASLServerMechanism(kind: .plain)
        let step = plain.start(initialResponse: b64("\0alice@contoso.com\0s3cret"))
        #expect(step == .credentials(username: "alice@contoso.com", password: Redacted("s3cret")))
        #expect(plain.state == .finished)
    }

    @Test func authzidEqualToAuthcidIsAccepted() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: b64("bob\0bob\0pw")) == .credentials(username: "bob", password: Redacted("pw")))
    }

    @Test func otherAuthzidIsRejected() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: b64("admin\0bob\0pw")) == .failed(.authorizationIdentityNotAllowed))
    }

    @Test func emptyChallengeForm() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: nil) == .challenge(""))
        #expect(plain.state == .awaitingPlainMessage)
        #expect(plain.respond(b64("\0carol\0pässwörd")) == .credentials(username: "carol", password: Redacted("pässwörd")))
    }

    @Test func utf8UserName() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: b64("\0jürgen@müller.de\0x")) == .credentials(username: "jürgen@müller.de", password: Redacted("x")))
    }

    @Test func cancelWithStar() {
        var plain = SASLServerMechanism(kind: .plain)
        _ = plain.start(initialResponse: nil)
        #expect(plain.respond("*") == .cancelled)
        #expect(plain.respond("*") == .failed(.unexpectedStep))
    }

    @Test(arguments: ["not base64!", "AGFsaWNlAHB3=", "AGFsaWNlAHB3===", "AGFs aWNl", "====", "\u{0}"])
    func badBase64(line: String) {
        var plain = SASLServerMechanism(kind: .plain)
        _ = plain.start(initialResponse: nil)
        let step = plain.respond(line)
        #expect(step == .failed(.invalidBase64) || step == .failed(.malformedPlain))
        #expect(plain.state == .finished)
    }

    @Test func garbageIsInvalidBase64() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: "%%%%") == .failed(.invalidBase64))
    }

    @Test(arguments: [
        ("alice\0pw", SASLError.malformedPlain),
        ("\0alice\0", SASLError.emptyOrInvalidCredential),
        ("\0\0pw", SASLError.emptyOrInvalidCredential),
        ("\0a\0pw\0x", SASLError.emptyOrInvalidCredential),
        ("", SASLError.malformedPlain),
    ])
    func malformedMessages(message: String, error: SASLError) {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: message.isEmpty ? "=" : b64(message)) == .failed(error))
    }

    @Test func invalidUTF8IsRejected() {
        var plain = SASLServerMechanism(kind: .plain)
        #expect(plain.start(initialResponse: b64([0, 0xC3, 0x28, 0, 0x70])) == .failed(.invalidUTF8))
    }

    @Test func overlongResponseIsRejectedBeforeDecoding() {
        var plain = SASLServerMechanism(kind: .plain, maximumResponseLength: 16)
        _ = plain.start(initialResponse: nil)
        #expect(plain.respond(String(repeating: "A", count: 20)) == .failed(.responseTooLong(actualCount: 20, maximumCount: 16)))
    }

    @Test func defaultBoundIsTheLimitsTable() {
        var plain = SASLServerMechanism(kind: .plain)
        _ = plain.start(initialResponse: nil)
        let count = Limits.standard.saslResponse + 4
        #expect(plain.respond(String(repeating: "A", count: count)) == .failed(.responseTooLong(actualCount: count, maximumCount: Limits.standard.saslResponse)))
    }

    @Test func passwordNeverPrints() {
        var plain = SASLServerMechanism(kind: .plain)
        let step = plain.start(initialResponse: b64("\0u\0hunter2"))
        #expect(!"\(step)".contains("hunter2"))
    }
}

@Suite struct LoginServerTests {
    @Test func twoChallenges() {
        var login = SASLServerMechanism(kind: .login)
        #expect(login.start(initialResponse: nil) == .challenge("VXNlcm5hbWU6"))
        #expect(Data(base64Encoded: SASLServerMechanism.usernameChallenge) == Data("Username:".utf8))
        #expect(login.respond(b64("dave@contoso.com")) == .challenge("UGFzc3dvcmQ6"))
        #expect(Data(base64Encoded: SASLServerMechanism.passwordChallenge) == Data("Password:".utf8))
        #expect(login.respond(b64("pw 123")) == .credentials(username: "dave@contoso.com", password: Redacted("pw 123")))
        #expect(login.state == .finished)
    }

    @Test func initialResponseCarriesUserName() {
        var login = SASLServerMechanism(kind: .login)
        #expect(login.start(initialResponse: b64("erin")) == .challenge("UGFzc3dvcmQ6"))
        #expect(login.respond(b64("pw")) == .credentials(username: "erin", password: Redacted("pw")))
    }

    @Test func cancelAtPassword() {
        var login = SASLServerMechanism(kind: .login)
        _ = login.start(initialResponse: nil)
        _ = login.respond(b64("erin"))
        #expect(login.respond("*") == .cancelled)
    }

    @Test func emptyUserNameFails() {
        var login = SASLServerMechanism(kind: .login)
        _ = login.start(initialResponse: nil)
        #expect(login.respond("") == .failed(.emptyOrInvalidCredential))
    }

    @Test func nulInPasswordFails() {
        var login = SASLServerMechanism(kind: .login)
        _ = login.start(initialResponse: nil)
        _ = login.respond(b64("u"))
        #expect(login.respond(b64("p\0w")) == .failed(.emptyOrInvalidCredential))
    }

    @Test func respondBeforeStartFails() {
        var login = SASLServerMechanism(kind: .login)
        #expect(login.respond(b64("u")) == .failed(.unexpectedStep))
    }

    @Test func startTwiceFails() {
        var login = SASLServerMechanism(kind: .login)
        _ = login.start(initialResponse: nil)
        #expect(login.start(initialResponse: nil) == .failed(.unexpectedStep))
    }

    @Test(arguments: ["plain", "Login", "LOGIN", "PLAIN"])
    func namesAreCaseInsensitive(name: String) {
        #expect(SASLServerMechanism(name: name) != nil)
    }

    @Test(arguments: ["XOAUTH2", "CRAM-MD5", "", "PLAIN "])
    func unknownNamesAreNil(name: String) {
        #expect(SASLServerMechanism(name: name) == nil)
    }
}

@Suite struct SASLErrorTests {
    @Test(arguments: [
        SASLError.responseTooLong(actualCount: 2, maximumCount: 1), .invalidBase64, .invalidUTF8, .malformedPlain,
        .authorizationIdentityNotAllowed, .emptyOrInvalidCredential, .forbiddenCharacter(field: "user name"), .unexpectedStep,
    ])
    func descriptionsAreSentences(error: SASLError) {
        #expect(error.description.hasSuffix("."))
        #expect(error.description.count > 20)
    }
}
