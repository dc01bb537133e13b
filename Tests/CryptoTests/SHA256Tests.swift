// CryptoTests: SHA-256 and HMAC-SHA-256 against published vectors.

import Crypto
import Testing

@Suite struct SHA256Tests {
    @Test func emptyInputMatchesFIPSVector() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash([]).count == 32)
    }

    @Test func abcMatchesFIPSVector() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hash(Array("abc".utf8))
                == hexBytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    @Test func twoBlockMessageMatchesFIPSVector() {
        let message = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(message) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// One million "a" (1 MB), streamed in uneven chunks, equals the one-shot digest and the published vector.
    @Test func millionAStreamedEqualsOneShot() {
        let message = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        #expect(SHA256.hex(message) == expected)

        let hasher = SHA256Hasher()
        var offset = 0
        var chunk = 1
        while offset < message.count {
            let end = min(offset + chunk, message.count)
            if chunk % 2 == 0 {
                hasher.update(Array(message[offset..<end]))
            } else {
                message[offset..<end].withUnsafeBytes { hasher.update($0) }
            }
            offset = end
            chunk = chunk * 3 + 1  // 1, 4, 13, 40, …: crosses block boundaries unevenly
        }
        hasher.update([])  // empty updates change nothing
        #expect(SHA256.hexString(hasher.finalize()) == expected)
    }

    @Test func finalizeTwiceIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            let hasher = SHA256Hasher()
            _ = hasher.finalize()
            _ = hasher.finalize()
        }
    }
}

@Suite struct HMACSHA256Tests {
    /// RFC 4231 §4.2, test case 1.
    @Test func rfc4231TestCase1() {
        let key = [UInt8](repeating: 0x0b, count: 20)
        #expect(
            HMACSHA256.authenticate(Array("Hi There".utf8), key: key)
                == hexBytes("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
    }

    /// RFC 4231 §4.3, test case 2 (short key).
    @Test func rfc4231TestCase2() {
        #expect(
            HMACSHA256.authenticate(Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8))
                == hexBytes("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    /// RFC 4231 §4.7, test case 6 (key longer than the block: hashed first).
    @Test func rfc4231TestCase6LongKey() {
        let key = [UInt8](repeating: 0xaa, count: 131)
        #expect(
            HMACSHA256.authenticate(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8), key: key)
                == hexBytes("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"))
    }

    @Test func emptyKeyAndMessageStillGiveADigestThatDependsOnTheKey() {
        let empty = HMACSHA256.authenticate([], key: [])
        #expect(empty == hexBytes("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"))
        #expect(HMACSHA256.authenticate([], key: [1]) != empty)
    }
}
