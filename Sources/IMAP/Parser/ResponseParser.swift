// IMAP: server responses from bytes to `IMAPResponse` (RFC 3501 §7, §9).

/// Parses server responses. Stateless apart from its limits: feed it the start of a buffer and it returns one
/// response and how many bytes it used, or nil when the buffer holds only part of a response.
///
/// Unknown untagged responses and response codes are kept raw rather than rejected, so a server extension never
/// ends a session; real grammar violations and every limit are typed `IMAPError`s.
public struct IMAPResponseParser: Sendable {
    public let limits: IMAPLimits

    public init(limits: IMAPLimits = .standard) {
        self.limits = limits
    }

    /// The first response in `bytes` and the number of bytes it took, or nil if `bytes` ends inside it.
    public func parseResponse(_ bytes: [UInt8]) throws(IMAPError) -> (response: IMAPResponse, consumedCount: Int)? {
        var buffer = ParseBuffer(bytes, limits: limits)
        do throws(ParserError) {
            let response = try Self.parseResponse(&buffer)
            return (response, buffer.index)
        } catch {
            switch error {
            case .incomplete: return nil
            case .failed(let error): throw error
            }
        }
    }

    // MARK: - Grammar

    // response = continue-req / response-data / response-tagged   (one at a time)
    static func parseResponse(_ buffer: inout ParseBuffer) throws(ParserError) -> IMAPResponse {
        switch try buffer.peek() {
        case UInt8(ascii: "+"):
            return .continuation(try parseContinuationRequest(&buffer))
        case UInt8(ascii: "*"):
            buffer.index += 1
            try buffer.expectSpace("response-data")
            let untagged = try parseResponseData(&buffer)
            return .untagged(untagged)
        default:
            return .tagged(try parseTaggedResponse(&buffer))
        }
    }

    // continue-req = "+" SP (resp-text / base64) CRLF   ; a bare "+" CRLF is tolerated
    static func parseContinuationRequest(_ buffer: inout ParseBuffer) throws(ParserError) -> String {
        try buffer.expect(UInt8(ascii: "+"), "continue-req")
        if try buffer.atLineEnd() {
            try buffer.expectCRLF()
            return ""
        }
        try buffer.expectSpace("continue-req")
        let text = try buffer.parseText()
        try buffer.expectCRLF()
        return text
    }

    // response-tagged = tag SP resp-cond-state CRLF
    // resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text
    static func parseTaggedResponse(_ buffer: inout ParseBuffer) throws(ParserError) -> TaggedResponse {
        let tag = String(decoding: try buffer.parseRun("tag", CharacterClass.isTagChar), as: UTF8.self)
        try buffer.expectSpace("response-tagged")
        let statusStart = buffer.index
        guard let status = ResponseStatus(rawValue: try buffer.parseAtom().uppercased()) else {
            buffer.index = statusStart
            throw buffer.failure("resp-cond-state")
        }
        let text = try parseRespTextAfterKeyword(&buffer)
        try buffer.expectCRLF()
        return TaggedResponse(tag: tag, status: status, code: text.code, text: text.text)
    }

    // response-data = "*" SP (resp-cond-state / resp-cond-bye / mailbox-data / message-data / capability-data) CRLF
    static func parseResponseData(_ buffer: inout ParseBuffer) throws(ParserError) -> UntaggedResponse {
        if CharacterClass.isDigit(try buffer.peek()) {
            return try parseNumberedData(&buffer)
        }
        let name = try buffer.parseAtom().uppercased()
        let response: UntaggedResponse
        switch name {
        case "OK": response = .ok(try parseRespTextAfterKeyword(&buffer))
        case "NO": response = .no(try parseRespTextAfterKeyword(&buffer))
        case "BAD": response = .bad(try parseRespTextAfterKeyword(&buffer))
        case "BYE": response = .bye(try parseRespTextAfterKeyword(&buffer))
        case "PREAUTH": response = .preauth(try parseRespTextAfterKeyword(&buffer))
        case "CAPABILITY": response = .capability(try parseCapabilityList(&buffer))
        case "LIST": response = .list(try parseMailboxList(&buffer))
        case "LSUB": response = .lsub(try parseMailboxList(&buffer))
        case "SEARCH": response = .search(try parseSearchNumbers(&buffer))
        case "FLAGS":
            try buffer.expectSpace("FLAGS")
            response = .flags(try parseFlagList(&buffer, allowWildcard: false))
        default:
            let raw = try buffer.skipToEndOfResponse()
            return .other(name: name, raw: raw)
        }
        try buffer.expectCRLF()
        return response
    }

