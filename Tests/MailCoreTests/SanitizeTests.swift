import Testing
@testable import MailCore

@Suite struct SanitizeTests {
    @Test func controlBytesBecomeQuestionMarks() {
        #expect(sanitizeForLog([0x41, 0x0D, 0x0A, 0x1B, 0x42]) == "A???B")
    }

    @Test func longTextIsCut() {
        let text = String(repeating: "x", count: 500)
        let out = sanitizeForLog(text)
        #expect(out.count == 161)
        #expect(out.hasSuffix("…"))
    }

    @Test func redactedNeverPrintsItsValue() {
        let secret = Redacted("hunter2")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(secret.revealed == "hunter2")
    }

    @Test func redactedHidesItselfFromDumpAndMirror() {
        struct Login { var user = "alice"; var password = Redacted("hunter2") }
        var dumped = ""
        dump(Login(), to: &dumped)
        #expect(!dumped.contains("hunter2"), "\(dumped)")
        #expect(dumped.contains("<redacted>"))
        #expect(Mirror(reflecting: Redacted("hunter2")).children.isEmpty)
        var direct = ""
        dump(Redacted(["token-abc"]), to: &direct)
        #expect(!direct.contains("token-abc"), "\(direct)")
    }
}
