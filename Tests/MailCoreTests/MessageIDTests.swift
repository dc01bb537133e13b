import Testing
@testable import MailCore

@Suite struct MessageIDTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(arguments: [
        ("Message-ID: <1234@contoso.com>\r\nSubject: x\r\n\r\nbody", "<1234@contoso.com>"),
        ("Subject: x\r\nmessage-id:<a.b@c>\r\n\r\n", "<a.b@c>"),
        ("MESSAGE-ID : <obs@x>\r\n\r\n", "<obs@x>"),
        ("Subject: x\r\nMessage-ID:\r\n <folded@contoso.com>\r\nTo: y\r\n\r\n", "<folded@contoso.com>"),
        ("Message-ID: (comment) <c@d>\n\nbody", "<c@d>"),
        ("From: a\r\nMessage-Id: <last@line>", "<last@line>"),
    ])
    func extracts(message: String, id: String) {
        #expect(MessageID.extract(fromHeaderOf: Self.bytes(message)) == id)
    }

    @Test(arguments: [
        "Subject: x\r\n\r\nMessage-ID: <in@body>\r\n",
        "X-Message-ID: <not@this>\r\n\r\n",
        "Message-IDs: <not@this>\r\n\r\n",
        "Subject: Message-ID: <no@no>\r\n\r\n",
        "Message-ID: no-brackets@x\r\n\r\n",
        "Message-ID: <no-at-sign>\r\n\r\n",
        "Message-ID: <sp ace@x>\r\n\r\n",
        "Message-ID: <>\r\n\r\n",
        "",
    ])
    func findsNothing(message: String) {
        #expect(MessageID.extract(fromHeaderOf: Self.bytes(message)) == nil)
    }

    @Test func scansOnlyTheBoundedHeader() {
        let padding = "X-Pad: " + String(repeating: "a", count: MessageID.headerScanLimit) + "\r\n"
        #expect(MessageID.extract(fromHeaderOf: Self.bytes(padding + "Message-ID: <late@x>\r\n\r\n")) == nil)
        #expect(MessageID.extract(fromHeaderOf: Self.bytes("Message-ID: <early@x>\r\n" + padding + "\r\n")) == "<early@x>")
    }

    @Test func generatedIDsAreUniqueAndParseBack() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = MessageID.generate(domain: "contoso.com")
            #expect(id.hasPrefix("<") && id.hasSuffix("@contoso.com>"))
            #expect(MessageID.extract(fromHeaderOf: Self.bytes("Message-ID: \(id)\r\n\r\n")) == id)
            seen.insert(id)
        }
        #expect(seen.count == 1000)
        #expect(MessageID.generate(domain: "").hasSuffix("@localhost>"))
        #expect(MessageID.generate(domain: "bad <x> domain").hasSuffix("@badxdomain>"))
    }
}
