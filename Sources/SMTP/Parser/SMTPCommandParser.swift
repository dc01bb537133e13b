// SMTP: the command-line parser (RFC 5321 §4.1, §4.1.2 paths; RFC 1870, 6152, 6531, 3030, 3461, 4954 parameters).
public import MailCore

extension SMTPCommand {
    /// Parses one command line given without its CRLF.
    ///
    /// Verbs are case-insensitive; runs of spaces between arguments and trailing spaces are tolerated, as is a
    /// space after `FROM:`/`TO:`. Source routes (`<@a,@b:user@d>`) are accepted and dropped (RFC 5321 §4.1.2).
    /// Non-ASCII addresses parse; whether they are allowed (SMTPUTF8 on MAIL) is the session's decision, read
    /// from `requiresSMTPUTF8`.
    ///
    /// - Parameter maximumLength: octets allowed without CRLF (default: `Limits.smtpCommandLine` − 2).
    public static func parse(
        _ line: [UInt8], maximumLength: Int = Limits.standard.smtpCommandLine - 2
    ) throws(SMTPParseError) -> SMTPCommand {
        guard line.count <= maximumLength else { throw .lineTooLong(actualCount: line.count, maximumCount: maximumLength) }
        guard !line.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw .syntax("control character in command") }
        guard String(validating: line, as: UTF8.self) != nil else { throw .syntax("command is not UTF-8") }

        var start = 0
        while start < line.count, line[start] == 0x20 { start += 1 }
        var end = line.count
        while end > start, line[end - 1] == 0x20 { end -= 1 }
        let trimmed = Array(line[start..<end])
        guard !trimmed.isEmpty else { throw .syntax("empty command") }

        let verbEnd = trimmed.firstIndex(of: 0x20) ?? trimmed.count
        let verb = String(decoding: trimmed[..<verbEnd], as: UTF8.self).uppercased()
        var argumentStart = verbEnd
        while argumentStart < trimmed.count, trimmed[argumentStart] == 0x20 { argumentStart += 1 }
        let argument = Array(trimmed[argumentStart...])
        let argumentText = String(decoding: argument, as: UTF8.self)

