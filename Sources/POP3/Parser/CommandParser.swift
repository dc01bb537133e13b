// POP3: client command lines to `POP3Command`, for the server side (RFC 1939, RFC 2449, RFC 5034, RFC 2595).

import MailCore

/// Parses one command line from a POP3 client. Keywords are case-insensitive; arguments are separated by single
/// spaces; message numbers are positive decimal numbers without sign; lines are bounded by
/// `maximumCommandLength` (255 octets with CRLF, RFC 2449 §4). APOP is refused with a typed error because
/// MailGate keeps only password hashes.
public struct POP3CommandParser: Sendable {
    public let maximumCommandLength: Int
    /// Largest message number accepted (POP3 numbers messages from 1; a larger one is hostile input).
    public static let maximumMessageNumber = 2_147_483_647

    public init(maximumCommandLength: Int = POP3Limits.rfcCommandLine) {
        self.maximumCommandLength = maximumCommandLength
    }

    // command = keyword *(SP argument)   ; keyword = 3*4ALPHA, argument = 1*40 printable, line ≤ 255 with CRLF
    /// The command on `line` (without CRLF).
    public func parse(line: [UInt8]) throws(POP3Error) -> POP3Command {
        guard line.count + 2 <= maximumCommandLength else {
            throw .lineTooLong(actualCount: line.count + 2, maximumCount: maximumCommandLength)
        }
        guard !line.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalidArgument(command: "", reason: "the line contains control characters")
        }
        let keywordEnd = line.firstIndex(of: UInt8(ascii: " ")) ?? line.count
        let keyword = String(decoding: line[..<keywordEnd], as: UTF8.self).uppercased()
        guard let verb = POP3Verb(rawValue: keyword) else { throw .unknownCommand(keyword) }
        let rest = keywordEnd < line.count ? Array(line[(keywordEnd + 1)...]) : []
        let hasArgumentSpace = keywordEnd < line.count
        let arguments = rest.isEmpty ? [] : rest.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if verb != .pass {
            guard !arguments.contains(where: \.isEmpty), !(hasArgumentSpace && rest.isEmpty) else {
                throw .invalidArgument(command: keyword, reason: "arguments must be separated by single spaces")
            }
        }

        func count(_ allowed: ClosedRange<Int>) throws(POP3Error) {
            guard allowed.contains(arguments.count) else {
                throw .invalidArgument(
                    command: keyword,
                    reason: allowed.upperBound == 0 ? "it takes no arguments" : "it takes \(allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound) to \(allowed.upperBound)") argument(s)")
            }
        }
        func number(_ text: String, allowZero: Bool = false) throws(POP3Error) -> Int {
            guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(text), value <= Self.maximumMessageNumber, allowZero || value > 0
            else {
                throw .invalidArgument(command: keyword, reason: "\"\(text.prefix(20))\" is not a valid number")
            }
            return value
        }

        switch verb {
        case .user:
            try count(1...1)
            return .user(arguments[0])
        case .pass:
            guard !rest.isEmpty else { throw .invalidArgument(command: keyword, reason: "the password is missing") }
            return .pass(.init(String(decoding: rest, as: UTF8.self)))
        case .apop:
            throw .unsupportedCommand("APOP")
        case .auth:
            try count(0...2)
            guard let mechanism = arguments.first else { return .auth(mechanism: nil, initialResponse: nil) }
            guard mechanism.utf8.count <= 20, mechanism.utf8.allSatisfy({
                ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F
            }) else { throw .invalidArgument(command: keyword, reason: "the mechanism name is not valid") }
            var initial: String? = nil
            if arguments.count == 2 {
                let response = arguments[1]
                guard response == "=" || response.utf8.allSatisfy({
                    ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2F || $0 == 0x3D
                }) else { throw .invalidArgument(command: keyword, reason: "the initial response is not base64") }
                initial = response
            }
            return .auth(mechanism: mechanism.uppercased(), initialResponse: initial.map { .init($0) })
        case .capa: try count(0...0); return .capa
        case .stat: try count(0...0); return .stat
        case .noop: try count(0...0); return .noop
        case .rset: try count(0...0); return .rset
        case .quit: try count(0...0); return .quit
        case .stls: try count(0...0); return .stls
        case .list:
            try count(0...1)
            return .list(try arguments.first.map { (text: String) throws(POP3Error) in try number(text) })
        case .uidl:
            try count(0...1)
            return .uidl(try arguments.first.map { (text: String) throws(POP3Error) in try number(text) })
        case .retr:
            try count(1...1)
            return .retr(try number(arguments[0]))
        case .dele:
            try count(1...1)
            return .dele(try number(arguments[0]))
        case .top:
            try count(2...2)
            return .top(try number(arguments[0]), lines: try number(arguments[1], allowZero: true))
        }
    }
}