    // message-data = nz-number SP ("EXPUNGE" / ("FETCH" SP msg-att))
    // mailbox-data =/ number SP "EXISTS" / number SP "RECENT"
    static func parseNumberedData(_ buffer: inout ParseBuffer) throws(ParserError) -> UntaggedResponse {
        let number = try buffer.parseNumber()
        try buffer.expectSpace("message-data")
        let name = try buffer.parseAtom().uppercased()
        let response: UntaggedResponse
        switch name {
        case "EXISTS": response = .exists(number)
        case "RECENT": response = .recent(number)
        case "EXPUNGE": response = .expunge(number)
        case "FETCH":
            try buffer.expectSpace("FETCH")
            response = .fetch(try parseMessageAttributes(&buffer, sequenceNumber: number))
        default:
            let raw = try buffer.skipToEndOfResponse()
            return .other(name: name, raw: Array("\(number) ".utf8) + raw)
        }
        try buffer.expectCRLF()
        return response
    }

    // resp-text = ["[" resp-text-code "]" SP] text
    // Called right after OK/NO/BAD/BYE/PREAUTH: also accepts a missing SP and text before CRLF (seen in the wild).
    static func parseRespTextAfterKeyword(_ buffer: inout ParseBuffer) throws(ParserError) -> ResponseText {
        if try buffer.atLineEnd() { return ResponseText(text: "") }
        try buffer.expectSpace("resp-text")
        var code: ResponseCode? = nil
        if try buffer.consumeIf(UInt8(ascii: "[")) {
            code = try parseResponseCode(&buffer)
            try buffer.expect(UInt8(ascii: "]"), "resp-text-code")
            if try buffer.atLineEnd() { return ResponseText(code: code, text: "") }
            try buffer.expectSpace("resp-text")
        }
        return ResponseText(code: code, text: try buffer.parseText())
    }

    // resp-text-code = "ALERT" / "BADCHARSET" [SP "(" astring *(SP astring) ")" ] / capability-data / "PARSE" /
    //                  "PERMANENTFLAGS" SP "(" [flag-perm *(SP flag-perm)] ")" / "READ-ONLY" / "READ-WRITE" /
    //                  "TRYCREATE" / "UIDNEXT" SP nz-number / "UIDVALIDITY" SP nz-number / "UNSEEN" SP nz-number /
    //                  "APPENDUID" SP nz-number SP nz-number / "COPYUID" SP nz-number SP uid-set SP uid-set /
    //                  "CANNOT" / atom [SP 1*<any TEXT-CHAR except "]">]
    // A known code whose arguments do not parse is kept as `.other` rather than failing the response.
    static func parseResponseCode(_ buffer: inout ParseBuffer) throws(ParserError) -> ResponseCode {
        let start = buffer.index
        let name = try buffer.parseAtom().uppercased()
        let known: ResponseCode? = try buffer.attempt { (buffer) throws(ParserError) -> ResponseCode? in
            switch name {
            case "ALERT": return .alert
            case "PARSE": return .parse
            case "READ-ONLY": return .readOnly
            case "READ-WRITE": return .readWrite
            case "TRYCREATE": return .tryCreate
            case "CANNOT": return .cannot
            case "UIDNEXT", "UIDVALIDITY", "UNSEEN":
                try buffer.expectSpace(name)
                let value = try buffer.parseNZNumber()
                return name == "UIDNEXT" ? .uidNext(value) : name == "UIDVALIDITY" ? .uidValidity(value) : .unseen(value)
            case "APPENDUID":
                try buffer.expectSpace(name)
                let validity = try buffer.parseNZNumber()
                try buffer.expectSpace(name)
                let uid = try buffer.parseNZNumber()
                return .appendUID(uidValidity: validity, uid: uid)
            case "COPYUID":
                try buffer.expectSpace(name)
                let validity = try buffer.parseNZNumber()
                try buffer.expectSpace(name)
                let source = try buffer.parseRun("uid-set", isSequenceSetChar)
                try buffer.expectSpace(name)
                let destination = try buffer.parseRun("uid-set", isSequenceSetChar)
                return .copyUID(
                    uidValidity: validity, sourceUIDs: String(decoding: source, as: UTF8.self),
                    destinationUIDs: String(decoding: destination, as: UTF8.self))
            case "CAPABILITY":
                return .capability(try parseCapabilityList(&buffer))
            case "PERMANENTFLAGS":
                try buffer.expectSpace(name)
                return .permanentFlags(try parseFlagList(&buffer, allowWildcard: true))
            case "BADCHARSET":
                guard try buffer.peek() == UInt8(ascii: " ") else { return .badCharset([]) }
                try buffer.expectSpace(name)
                try buffer.expect(UInt8(ascii: "("), name)
                var charsets = [String(decoding: try buffer.parseAstring(), as: UTF8.self)]
                while try buffer.consumeIf(UInt8(ascii: " ")) {
                    charsets.append(String(decoding: try buffer.parseAstring(), as: UTF8.self))
                }
                try buffer.expect(UInt8(ascii: ")"), name)
                return .badCharset(charsets)
            default:
                return nil
            }
        } ?? nil
        if let known, try buffer.peek() == UInt8(ascii: "]") { return known }
        // Unknown code, or a known one with unexpected arguments: atom [SP 1*<any TEXT-CHAR except "]">]
        buffer.index = start
        _ = try buffer.parseAtom()
        var text: String? = nil
        if try buffer.consumeIf(UInt8(ascii: " ")) {
            let run = try buffer.parseRun("resp-text-code") {
                $0 != UInt8(ascii: "]") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n")
            }
            text = String(decoding: run, as: UTF8.self)
        }
        return .other(name: name, text: text)
    }

