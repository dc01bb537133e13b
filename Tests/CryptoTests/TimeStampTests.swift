// CryptoTests: RFC 3161: our TimeStampReq byte for byte, and responses made by `openssl ts -reply` with throwaway
// CAs and TSA certificates checked by TimeStamp.verify (good, wrong hash, wrong nonce, altered, other CA, no EKU).
import Crypto
import Foundation
import MailGateTesting
import Testing

/// A throwaway PKI in a temporary directory, made with the openssl command line once per test process.
final class TimeStampMaterial: @unchecked Sendable {
    // @unchecked: written once in init, read only afterwards.
    let directory: String

    static let shared: TimeStampMaterial? = try? TimeStampMaterial()

    init() throws {
        var template = Array((NSTemporaryDirectory() + "mailgate-tsa-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        directory = String(cString: made)
        let script = """
            set -e
            cd "$1"
            ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=$1" \
              -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
              -keyout "$2.key" -out "$2.crt" 2>/dev/null; }
            leaf() { # name ca extfile
              openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
              openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 -sha256 \
                -extfile "$3" -out "$1.crt" 2>/dev/null; }
            ca "test CA" ca
            ca "other CA" other
            printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=critical,timeStamping\\n' > tsa.ext
            printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' > noeku.ext
            leaf tsa ca tsa.ext
            leaf noeku ca noeku.ext
            for name in tsa noeku; do
              echo 01 > "$name.serial"
              cat > "$name.cnf" <<EOF
            [ tsa ]
            default_tsa = t
            [ t ]
            serial = $PWD/$name.serial
            crypto_device = builtin
            signer_cert = $PWD/$name.crt
            signer_key = $PWD/$name.key
            signer_digest = sha256
            default_policy = 1.2.3.4.1
            digests = sha256
            accuracy = secs:1
            ess_cert_id_alg = sha256
            EOF
            done
            """
        try Self.shell(script, [directory])
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs `sh -c script` with `arguments` as $1…; throws with its stderr on failure.
    @discardableResult
    static func shell(_ script: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh"] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readAllRetryingInterrupts()
        let err = errors.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: String(decoding: err, as: UTF8.self)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `openssl ts -reply` to `query` with the TSA `signer` ("tsa" or "noeku"); the DER response.
    func reply(to query: [UInt8], signer: String = "tsa") throws -> [UInt8] {
        let name = "q-\(UInt64.random(in: 0...UInt64.max))"
        try Data(query).write(to: URL(fileURLWithPath: directory + "/\(name).tsq"))
        try Self.shell(
            #"cd "$1" && openssl ts -reply -config "$2.cnf" -queryfile "$3.tsq" -out "$3.tsr" 2>/dev/null"#,
            [directory, signer, name])
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/\(name).tsr")))
    }

    var caFile: String { directory + "/ca.crt" }
    var otherCAFile: String { directory + "/other.crt" }
}

@Suite("RFC 3161 time-stamps")
struct TimeStampTests {
    static let digest = SHA256.hash(Array("journal entry 7".utf8))

    @Test("TimeStampReq: version 1, SHA-256 imprint with NULL parameters, the nonce, certReq TRUE, in DER")
    func requestEncoding() throws {
        let nonce: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]
        let request = try TimeStamp.request(sha256: Self.digest, nonce: nonce)
        var expected: [UInt8] = [0x30, 0x43]  // TimeStampReq SEQUENCE, 67 bytes
        expected += [0x02, 0x01, 0x01]  // version INTEGER 1
        expected += [0x30, 0x31]  // MessageImprint SEQUENCE
        expected += [0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00]  // sha256, NULL
        expected += [0x04, 0x20] + Self.digest  // hashedMessage OCTET STRING
        expected += [0x02, 0x08] + nonce  // nonce INTEGER
        expected += [0x01, 0x01, 0xFF]  // certReq BOOLEAN TRUE
        #expect(request == expected)
        // A nonce with its top bit set gets the leading zero DER needs to keep it positive.
        let high = try TimeStamp.request(sha256: Self.digest, nonce: [0x80, 0x01])
        #expect(high.suffix(8) == [0x02, 0x03, 0x00, 0x80, 0x01, 0x01, 0x01, 0xFF])
        #expect(throws: TimeStampError.self) { try TimeStamp.request(sha256: [1, 2, 3], nonce: nonce) }
        #expect(throws: TimeStampError.self) { try TimeStamp.request(sha256: Self.digest, nonce: []) }
    }

    @Test("openssl ts reads our request as we meant it")
    func opensslReadsRequest() throws {
        let material = try #require(TimeStampMaterial.shared)
        let request = try TimeStamp.request(sha256: Self.digest, nonce: [0x0A, 0x0B, 0x0C])
        let path = material.directory + "/read.tsq"
        try Data(request).write(to: URL(fileURLWithPath: path))
        let text = try TimeStampMaterial.shell(#"openssl ts -query -in "$1" -text 2>/dev/null"#, [path])
        #expect(text.contains("Hash Algorithm: sha256"))
        #expect(text.contains("Nonce: 0x0A0B0C"))
        #expect(text.contains("Certificate required: yes"))
        let firstBytes = Self.digest.prefix(4).map { SHA256.hexString([$0]) }.joined(separator: " ")
        #expect(text.contains("0000 - " + firstBytes), "\(text)")
    }

    @Test("a response made by openssl ts -reply verifies: imprint, nonce, signature and chain to the CA")
    func verifiesGoodResponse() throws {
        let material = try #require(TimeStampMaterial.shared)
        let nonce = SecureRandom.bytes(8)
        let before = Int64(Date().timeIntervalSince1970) - 2
        let response = try material.reply(to: try TimeStamp.request(sha256: Self.digest, nonce: nonce))
        let token = try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.caFile, nonce: nonce)
        #expect(token.genTime >= before && token.genTime <= Int64(Date().timeIntervalSince1970) + 2)
        #expect(!token.serial.isEmpty)
        // Stored tokens are checked later without the nonce.
        #expect(try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.caFile) == token)
    }

    @Test("another hash, another nonce, another CA, unreadable trust anchors: each refused")
    func refusals() throws {
        let material = try #require(TimeStampMaterial.shared)
        let nonce: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        let response = try material.reply(to: try TimeStamp.request(sha256: Self.digest, nonce: nonce))
        let other = SHA256.hash(Array("journal entry 8".utf8))
        #expect {
            try TimeStamp.verify(response: response, sha256: other, caFile: material.caFile)
        } throws: { error in
            if case .imprintMismatch = error as? TimeStampError { return true }
            return false
        }
        #expect(throws: TimeStampError.nonceMismatch) {
            try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.caFile, nonce: [0x11])
        }
        #expect {
            try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.otherCAFile)
        } throws: { error in
            if case .notVerified = error as? TimeStampError { return true }
            return false
        }
        // (A signer without the critical timeStamping EKU cannot be tested with openssl-made material: `openssl ts
        // -reply` itself refuses to sign with such a certificate.)
        #expect(throws: (any Error).self) {
            try material.reply(to: try TimeStamp.request(sha256: Self.digest, nonce: nonce), signer: "noeku")
        }
        #expect {
            try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.directory + "/none.pem")
        } throws: { error in
            if case .trustAnchors = error as? TimeStampError { return true }
            return false
        }
    }

    @Test("every single altered byte of a response is refused or, outside what is signed, changes nothing that counts")
    func alteredBytes() throws {
        let material = try #require(TimeStampMaterial.shared)
        let response = try material.reply(to: try TimeStamp.request(sha256: Self.digest, nonce: [0x42]))
        let good = try TimeStamp.verify(response: response, sha256: Self.digest, caFile: material.caFile)
        var refused = 0
        for index in response.indices {
            var damaged = response
            damaged[index] ^= 0x01
            if let token = try? TimeStamp.verify(response: damaged, sha256: Self.digest, caFile: material.caFile) {
                // Bytes outside the signed token (the status text, certificates' unsigned parts) may change
                // without harm; the signed time and serial never.
                #expect(token == good, "byte \(index) changed the verified token")
            } else {
                refused += 1
            }
        }
        #expect(refused > response.count * 9 / 10, "only \(refused) of \(response.count) damaged copies were refused")
    }

    @Test("a rejection (status 2), garbage and an empty body are typed errors, not crashes")
    func rejectionAndGarbage() throws {
        let material = try #require(TimeStampMaterial.shared)
        // SHA-1 is not among the TSA's digests: openssl answers with a rejection.
        let path = material.directory + "/sha1.tsq"
        try TimeStampMaterial.shell(
            #"openssl ts -query -digest 0000000000000000000000000000000000000000 -sha1 -cert -out "$1" 2>/dev/null"#,
            [path])
        let query = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let rejection = try material.reply(to: query)
        #expect {
            try TimeStamp.verify(response: rejection, sha256: Self.digest, caFile: material.caFile)
        } throws: { error in
            if case .refused(let status, _) = error as? TimeStampError { return status == 2 }
            return false
        }
        for garbage in [[], [0x30, 0x03, 0x02, 0x01, 0x07], [UInt8](repeating: 0x30, count: 64)] as [[UInt8]] {
            #expect(throws: TimeStampError.self) {
                try TimeStamp.verify(response: garbage, sha256: Self.digest, caFile: material.caFile)
            }
        }
        #expect(TimeStamp.digest(hex: SHA256.hexString(Self.digest)) == Self.digest)
        #expect(TimeStamp.digest(hex: "ab") == nil)
        #expect(TimeStamp.digest(hex: String(repeating: "G", count: 64)) == nil)
    }
}
