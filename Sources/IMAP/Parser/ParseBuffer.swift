// IMAP: the cursor over response bytes that every grammar parser reads from.

import MailCore

/// Why a parser stopped: the input ended early (read more and try again) or it is wrong.
enum ParserError: Error {
    /// More bytes are needed; never escapes the parser's public entry points (they return nil).
    case incomplete
    case failed(IMAPError)
}

/// Byte classes of RFC 3501 §9.
enum CharacterClass {
    /// `ATOM-CHAR = <any CHAR except atom-specials>`,
    /// `atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials`
    static func isAtomChar(_ byte: UInt8) -> Bool {
        guard byte > 0x20 && byte < 0x7F else { return false }
        switch byte {
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "{"), UInt8(ascii: "%"), UInt8(ascii: "*"),
            UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]"):
            return false
        default:
            return true
        }
    }

    /// `ASTRING-CHAR = ATOM-CHAR / resp-specials`
    static func isAstringChar(_ byte: UInt8) -> Bool { isAtomChar(byte) || byte == UInt8(ascii: "]") }

    /// `list-char = ATOM-CHAR / list-wildcards / resp-specials`
    static func isListChar(_ byte: UInt8) -> Bool {
        isAstringChar(byte) || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "*")
    }

    /// `tag = 1*<any ASTRING-CHAR except "+">`
    static func isTagChar(_ byte: UInt8) -> Bool { isAstringChar(byte) && byte != UInt8(ascii: "+") }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// A read position over one response's bytes with the limits that apply to it.
struct ParseBuffer {
    let bytes: [UInt8]
    var index: Int
    let limits: IMAPLimits

    init(_ bytes: [UInt8], limits: IMAPLimits) {
        self.bytes = bytes
        self.index = 0
        self.limits = limits
    }

    var isAtEnd: Bool { index >= bytes.count }

    func peek() throws(ParserError) -> UInt8 {
        guard index < bytes.count else { throw .incomplete }
        return bytes[index]
    }

    mutating func next() throws(ParserError) -> UInt8 {
        let byte = try peek()
        index += 1
        return byte
    }

    /// The error for "expected `production` here", quoting a little of what was found.
    func failure(_ production: String) -> ParserError {
        let found = sanitizeForLog(bytes[index..<min(bytes.count, index + 20)], maximumLength: 20)
        return .failed(.malformed(production: production, offset: index, found: found))
    }

    mutating func expect(_ byte: UInt8, _ production: String) throws(ParserError) {
        guard try peek() == byte else { throw failure(production) }
        index += 1
    }

    mutating func expectSpace(_ production: String) throws(ParserError) {
        try expect(UInt8(ascii: " "), production)
    }

    /// `CRLF`; a bare LF is accepted too (some servers, and hand-written test servers).
    mutating func expectCRLF() throws(ParserError) {
        if try peek() == UInt8(ascii: "\r") {
            index += 1
        }
        try expect(UInt8(ascii: "\n"), "CRLF")
    }

    /// Whether the next bytes are a line end (without consuming them).
    func atLineEnd() throws(ParserError) -> Bool {
        let byte = try peek()
        return byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }

    /// Consumes `byte` if it is next.
    mutating func consumeIf(_ byte: UInt8) throws(ParserError) -> Bool {
        guard try peek() == byte else { return false }
        index += 1
        return true
    }

    /// One or more bytes of the class `allowed`; stops before the first other byte.
    mutating func parseRun(_ production: String, _ allowed: (UInt8) -> Bool) throws(ParserError) -> ArraySlice<UInt8> {
        let start = index
        while try allowed(peek()) { index += 1 }
        guard index > start else { throw failure(production) }
        return bytes[start..<index]
    }

    // atom = 1*ATOM-CHAR
    mutating func parseAtom() throws(ParserError) -> String {
        String(decoding: try parseRun("atom", CharacterClass.isAtomChar), as: UTF8.self)
    }