    static func isSequenceSetChar(_ byte: UInt8) -> Bool {
        CharacterClass.isDigit(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ",") || byte == UInt8(ascii: "*")
    }

    // capability-data = "CAPABILITY" *(SP capability) SP "IMAP4rev1" *(SP capability)
    // capability = ("AUTH=" auth-type) / atom
    static func parseCapabilityList(_ buffer: inout ParseBuffer) throws(ParserError) -> [Capability] {
        var capabilities: [Capability] = []
        while try buffer.peek() == UInt8(ascii: " ") {
            buffer.index += 1
            if try buffer.atLineEnd() { break }  // trailing space
            if try buffer.peek() == UInt8(ascii: "]") { break }
            capabilities.append(Capability(try buffer.parseAtom()))
        }
        guard !capabilities.isEmpty else { throw buffer.failure("capability-data") }
        return capabilities
    }

    // flag-list = "(" [flag *(SP flag)] ")"
    // flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" / flag-keyword / flag-extension
    // flag-perm = flag / "\*"
    static func parseFlagList(_ buffer: inout ParseBuffer, allowWildcard: Bool) throws(ParserError) -> [Flag] {
        try buffer.expect(UInt8(ascii: "("), "flag-list")
        var flags: [Flag] = []
        if try buffer.consumeIf(UInt8(ascii: ")")) { return flags }
        repeat {
            flags.append(try parseFlag(&buffer, allowWildcard: allowWildcard))
        } while try buffer.consumeIf(UInt8(ascii: " "))
        try buffer.expect(UInt8(ascii: ")"), "flag-list")
        return flags
    }

    static func parseFlag(_ buffer: inout ParseBuffer, allowWildcard: Bool) throws(ParserError) -> Flag {
        if try buffer.consumeIf(UInt8(ascii: "\\")) {
            if allowWildcard, try buffer.consumeIf(UInt8(ascii: "*")) { return .wildcard }
            return Flag("\\" + (try buffer.parseAtom()))
        }
        return Flag(try buffer.parseAtom())
    }

    // mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox [SP mbox-list-extended]
    // mbx-list-flags = mbx-list-flag *(SP mbx-list-flag)   ; "\" atom, or a bare atom from some servers
    // mailbox = "INBOX" / astring
    static func parseMailboxList(_ buffer: inout ParseBuffer) throws(ParserError) -> MailboxInfo {
        try buffer.expectSpace("mailbox-list")
        try buffer.expect(UInt8(ascii: "("), "mailbox-list")
        var attributes: [MailboxAttribute] = []
        if !(try buffer.consumeIf(UInt8(ascii: ")"))) {
            repeat {
                let backslash = try buffer.consumeIf(UInt8(ascii: "\\"))
                attributes.append(MailboxAttribute((backslash ? "\\" : "") + (try buffer.parseAtom())))
            } while try buffer.consumeIf(UInt8(ascii: " "))
            try buffer.expect(UInt8(ascii: ")"), "mbx-list-flags")
        }
        try buffer.expectSpace("mailbox-list")
        let separator: UInt8?
        if try buffer.peek() == UInt8(ascii: "\"") {
            let quoted = try buffer.parseQuoted()
            guard quoted.count == 1 else { throw buffer.failure("QUOTED-CHAR delimiter") }
            separator = quoted[0]
        } else {
            let atom = try buffer.parseAtom()
            guard atom.uppercased() == "NIL" else { throw buffer.failure("nil") }
            separator = nil
        }
        try buffer.expectSpace("mailbox-list")
        let name = MailboxName(try buffer.parseAstring())
        if try buffer.peek() == UInt8(ascii: " ") {
            _ = try buffer.skipToEndOfResponse()  // mbox-list-extended (RFC 5258), not used upstream
            buffer.index -= 1
            if buffer.index > 0 && buffer.bytes[buffer.index - 1] == UInt8(ascii: "\r") { buffer.index -= 1 }
        }
        return MailboxInfo(attributes: attributes, path: MailboxPath(name: name, pathSeparator: separator))
    }

