import MailCore
import Testing

@testable import IMAP

/// `UID SEARCH OR HEADER …`: the sent-copy worker's batch check of several Message-IDs in one command.
@Suite struct SearchAnyEncodingTests {
    let plain = IMAPCommandEncoder()

    private func text(_ command: IMAPCommand) -> String {
        CommandEncoderTests.text(plain.encode(TaggedCommand(tag: "B1", command: command)))
    }

    @Test func oneValueIsAPlainHeaderSearch() {
        #expect(
            text(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>"]))
                == text(.uidSearchHeader(field: "Message-ID", value: "<1@c>")))
    }

    @Test func severalValuesNestOrsToTheLeft() {
        #expect(
            text(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>", "<2@c>", "<3@c>"]))
                == "B1 UID SEARCH OR OR HEADER Message-ID \"<1@c>\" HEADER Message-ID \"<2@c>\" HEADER Message-ID \"<3@c>\"\r\n")
    }

    @Test func aNonASCIIValueAsksForUTF8() {
        #expect(
            text(.uidSearchHeaderAny(field: "Subject", values: ["a", "Grüße"]))
                == "B1 UID SEARCH CHARSET UTF-8 OR HEADER Subject \"a\" HEADER Subject {7}\r\n<wait>Grüße\r\n")
    }

    @Test func allowedOnlyWithAMailboxSelected() throws {
        var client = IMAPUpstreamClient()
        _ = client.receive(.untagged(.ok(ResponseText(code: nil, text: "ready"))))
        #expect(throws: (any Error).self) { try client.send(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>"])) }
    }
}
