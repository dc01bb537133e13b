import Testing
@testable import IMAP

@Suite struct ModifiedUTF7Tests {
    static let vectors: [(String, String)] = [
        ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Ação", "A&AOcA4w-o"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("&", "&-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Gesendete Elemente", "Gesendete Elemente"),
        ("😀", "&2D3eAA-"),
        ("Mail 📬 box", "Mail &2D3c7A- box"),
        ("", ""),
    ]

    @Test(arguments: vectors)
    func encodesKnownVectors(decoded: String, wire: String) {
        #expect(ModifiedUTF7.encode(decoded) == wire)
    }

    @Test(arguments: vectors)
    func decodesKnownVectors(decoded: String, wire: String) throws {
        #expect(try ModifiedUTF7.decode(wire) == decoded)
    }

    @Test(arguments: [
        "Gel&APY",  // unterminated
        "&",  // unterminated
        "A&AOc!-o",  // not base64
        "A&AOc/-o",  // "/" belongs to standard base64, modified uses ","
        "&AGE-",  // printable ASCII "a" encoded
        "&APZ-",  // surplus bits not zero (APY- is correct)
        "&APYA-",  // half a code unit
        "&A-",  // a single sextet
        "&2D0-",  // lone high surrogate
        "&3gA-",  // lone low surrogate
        "&APY-&APw-",  // two runs back to back must be one
        "Gel\u{F6}scht",  // raw 8-bit
        "tab\there",  // control character
    ])
    func rejectsMalformed(wire: String) {
        #expect(throws: IMAPError.self) { try ModifiedUTF7.decode(wire) }
    }

    @Test func ampersandRunsMayFollowEncodedRuns() throws {
        #expect(try ModifiedUTF7.decode("&APY-&-") == "ö&")
        #expect(ModifiedUTF7.encode("ö&") == "&APY-&-")
    }

    @Test func roundTripsRandomUnicode() throws {
        var generator = SystemRandomNumberGenerator()
        let ranges: [ClosedRange<UInt32>] = [0x20...0x7E, 0x00A0...0x00FF, 0x0400...0x04FF, 0x4E00...0x9FFF, 0x1F300...0x1F6FF, 0x01...0x1F]
        for _ in 0..<500 {
            var text = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...24, using: &generator) {
                let range = ranges.randomElement(using: &generator)!
                if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &generator)) { text.append(scalar) }
            }
            let name = String(text)
            let wire = ModifiedUTF7.encode(name)
            #expect(wire.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
            #expect(try ModifiedUTF7.decode(wire) == name)
        }
    }
}