    // mailbox-data =/ "SEARCH" *(SP nz-number)
    static func parseSearchNumbers(_ buffer: inout ParseBuffer) throws(ParserError) -> [UInt32] {
        var numbers: [UInt32] = []
        while try buffer.consumeIf(UInt8(ascii: " ")) {
            if try buffer.atLineEnd() { break }  // trailing space, sent by some servers
            numbers.append(try buffer.parseNZNumber())
        }
        return numbers
    }

    // msg-att = "(" (msg-att-dynamic / msg-att-static) *(SP (msg-att-dynamic / msg-att-static)) ")"
    // Kept raw; UID and RFC822.SIZE at the top level are read out. Nesting is bounded by `limits.parserDepth`.
    static func parseMessageAttributes(_ buffer: inout ParseBuffer, sequenceNumber: UInt32) throws(ParserError) -> FetchResponse {
        try buffer.expect(UInt8(ascii: "("), "msg-att")
        let start = buffer.index
        var depth = 1
        var uid: UInt32? = nil
        var size: UInt32? = nil
        var previousTopLevelAtom: String? = nil
        while true {
            let byte = try buffer.peek()
            switch byte {
            case UInt8(ascii: "("):
                depth += 1
                guard depth <= buffer.limits.parserDepth else { throw .failed(.tooMuchNesting(limit: buffer.limits.parserDepth)) }
                buffer.index += 1
                previousTopLevelAtom = nil
            case UInt8(ascii: ")"):
                depth -= 1
                buffer.index += 1
                if depth == 0 {
                    let raw = Array(buffer.bytes[start..<(buffer.index - 1)])
                    return FetchResponse(sequenceNumber: sequenceNumber, uid: uid, rfc822Size: size, rawAttributes: raw)
                }
            case UInt8(ascii: " "):
                buffer.index += 1
            case UInt8(ascii: "\""):
                _ = try buffer.parseQuoted()
                previousTopLevelAtom = nil
            case UInt8(ascii: "{"):
                _ = try buffer.parseLiteral()
                previousTopLevelAtom = nil
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                throw buffer.failure("msg-att")
            default:
                let token = try parseFetchToken(&buffer)
                if depth == 1 {
                    if let previous = previousTopLevelAtom, CharacterClass.isDigit(token.first ?? 0) {
                        var numberBuffer = ParseBuffer(token + [UInt8(ascii: " ")], limits: buffer.limits)
                        if previous == "UID" { uid = try numberBuffer.parseNumber() }
                        if previous == "RFC822.SIZE" { size = try numberBuffer.parseNumber() }
                        previousTopLevelAtom = nil
                    } else {
                        previousTopLevelAtom = String(decoding: token, as: UTF8.self).uppercased()
                    }
                }
            }
        }
    }

    /// An attribute name or atom inside msg-att, with any `[section]` (which may hold parentheses, spaces and
    /// quoted strings) and `<partial>` attached: `BODY[HEADER.FIELDS (MESSAGE-ID)]<0>`, `\Seen`, `4212`.
    static func parseFetchToken(_ buffer: inout ParseBuffer) throws(ParserError) -> [UInt8] {
        let start = buffer.index
        _ = try buffer.consumeIf(UInt8(ascii: "\\"))
        while true {
            let byte = try buffer.peek()
            if byte == UInt8(ascii: "[") {
                buffer.index += 1
                while true {
                    let inner = try buffer.peek()
                    if inner == UInt8(ascii: "]") { buffer.index += 1; break }
                    if inner == UInt8(ascii: "\"") { _ = try buffer.parseQuoted(); continue }
                    if inner == UInt8(ascii: "\r") || inner == UInt8(ascii: "\n") { throw buffer.failure("section") }
                    buffer.index += 1
                }
            } else if CharacterClass.isAtomChar(byte) || (byte == UInt8(ascii: "*") && buffer.index == start + 1) {
                buffer.index += 1
            } else {
                break
            }
        }
        guard buffer.index > start else { throw buffer.failure("msg-att") }
        return Array(buffer.bytes[start..<buffer.index])
    }
}
