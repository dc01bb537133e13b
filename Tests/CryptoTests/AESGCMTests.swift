// CryptoTests: AES-256-GCM sealing, known answers and tamper detection.

import Crypto
import Testing

@Suite struct AESGCMTests {
    let key = SecureRandom.bytes(32)

    @Test(arguments: [0, 1, 15, 16, 17, 1000, 70_000])
    func roundTripKeepsPlaintextAndHasNonceAndTag(count: Int) throws {
        let plaintext = SecureRandom.bytes(count)
        let sealed = try AESGCM.seal(plaintext, key: key, associatedData: Array("account:1".utf8))
        #expect(sealed.count == 12 + count + 16)
        if count >= 16 { #expect(Array(sealed[12..<28]) != Array(plaintext[0..<16])) }
        #expect(try AESGCM.open(sealed, key: key, associatedData: Array("account:1".utf8)) == plaintext)
    }

    @Test func twoSealsOfTheSamePlaintextDiffer() throws {
        let plaintext = Array("refresh-token".utf8)
        let first = try AESGCM.seal(plaintext, key: key)
        let second = try AESGCM.seal(plaintext, key: key)
        #expect(first != second)
        #expect(Array(first.prefix(12)) != Array(second.prefix(12)))
    }

    /// GCM specification (McGrew & Viega) test cases 13 and 14: zero key, zero nonce.
    @Test func opensPublishedGCMVectors() throws {
        let zeroKey = [UInt8](repeating: 0, count: 32)
        let nonce = [UInt8](repeating: 0, count: 12)
        let case13 = nonce + hexBytes("530f8afbc74536b9a963b4f1c4cb738b")
        #expect(try AESGCM.open(case13, key: zeroKey) == [])
        let case14 = nonce + hexBytes("cea7403d4d606b6e074ec5d3baf39d18") + hexBytes("d0d1c8a799996bf0265b98b5d48ab919")
        #expect(try AESGCM.open(case14, key: zeroKey) == [UInt8](repeating: 0, count: 16))
    }

    @Test func everyFlippedByteIsDetected() throws {
        let sealed = try AESGCM.seal(Array("a token worth protecting".utf8), key: key, associatedData: [7])
        for index in sealed.indices {  // nonce, ciphertext and tag
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(throws: CryptoError.authenticationFailed) {
                try AESGCM.open(tampered, key: key, associatedData: [7])
            }
        }
    }

    @Test func truncatedOrExtendedInputIsDetected() throws {
        let sealed = try AESGCM.seal(Array("abcdef".utf8), key: key)
        #expect(throws: CryptoError.authenticationFailed) { try AESGCM.open(Array(sealed.dropLast()), key: key) }
        #expect(throws: CryptoError.authenticationFailed) { try AESGCM.open(sealed + [0], key: key) }
        #expect(throws: CryptoError.sealedMessageTooShort(actualCount: 27, minimumCount: 28)) {
            try AESGCM.open(Array(sealed.prefix(27)), key: key)
        }
        #expect(throws: CryptoError.sealedMessageTooShort(actualCount: 0, minimumCount: 28)) {
            try AESGCM.open([], key: key)
        }
    }

    @Test func wrongAssociatedDataOrKeyIsDetected() throws {
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, associatedData: Array("alice".utf8))
        #expect(throws: CryptoError.authenticationFailed) {
            try AESGCM.open(sealed, key: key, associatedData: Array("bob".utf8))
        }
        #expect(throws: CryptoError.authenticationFailed) { try AESGCM.open(sealed, key: key) }
        var otherKey = key
        otherKey[31] ^= 0x80
        #expect(throws: CryptoError.authenticationFailed) {
            try AESGCM.open(sealed, key: otherKey, associatedData: Array("alice".utf8))
        }
    }

    @Test(arguments: [0, 16, 31, 33, 64])
    func wrongKeyLengthIsRefused(count: Int) {
        let badKey = [UInt8](repeating: 1, count: count)
        #expect(throws: CryptoError.invalidKeyLength(actualCount: count, expectedCount: 32)) {
            try AESGCM.seal([1, 2, 3], key: badKey)
        }
        #expect(throws: CryptoError.invalidKeyLength(actualCount: count, expectedCount: 32)) {
            try AESGCM.open([UInt8](repeating: 0, count: 40), key: badKey)
        }
    }

    @Test func errorDescriptionsAreSentencesWithoutSecrets() {
        let text = CryptoError.invalidKeyLength(actualCount: 5, expectedCount: 32).description
        #expect(text.contains("5") && text.contains("32"))
        #expect(CryptoError.authenticationFailed.description.hasSuffix("."))
    }
}
