// OAuthTests: what the loopback listener makes of each request it receives.
import MailCore
import Testing

@testable import OAuth

@Suite("Redirect decisions")
struct RedirectDecisionTests {
    func decide(_ target: String, method: String = "GET", state: String = "S-123") -> RedirectDecision {
        RedirectDecision.decide(
            head: HTTPRequestHead(method: method, target: target, headers: []), expectedState: state)
    }

    @Test("a code with the right state ends the wait with the code")
    func success() throws {
        let decision = decide("/?code=\(FakeSecrets.code)&state=S-123&session_state=x")
        #expect(decision.status == "200 OK")
        #expect(decision.message == "MailGate: sign-in complete. You can close this window.")
        let redirect = try #require(try decision.outcome?.get())
        #expect(redirect.code.revealed == FakeSecrets.code)
        #expect(!decision.message.contains(FakeSecrets.code))
    }

    @Test("a wrong or missing state is a state mismatch, also on an error redirect")
    func stateMismatch() {
        for target in ["/?code=c&state=S-124", "/?code=c", "/?code=c&state=S-12", "/?error=access_denied&state=x"] {
            let decision = decide(target)
            #expect(throws: OAuthError.stateMismatch) { try decision.outcome?.get() }
        }
    }

    @Test("an error redirect becomes authorizationDenied with Microsoft's description")
    func errorRedirect() {
        let decision = decide(
            "/?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent.&state=S-123")
        #expect(
            throws: OAuthError.authorizationDenied(
                error: "access_denied", description: "AADSTS65004: User declined to consent.")
        ) {
            try decision.outcome?.get()
        }
        #expect(decision.message.contains("User declined to consent"))
    }

    @Test("other paths, methods and non-redirect queries are answered and ignored")
    func ignored() {
        #expect(decide("/favicon.ico").status == "404 Not Found")
        #expect(decide("/favicon.ico").outcome == nil)
        #expect(decide("/?code=c&state=S-123", method: "POST").status == "405 Method Not Allowed")
        #expect(decide("/").outcome == nil)
        #expect(decide("/?foo=bar").outcome == nil)
        #expect(decide("/?code=%zz&state=S-123").status == "400 Bad Request")
        #expect(decide("/?code=%zz&state=S-123").outcome == nil)
    }

    @Test("an empty code is refused")
    func emptyCode() {
        #expect(throws: OAuthError.self) { try decide("/?code=&state=S-123").outcome?.get() }
    }

    @Test("state comparison is exact")
    func compare() {
        #expect(RedirectDecision.stateMatches("abc", "abc"))
        #expect(!RedirectDecision.stateMatches("abc", "abd"))
        #expect(!RedirectDecision.stateMatches("abc", "abcd"))
        #expect(!RedirectDecision.stateMatches("", "a"))
    }
}
