// CryptoTests: constant-time compare, secure random bytes and Base64URL.

import MailCore
import Testing

@testable import Crypto

@Suite struct ConstantTimeEqualTests {
    @Test func comparesContentAndLength() {
        #expect(constantTimeEqual([], []))
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEqual([0, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!constantTimeEqual([], [0]))
        let big = SecureRandom.bytes(4096)
        var changed = big
        changed[2048] ^= 0xFF
        #expect(constantTimeEqual(big, big))
        #expect(!constantTimeEqual(big, changed))
    }
}

@Suite struct SecureRandomTests {
    @Test func givesTheRequestedCountAndFreshBytes() {
        #expect(SecureRandom.bytes(0).isEmpty)
        #expect(SecureRandom.bytes(1).count == 1)
        let first = SecureRandom.bytes(32)
        let second = SecureRandom.bytes(32)
        #expect(first.count == 32 && second.count == 32)
        #expect(first != second)
        #expect(first != [UInt8](repeating: 0, count: 32))
    }
}

@Suite struct Base64URLTests {
    /// RFC 4648 §10 vectors (the url alphabet agrees on these), without padding.
    @Test(arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test func usesTheURLSafeAlphabet() {
        #expect(Base64URL.encode([0xFB, 0xFF, 0xBF]) == "-_-_")
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_-_") == [0xFB, 0xFF, 0xBF])
        #expect(Base64Codec.standard.encodeString([0xFB, 0xFF, 0xBF], padding: .optional) == "+/+/")
    }

    @Test func roundTripsEveryLengthWithoutPadding() {
        for count in 0...64 {
            let bytes = SecureRandom.bytes(count)
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(text.utf8.count == (count * 4 + 2) / 3)
            #expect(Base64URL.decode(text) == bytes)
        }
    }

    @Test func acceptsCorrectPaddingOnly() {
        #expect(Base64URL.decode("Zg==") == Array("f".utf8))
        #expect(Base64URL.decode("Zm8=") == Array("fo".utf8))
        #expect(Base64URL.decode("Zg=") == nil)
        #expect(Base64URL.decode("Zg===") == nil)
        #expect(Base64URL.decode("Z=g=") == nil)
        #expect(Base64URL.decode("====") == nil)
        #expect(Base64URL.decode("Zm9v====") == nil)
    }

    @Test(arguments: ["Z", "Zm9vY", "Zh", "Zm9", "Zm9v+", "Zm9v/w", "Zm 9v", "Zm9v\n", "Zm9v\0", "Zm9vä"])
    func malformedInputIsRefused(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }
}
