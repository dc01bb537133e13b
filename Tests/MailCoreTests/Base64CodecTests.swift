import Testing

@testable import MailCore

@Suite struct Base64CodecTests {
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64Codec.standard.encodeString(Array(plain.utf8), padding: .required) == encoded)
        #expect(Base64Codec.standard.decode(encoded, padding: .required) == Array(plain.utf8))
        #expect(Base64Codec.standard.decode(encoded, padding: .optional) == Array(plain.utf8))
    }

    @Test func paddingRules() {
        #expect(Base64Codec.standard.decode("Zg", padding: .required) == nil)
        #expect(Base64Codec.standard.decode("Zg", padding: .optional) == [0x66])
        #expect(Base64Codec.standard.decode("Zg==", padding: .forbidden) == nil)
        #expect(Base64Codec.standard.decode("Zg", padding: .forbidden) == [0x66])
        #expect(Base64Codec.standard.encodeString([0x66], padding: .forbidden) == "Zg")
    }

    @Test(arguments: ["Zh==", "Z===", "====", "Zg=a", "Z", "Zm9v!", "Zm9\u{0}", "Zg==Zg==", "Zm 9v"])
    func refusesNonCanonicalOrForeignInput(text: String) {
        #expect(Base64Codec.standard.decode(text, padding: .optional) == nil)
    }

    @Test func alphabetsDifferOnlyInTheLastTwo() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64Codec.standard.encodeString(bytes, padding: .required) == "+/+/")
        #expect(Base64Codec.url.encodeString(bytes, padding: .required) == "-_-_")
        #expect(Base64Codec.imapModified.encodeString(bytes, padding: .required) == "+,+,")
        #expect(Base64Codec.imapModified.value(of: UInt8(ascii: ",")) == 63)
        #expect(Base64Codec.imapModified.value(of: UInt8(ascii: "/")) == nil)
    }

    @Test func roundTripsRandomBytes() {
        var generator = SystemRandomNumberGenerator()
        for count in 0..<200 {
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for padding in [Base64Codec.Padding.required, .optional, .forbidden] {
                let text = Base64Codec.standard.encode(bytes, padding: padding)
                #expect(Base64Codec.standard.decode(text, padding: padding) == bytes)
            }
        }
    }
}