    // number = 1*DIGIT   ; unsigned 32-bit integer
    mutating func parseNumber() throws(ParserError) -> UInt32 {
        let digits = try parseRun("number", CharacterClass.isDigit)
        var value: UInt32 = 0
        for digit in digits {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt32(digit - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else {
                throw .failed(.numberTooLarge(digits: String(decoding: digits.prefix(40), as: UTF8.self), maximumValue: UInt64(UInt32.max)))
            }
            value = sum
        }
        return value
    }

    // nz-number = digit-nz *DIGIT
    mutating func parseNZNumber() throws(ParserError) -> UInt32 {
        let start = index
        let value = try parseNumber()
        guard value != 0 else {
            index = start
            throw failure("nz-number")
        }
        return value
    }

    // quoted = DQUOTE *QUOTED-CHAR DQUOTE
    // QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
    mutating func parseQuoted() throws(ParserError) -> [UInt8] {
        try expect(UInt8(ascii: "\""), "quoted")
        var out: [UInt8] = []
        while true {
            let byte = try next()
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                let escaped = try next()
                guard escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") else {
                    index -= 1
                    throw failure("quoted-specials")
                }
                out.append(escaped)
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"), 0:
                index -= 1
                throw failure("QUOTED-CHAR")
            default:
                out.append(byte)
            }
            guard out.count < limits.responseLine else {
                throw .failed(.lineTooLong(actualCount: out.count, maximumCount: limits.responseLine))
            }
        }
    }

    // literal = "{" number "}" CRLF *CHAR8   ; number is the count of CHAR8s
    mutating func parseLiteral() throws(ParserError) -> [UInt8] {
        try expect(UInt8(ascii: "{"), "literal")
        let digits = try parseRun("literal length", CharacterClass.isDigit)
        let count = try Self.literalCount(digits, limits: limits)
        try expect(UInt8(ascii: "}"), "literal")
        try expectCRLF()
        guard bytes.count - index >= count else { throw .incomplete }
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }

    /// The value of a literal's digits, overflow-safe and within `limits.responseLiteral`.
    static func literalCount(_ digits: some Collection<UInt8>, limits: IMAPLimits) throws(ParserError) -> Int {
        var value = 0
        for digit in digits {
            guard value <= (Int.max - 9) / 10 else {
                throw .failed(.numberTooLarge(digits: String(decoding: digits.prefix(40), as: UTF8.self), maximumValue: UInt64(Int.max)))
            }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard value <= limits.responseLiteral else {
            throw .failed(.literalTooLarge(announcedCount: value, maximumCount: limits.responseLiteral))
        }
        return value
    }

    // string = quoted / literal
    mutating func parseString() throws(ParserError) -> [UInt8] {
        switch try peek() {
        case UInt8(ascii: "\""): return try parseQuoted()
        case UInt8(ascii: "{"): return try parseLiteral()
        default: throw failure("string")
        }
    }

    // astring = 1*ASTRING-CHAR / string
    mutating func parseAstring() throws(ParserError) -> [UInt8] {
        switch try peek() {
        case UInt8(ascii: "\""), UInt8(ascii: "{"): return try parseString()
        default: return Array(try parseRun("astring", CharacterClass.isAstringChar))
        }
    }

    // text = 1*TEXT-CHAR   ; MailGate accepts it empty and with 8-bit bytes (localised server texts)
    mutating func parseText() throws(ParserError) -> String {
        let start = index
        while true {
            let byte = try peek()
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") { break }
            index += 1
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// Runs `body`; if it fails (but not for lack of bytes), puts the cursor back and returns nil.
    mutating func attempt<T>(_ body: (inout ParseBuffer) throws(ParserError) -> T) throws(ParserError) -> T? {
        let save = index
        do throws(ParserError) {
            return try body(&self)
        } catch .incomplete {
            throw .incomplete
        } catch {
            index = save
            return nil
        }
    }

    /// Moves past the rest of the response (literals included) and returns its bytes before the final CRLF.
    ///
    /// A line that ends in `{n}` continues after n octets, exactly as the framer decides.
    mutating func skipToEndOfResponse() throws(ParserError) -> [UInt8] {
        let start = index
        while true {
            guard let lineFeed = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else {
                index = bytes.count
                throw .incomplete
            }
            var contentEnd = lineFeed
            if contentEnd > start && bytes[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            if let count = try Self.literalAnnouncedBefore(contentEnd, in: bytes, from: start, limits: limits) {
                let literalStart = lineFeed + 1
                guard bytes.count - literalStart >= count else {
                    index = bytes.count
                    throw .incomplete
                }
                index = literalStart + count
                continue
            }
            index = lineFeed + 1
            return Array(bytes[start..<contentEnd])
        }
    }

    /// When the line content ending at `end` finishes with `{n}` (or `{n+}`), returns n.
    static func literalAnnouncedBefore(
        _ end: Int, in bytes: [UInt8], from lowerBound: Int, limits: IMAPLimits
    ) throws(ParserError) -> Int? {
        guard end - lowerBound >= 3, bytes[end - 1] == UInt8(ascii: "}") else { return nil }
        var digitsEnd = end - 1
        if bytes[digitsEnd - 1] == UInt8(ascii: "+") { digitsEnd -= 1 }
        var digitsStart = digitsEnd
        while digitsStart > lowerBound && CharacterClass.isDigit(bytes[digitsStart - 1]) { digitsStart -= 1 }
        guard digitsStart < digitsEnd, digitsStart > lowerBound, bytes[digitsStart - 1] == UInt8(ascii: "{") else {
            return nil
        }
        return try literalCount(bytes[digitsStart..<digitsEnd], limits: limits)
    }
}
