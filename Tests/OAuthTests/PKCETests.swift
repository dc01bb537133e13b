// OAuthTests: PKCE (RFC 7636) and the state value.
import Crypto
import Testing

@testable import OAuth

@Suite("PKCE and state")
struct PKCETests {
    static let base64URLAlphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    @Test("RFC 7636 appendix B: the example octets, verifier and S256 challenge")
    func appendixB() {
        let octets: [UInt8] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191,
            240, 91, 88, 5, 88, 83, 132, 141, 121,
        ]
        #expect(Base64URL.encode(octets) == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        #expect(
            PKCE.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
                == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test("generated pairs: 43-character base64url verifiers, matching challenges, all different")
    func generated() {
        var verifiers = Set<String>()
        for _ in 0..<200 {
            let pair = PKCE.generate()
            #expect(pair.verifier.count == 43)
            #expect((43...128).contains(pair.verifier.count))
            #expect(pair.verifier.allSatisfy(Self.base64URLAlphabet.contains))
            #expect(pair.challenge == PKCE.challenge(for: pair.verifier))
            #expect(pair.challenge.count == 43)
            #expect(pair.challenge != pair.verifier)
            verifiers.insert(pair.verifier)
        }
        #expect(verifiers.count == 200)
    }

    @Test("state: 22 base64url characters (128 bits), never repeated, bits spread")
    func state() {
        var seen = Set<String>()
        var characters = Set<Character>()
        for _ in 0..<500 {
            let state = OAuthState.generate()
            #expect(state.count == 22)
            #expect(state.allSatisfy(Self.base64URLAlphabet.contains))
            seen.insert(state)
            characters.formUnion(state)
        }
        #expect(seen.count == 500)
        // 11 000 random characters from a 64-letter alphabet use nearly all of it.
        #expect(characters.count > 60)
    }
}
