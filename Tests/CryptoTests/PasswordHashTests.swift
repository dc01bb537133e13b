// CryptoTests: scrypt password hashes: format, verification, known answers and hostile encodings.

import Testing

@testable import Crypto

@Suite struct PasswordHashTests {
    @Test func hashVerifiesAndHasTheDocumentedFormat() throws {
        let encoded = try PasswordHash.hash("correct horse battery staple")
        #expect(encoded.hasPrefix("$scrypt$ln=15,r=8,p=1$"))
        let fields = encoded.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 5)
        #expect(fields[3].count == 22)  // 16 bytes, unpadded base64
        #expect(fields[4].count == 43)  // 32 bytes, unpadded base64
        #expect(!fields[3].contains("=") && !fields[4].contains("="))
        #expect(PasswordHash.verify("correct horse battery staple", against: encoded))
    }

    @Test("the decoy has a real hash's shape and cost parameters, differs each time and matches no password")
    func decoyLooksRealAndMatchesNothing() {
        let decoy = PasswordHash.decoy()
        let parsed = EncodedHash(parsing: decoy)
        #expect(parsed?.parameters == PasswordHash.Parameters.standard)
        #expect(parsed?.salt.count == PasswordHash.saltCount)
        #expect(parsed?.key.count == PasswordHash.keyCount)
        #expect(decoy != PasswordHash.decoy())
        #expect(!PasswordHash.verify("", against: decoy))
        #expect(!PasswordHash.verify("Sommer2024!", against: decoy))
    }

    @Test func wrongPasswordIsRefused() throws {
        let encoded = try PasswordHash.hash("Sommer2024!")
        #expect(!PasswordHash.verify("Sommer2024", against: encoded))
        #expect(!PasswordHash.verify("sommer2024!", against: encoded))
        #expect(!PasswordHash.verify("", against: encoded))
    }

    @Test func twoHashesOfOnePasswordDifferBySalt() throws {
        let first = try PasswordHash.hash("same")
        let second = try PasswordHash.hash("same")
        #expect(first != second)
        #expect(PasswordHash.verify("same", against: first) && PasswordHash.verify("same", against: second))
    }

    @Test func emptyAndNonASCIIPasswordsWork() throws {
        let empty = try PasswordHash.hash("")
        #expect(PasswordHash.verify("", against: empty))
        #expect(!PasswordHash.verify(" ", against: empty))
        let umlaut = try PasswordHash.hash("Grüße-ß")
        #expect(PasswordHash.verify("Grüße-ß", against: umlaut))
        #expect(!PasswordHash.verify("Grusse-ss", against: umlaut))
    }

    /// RFC 7914 §12, third vector (N=16384, r=8, p=1), written in our format: proves the parameters and
    /// base64 are read as documented and that the KDF is scrypt.
    @Test func verifiesRFC7914Vector() {
        let encoded =
            "$scrypt$ln=14,r=8,p=1$U29kaXVtQ2hsb3JpZGU$"
            + "cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofLVQylVYT8Pz2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw"
        #expect(PasswordHash.verify("pleaseletmein", against: encoded))
        #expect(!PasswordHash.verify("pleaseletmeout", against: encoded))
    }

    /// RFC 7914 §12, second vector, through the internal KDF (its 4-byte salt is below our stored minimum).
    @Test func deriveMatchesRFC7914SecondVector() throws {
        let key = try PasswordHash.derive(
            Array("password".utf8), salt: Array("NaCl".utf8),
            parameters: .init(logN: 10, blockSize: 8, parallelism: 16), keyCount: 64)
        #expect(
            key
                == hexBytes(
                    "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830da"
                        + "c727afb94a83ee6d8360cbdfa2cc0640"))
    }

    @Test(arguments: [
        "",
        "password",
        "$scrypt$",
        "$scrypt$ln=15,r=8,p=1$",
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
        "$scrypt$ln=15,r=8$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=1,x=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$r=8,ln=15,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=015,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=-1,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=ab,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=1$c2Fsd!NhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",  // salt 4 bytes: too short
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",  // hash 4 bytes: too short
        "$pbkdf2$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "x$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA$",
    ])
    func malformedEncodingsAreRefused(encoded: String) {
        #expect(EncodedHash(parsing: encoded) == nil)
        #expect(!PasswordHash.verify("password", against: encoded))
    }

    @Test func wellFormedEncodingParses() {
        // The control for the malformed list: the same shape with valid fields parses.
        let parsed = EncodedHash(parsing: "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA")
        #expect(parsed?.parameters == .standard)
        #expect(parsed?.salt == Array("saltsaltsaltsalt".utf8))
        #expect(parsed?.key == Array("hashhashhashhash".utf8))
    }

    /// Parameters that would cost gigabytes or minutes are refused before scrypt runs.
    @Test(arguments: [
        "ln=21,r=8,p=1",  // N above 2^20
        "ln=99,r=8,p=1",
        "ln=0,r=8,p=1",
        "ln=15,r=0,p=1",
        "ln=15,r=8,p=0",
        "ln=20,r=8,p=1",  // 1 GiB: over the 256 MiB memory bound
        "ln=18,r=33,p=1",  // r above 32
        "ln=15,r=8,p=17",  // p above 16
        "ln=17,r=16,p=16",  // within memory, too much work
        "ln=999,r=999,p=999",
    ])
    func hostileParametersAreRefused(settings: String) {
        let encoded = "$scrypt$\(settings)$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA"
        #expect(EncodedHash(parsing: encoded) == nil)
        #expect(!PasswordHash.verify("password", against: encoded))
    }

    @Test func largestAllowedParametersStillParse() {
        #expect(PasswordHash.Parameters(logN: 18, blockSize: 8, parallelism: 1).isWithinVerificationBounds)
        #expect(!PasswordHash.Parameters(logN: 19, blockSize: 8, parallelism: 1).isWithinVerificationBounds)
        #expect(PasswordHash.Parameters(logN: 20, blockSize: 1, parallelism: 1).isWithinVerificationBounds)
        #expect(PasswordHash.Parameters(logN: 15, blockSize: 8, parallelism: 16).isWithinVerificationBounds)
        #expect(!PasswordHash.Parameters(logN: 16, blockSize: 8, parallelism: 16).isWithinVerificationBounds)
    }

    @Test func overlongEncodingIsRefused() {
        let encoded = "$scrypt$ln=15,r=8,p=1$" + String(repeating: "A", count: 300) + "$aGFzaGhhc2hoYXNoaGFzaA"
        #expect(EncodedHash(parsing: encoded) == nil)
    }
}
