// IMAPTests: the batched Message-ID search and the header-fields fetch that `journal verify --against-server` sends.
import MailCore
import Testing

@testable import IMAP

@Suite struct SearchFetchCommandTests {
    let plain = IMAPCommandEncoder()

    func text(_ command: IMAPCommand) -> String { CommandEncoderTests.text(plain.encode(TaggedCommand(tag: "A7", command: command))) }

    @Test func searchAnyNestsOR() {
        #expect(text(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>"])) == "A7 UID SEARCH HEADER Message-ID \"<1@c>\"\r\n")
        #expect(
            text(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>", "<2@c>"]))
                == "A7 UID SEARCH OR HEADER Message-ID \"<1@c>\" HEADER Message-ID \"<2@c>\"\r\n")
        // OR is prefix and binary: n keys need n - 1 ORs in front (OR OR a b c = (a OR b) OR c).
        #expect(
            text(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>", "<2@c>", "<3@c>"]))
                == "A7 UID SEARCH OR OR HEADER Message-ID \"<1@c>\" HEADER Message-ID \"<2@c>\" HEADER Message-ID \"<3@c>\"\r\n")
        #expect(text(.uidSearchHeaderAny(field: "Message-ID", values: [])) == "A7 UID SEARCH NOT ALL\r\n")
        // A quote in a Message-ID is escaped, a non-ASCII one becomes a literal with CHARSET UTF-8.
        #expect(text(.uidSearchHeaderAny(field: "Message-ID", values: ["<a\"b@c>"])) == "A7 UID SEARCH HEADER Message-ID \"<a\\\"b@c>\"\r\n")
        #expect(
            text(.uidSearchHeaderAny(field: "Message-ID", values: ["<ü@c>"]))
                == "A7 UID SEARCH CHARSET UTF-8 HEADER Message-ID {6}\r\n<wait><ü@c>\r\n")
    }

    @Test func fetchHeaderFields() {
        #expect(
            text(.uidFetchHeaderFields(uids: [4, 7, 12], fields: ["MESSAGE-ID"]))
                == "A7 UID FETCH 4,7,12 (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n")
        #expect(
            text(.uidFetchHeaderFields(uids: [1], fields: ["MESSAGE-ID", "DATE"]))
                == "A7 UID FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])\r\n")
    }

    @Test func allowedOnlyWhenSelected() throws {
        var client = IMAPUpstreamClient()
        _ = client.receive(.untagged(.ok(ResponseText(code: nil, text: "ready"))))
        #expect(throws: IMAPError.self) { try client.send(.uidSearchHeaderAny(field: "Message-ID", values: ["<1@c>"])) }
        #expect(throws: IMAPError.self) { try client.send(.uidFetchHeaderFields(uids: [1], fields: ["MESSAGE-ID"])) }
        #expect(IMAPCommand.uidSearchHeaderAny(field: "M", values: []).name == "UID SEARCH")
        #expect(IMAPCommand.uidFetchHeaderFields(uids: [], fields: []).name == "UID FETCH")
    }
}