        switch verb {
        case "EHLO", "HELO":
            guard !argument.isEmpty else { throw .badArgument("\(verb) needs a domain") }
            guard !argument.contains(0x20) else { throw .badArgument("\(verb) takes one domain") }
            return verb == "EHLO" ? .ehlo(argumentText) : .helo(argumentText)
        case "MAIL":
            let rest = try afterPrefix("FROM:", in: argument, usage: "MAIL FROM:<address>")
            let (path, parametersBytes) = try splitPath(rest, error: SMTPParseError.badSenderAddress)
            let reversePath: SMTPReversePath
            if path.isEmpty {
                reversePath = .null
            } else {
                reversePath = .mailbox(try parsePath(path, error: SMTPParseError.badSenderAddress))
            }
            let parameters = try parseParameters(parametersBytes, known: mailParameters)
            return .mail(from: reversePath, parameters: parameters)
        case "RCPT":
            let rest = try afterPrefix("TO:", in: argument, usage: "RCPT TO:<address>")
            let (path, parametersBytes) = try splitPath(rest, error: SMTPParseError.badRecipientAddress)
            let forwardPath: SMTPForwardPath
            if String(decoding: path, as: UTF8.self).lowercased() == "postmaster" {
                forwardPath = .postmaster
            } else {
                guard !path.isEmpty else { throw .badRecipientAddress("empty recipient") }
                forwardPath = .mailbox(try parsePath(path, error: SMTPParseError.badRecipientAddress))
            }
            let parameters = try parseParameters(parametersBytes, known: rcptParameters)
            return .rcpt(to: forwardPath, parameters: parameters)
        case "DATA", "RSET", "QUIT", "STARTTLS":
            guard argument.isEmpty else { throw .badArgument("\(verb) takes no argument") }
            switch verb {
            case "DATA": return .data
            case "RSET": return .rset
            case "QUIT": return .quit
            default: return .startTLS
            }
        case "NOOP":
            return .noop(argument.isEmpty ? nil : argumentText)
        case "HELP":
            return .help(argument.isEmpty ? nil : argumentText)
        case "VRFY", "EXPN":
            guard !argument.isEmpty else { throw .badArgument("\(verb) needs an argument") }
            return verb == "VRFY" ? .vrfy(argumentText) : .expn(argumentText)
        case "BDAT":
            let words = argument.split(separator: 0x20)
            guard (1...2).contains(words.count), let size = parseNumber(words[0]) else {
                throw .badArgument("BDAT needs a chunk size")
            }
            if words.count == 2 {
                guard String(decoding: words[1], as: UTF8.self).uppercased() == "LAST" else {
                    throw .badArgument("BDAT takes only LAST after the size")
                }
                return .bdat(size: size, last: true)
            }
            return .bdat(size: size, last: false)
        case "AUTH":
            let words = argument.split(separator: 0x20)
            guard (1...2).contains(words.count) else { throw .badArgument("AUTH needs a mechanism and at most one response") }
            let mechanism = String(decoding: words[0], as: UTF8.self).uppercased()
            guard mechanism.utf8.count <= 20,
                mechanism.utf8.allSatisfy({ isUpperAlpha($0) || isDigit($0) || $0 == 0x2D || $0 == 0x5F })
            else { throw .badArgument("bad mechanism name") }
            let response = words.count == 2 ? Redacted(String(decoding: words[1], as: UTF8.self)) : nil
            return .auth(mechanism: mechanism, initialResponse: response)
        default:
            throw .unknownCommand(sanitizeForLog(verb, maximumLength: 20))
        }
    }

    // MARK: - Paths

    /// Checks a case-insensitive prefix like `FROM:` and returns what follows, leading spaces removed.
    private static func afterPrefix(_ prefix: String, in argument: [UInt8], usage: String) throws(SMTPParseError) -> [UInt8] {
        let prefixBytes = Array(prefix.utf8)
        guard argument.count >= prefixBytes.count,
            String(decoding: argument[..<prefixBytes.count], as: UTF8.self).uppercased() == prefix
        else { throw .badArgument("use \(usage)") }
        var index = prefixBytes.count
        while index < argument.count, argument[index] == 0x20 { index += 1 }
        return Array(argument[index...])
    }

    /// Splits `<path> params` at the closing `>` (outside quotes); returns the bytes between the brackets.
    private static func splitPath(
        _ bytes: [UInt8], error: (String) -> SMTPParseError
    ) throws(SMTPParseError) -> ([UInt8], [UInt8]) {
        guard bytes.first == UInt8(ascii: "<") else { throw error("the address must be in angle brackets") }
        var index = 1
        var inQuotes = false
        while index < bytes.count {
            let byte = bytes[index]
            if inQuotes {
                if byte == UInt8(ascii: "\\") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inQuotes = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: ">") {
                break
            } else if byte == UInt8(ascii: "<") {
                throw error("unexpected '<' in address")
            }
            index += 1
        }
        guard index < bytes.count else { throw error("missing '>'") }
        let path = Array(bytes[1..<index])
        let rest = Array(bytes[(index + 1)...])
        guard rest.isEmpty || rest.first == 0x20 else { throw error("text after '>' must be separated by a space") }
        guard path.count <= 254 else { throw error("address longer than 256 octets") }
        return (path, rest)
    }

    /// `Path = "<" [ A-d-l ":" ] Mailbox ">"` without the brackets; the source route is checked and dropped.
    private static func parsePath(_ path: [UInt8], error: (String) -> SMTPParseError) throws(SMTPParseError) -> SMTPMailbox {
        var mailboxBytes = path[...]
        if path.first == UInt8(ascii: "@") {
            guard let colon = path.firstIndex(of: UInt8(ascii: ":")) else { throw error("source route without ':'") }
            for hop in path[..<colon].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                guard hop.first == UInt8(ascii: "@"), isDomain(Array(hop.dropFirst())) else {
                    throw error("malformed source route")
                }
            }
            mailboxBytes = path[(colon + 1)...]
        }
        let bytes = Array(mailboxBytes)
        // Local-part = Dot-string / Quoted-string
        var index = 0
        if bytes.first == UInt8(ascii: "\"") {
            index = 1
            var closed = false
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") {
                    guard index + 1 < bytes.count, bytes[index + 1] >= 0x20, bytes[index + 1] <= 0x7E else {
                        throw error("bad escape in quoted local part")
                    }
                    index += 2
                    continue
                }
                if byte == UInt8(ascii: "\"") {
                    closed = true
                    index += 1
                    break
                }
                guard byte == 0x20 || byte == 0x21 || (byte >= 0x23 && byte <= 0x5B) || (byte >= 0x5D && byte <= 0x7E)
                    || byte >= 0x80
                else { throw error("bad character in quoted local part") }
                index += 1
            }
            guard closed else { throw error("unterminated quoted local part") }
        } else {
            while index < bytes.count, bytes[index] != UInt8(ascii: "@") { index += 1 }
            guard isDotString(bytes[..<index]) else { throw error("bad local part") }
        }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "@") else { throw error("address needs '@domain'") }
        let localPart = Array(bytes[..<index])
        let domain = Array(bytes[(index + 1)...])
        guard localPart.count <= 64 else { throw error("local part longer than 64 octets") }
        guard isDomain(domain) || isAddressLiteral(domain) else { throw error("bad domain") }
        return SMTPMailbox(
            localPart: String(decoding: localPart, as: UTF8.self), domain: String(decoding: domain, as: UTF8.self))
    }

    /// `Dot-string = Atom *("." Atom)`, atext plus UTF-8 (RFC 6531).
    private static func isDotString(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty else { return false }
        return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { atom in
            !atom.isEmpty && atom.allSatisfy(isAtext)
        }
    }

    private static func isAtext(_ byte: UInt8) -> Bool {
        if isUpperAlpha(byte) || isLowerAlpha(byte) || isDigit(byte) || byte >= 0x80 { return true }
        return Array("!#$%&'*+-/=?^_`{|}~".utf8).contains(byte)
    }

    /// `Domain = sub-domain *("." sub-domain)`; sub-domains are LDH labels or UTF-8 U-labels, at most 255 octets.
    private static func isDomain(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { label in
            guard let first = label.first, let last = label.last, label.count <= 63 else { return false }
            let isLetDig: (UInt8) -> Bool = { isUpperAlpha($0) || isLowerAlpha($0) || isDigit($0) || $0 >= 0x80 }
            return isLetDig(first) && isLetDig(last) && label.allSatisfy { isLetDig($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// `address-literal = "[" ( IPv4 / "IPv6:" … / tag ":" dcontent ) "]"`, checked for its characters only.
    private static func isAddressLiteral(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 3, bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") else { return false }
        return bytes.dropFirst().dropLast().allSatisfy { ($0 >= 33 && $0 <= 90) || ($0 >= 94 && $0 <= 126) }
    }

    // MARK: - Parameters

    private enum ValueRule {
        case none, number, required, oneOf([String]), notify, orcpt
    }

    private static let mailParameters: [String: ValueRule] = [
        "SIZE": .number, "BODY": .oneOf(["7BIT", "8BITMIME", "BINARYMIME"]), "SMTPUTF8": .none, "AUTH": .required,
        "RET": .oneOf(["FULL", "HDRS"]), "ENVID": .required,
    ]

    private static let rcptParameters: [String: ValueRule] = ["NOTIFY": .notify, "ORCPT": .orcpt]

    /// `Mail-parameters = esmtp-param *(SP esmtp-param)`; keywords unique, values checked per keyword.
    private static func parseParameters(
        _ bytes: [UInt8], known: [String: ValueRule]
    ) throws(SMTPParseError) -> [SMTPParameter] {
        var parameters: [SMTPParameter] = []
        for word in bytes.split(separator: 0x20) {
            let equals = word.firstIndex(of: UInt8(ascii: "="))
            let keywordBytes = word[..<(equals ?? word.endIndex)]
            guard let first = keywordBytes.first, isUpperAlpha(first) || isLowerAlpha(first) || isDigit(first),
                keywordBytes.allSatisfy({ isUpperAlpha($0) || isLowerAlpha($0) || isDigit($0) || $0 == 0x2D })
            else { throw .badArgument("malformed parameter") }
            let keyword = String(decoding: keywordBytes, as: UTF8.self).uppercased()
            var value: String?
            if let equals {
                let valueBytes = word[(equals + 1)...]
                guard !valueBytes.isEmpty, valueBytes.allSatisfy({ $0 > 0x20 && $0 != UInt8(ascii: "=") && $0 != 0x7F })
                else { throw .badArgument("malformed value for \(keyword)") }
                value = String(decoding: valueBytes, as: UTF8.self)
            }
            guard let rule = known[keyword] else { throw .unknownParameter(sanitizeForLog(keyword, maximumLength: 20)) }
            guard parameters.first(named: keyword) == nil else { throw .badArgument("\(keyword) given twice") }
            switch rule {
            case .none:
                guard value == nil else { throw .badArgument("\(keyword) takes no value") }
            case .number:
                guard let text = value, parseNumber(Array(text.utf8)[...]) != nil else {
                    throw .badArgument("\(keyword) needs a number")
                }
            case .required:
                guard value != nil else { throw .badArgument("\(keyword) needs a value") }
            case .oneOf(let choices):
                guard let text = value?.uppercased(), choices.contains(text) else {
                    throw .badArgument("\(keyword) must be one of \(choices.joined(separator: ", "))")
                }
                value = text
            case .notify:
                guard let text = value?.uppercased() else { throw .badArgument("NOTIFY needs a value") }
                let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                let valid = items == ["NEVER"]
                    || (!items.isEmpty && Set(items).count == items.count
                        && items.allSatisfy { ["SUCCESS", "FAILURE", "DELAY"].contains($0) })
                guard valid else { throw .badArgument("NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY") }
                value = text
            case .orcpt:
                guard let text = value, let semicolon = text.firstIndex(of: ";"), semicolon != text.startIndex,
                    text.index(after: semicolon) != text.endIndex
                else { throw .badArgument("ORCPT must be addr-type;address") }
            }
            parameters.append(SMTPParameter(keyword, value))
        }
        return parameters
    }
}

/// Digits only, at most 18 of them (no overflow), as used by SIZE and BDAT.
func parseNumber(_ bytes: ArraySlice<UInt8>) -> Int? {
    guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy(isDigit) else { return nil }
    return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
}

func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
func isUpperAlpha(_ byte: UInt8) -> Bool { byte >= 0x41 && byte <= 0x5A }
func isLowerAlpha(_ byte: UInt8) -> Bool { byte >= 0x61 && byte <= 0x7A }
