// SMTP: the command type (RFC 5321 §4.1 plus SIZE, 8BITMIME, SMTPUTF8, CHUNKING, DSN, AUTH) and its encoder.
public import MailCore

/// An address `local-part@domain` (RFC 5321 §4.1.2), kept as written so it re-encodes byte for byte.
///
/// `localPart` is a dot-string or a quoted string with its quotes; `domain` is a domain name or an
/// address literal with its brackets. Either may hold UTF-8 only under SMTPUTF8 (RFC 6531).
public struct SMTPMailbox: Sendable, Hashable, CustomStringConvertible {
    public var localPart: String
    public var domain: String

    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain
    }

    /// Whether the address has non-ASCII characters and so needs `SMTPUTF8` on MAIL (RFC 6531 §3.4).
    public var requiresSMTPUTF8: Bool { !localPart.utf8.allSatisfy { $0 < 0x80 } || !domain.utf8.allSatisfy { $0 < 0x80 } }

    public var description: String { localPart + "@" + domain }
}

/// The argument of `MAIL FROM:`: an address or the null path `<>` used by bounces.
public enum SMTPReversePath: Sendable, Hashable, CustomStringConvertible {
    case null
    case mailbox(SMTPMailbox)

    /// The path with its angle brackets, as on the wire.
    public var description: String {
        switch self {
        case .null: "<>"
        case .mailbox(let mailbox): "<\(mailbox)>"
        }
    }

    /// Whether the address needs SMTPUTF8.
    public var requiresSMTPUTF8: Bool {
        if case .mailbox(let mailbox) = self { return mailbox.requiresSMTPUTF8 }
        return false
    }
}

/// The argument of `RCPT TO:`: an address, or the bare `<Postmaster>` every server must accept.
public enum SMTPForwardPath: Sendable, Hashable, CustomStringConvertible {
    case postmaster
    case mailbox(SMTPMailbox)

    public var description: String {
        switch self {
        case .postmaster: "<Postmaster>"
        case .mailbox(let mailbox): "<\(mailbox)>"
        }
    }

    /// Whether the address needs SMTPUTF8.
    public var requiresSMTPUTF8: Bool {
        if case .mailbox(let mailbox) = self { return mailbox.requiresSMTPUTF8 }
        return false
    }
}

/// One `esmtp-param` of MAIL or RCPT (`SIZE=1000`, `SMTPUTF8`), keyword upper-cased, value as sent.
public struct SMTPParameter: Sendable, Hashable, CustomStringConvertible {
    public var keyword: String
    public var value: String?

    public init(_ keyword: String, _ value: String? = nil) {
        self.keyword = keyword.uppercased()
        self.value = value
    }

    public var description: String { value.map { "\(keyword)=\($0)" } ?? keyword }
}

extension Sequence<SMTPParameter> {
    /// The first parameter with this keyword (case-insensitive).
    public func first(named keyword: String) -> SMTPParameter? {
        let wanted = keyword.uppercased()
        return first { $0.keyword == wanted }
    }
}

/// The `BODY=` values (RFC 6152, RFC 3030).
public enum SMTPBodyType: String, Sendable, Hashable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
    case binaryMIME = "BINARYMIME"
}

/// One client command, parsed from a line (see `SMTPCommand.parse`) or built to send upstream (`encode()`).
///
/// C: `MAIL FROM:<a@contoso.com> SIZE=1200 BODY=8BITMIME`
public enum SMTPCommand: Sendable, Equatable {
    case ehlo(String)
    case helo(String)
    case mail(from: SMTPReversePath, parameters: [SMTPParameter])
    case rcpt(to: SMTPForwardPath, parameters: [SMTPParameter])
    case data
    /// RFC 3030: exactly `size` octets follow the command line.
    case bdat(size: Int, last: Bool)
    case rset
    case noop(String?)
    case quit
    case help(String?)
    case vrfy(String)
    case expn(String)
    /// RFC 4954; the initial response may hold a password, so it is redacted (`=` means empty).
    case auth(mechanism: String, initialResponse: Redacted<String>?)
    case startTLS

    /// The command verb, upper-case, for logs and replies.
    public var verb: String {
        switch self {
        case .ehlo: "EHLO"
        case .helo: "HELO"
        case .mail: "MAIL"
        case .rcpt: "RCPT"
        case .data: "DATA"
        case .bdat: "BDAT"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        case .help: "HELP"
        case .vrfy: "VRFY"
        case .expn: "EXPN"
        case .auth: "AUTH"
        case .startTLS: "STARTTLS"
        }
    }

    /// The command line with CRLF, as sent to a server. AUTH's initial response is revealed here: this is the
    /// only place it goes on the wire.
    public func encode() -> [UInt8] {
        var text: String
        switch self {
        case .ehlo(let domain): text = "EHLO \(domain)"
        case .helo(let domain): text = "HELO \(domain)"
        case .mail(let from, let parameters):
            text = "MAIL FROM:\(from)" + parameters.map { " \($0)" }.joined()
        case .rcpt(let to, let parameters):
            text = "RCPT TO:\(to)" + parameters.map { " \($0)" }.joined()
        case .data: text = "DATA"
        case .bdat(let size, let last): text = last ? "BDAT \(size) LAST" : "BDAT \(size)"
        case .rset: text = "RSET"
        case .noop(let argument): text = argument.map { "NOOP \($0)" } ?? "NOOP"
        case .quit: text = "QUIT"
        case .help(let argument): text = argument.map { "HELP \($0)" } ?? "HELP"
        case .vrfy(let argument): text = "VRFY \(argument)"
        case .expn(let argument): text = "EXPN \(argument)"
        case .auth(let mechanism, let initialResponse):
            text = initialResponse.map { "AUTH \(mechanism) \($0.revealed)" } ?? "AUTH \(mechanism)"
        case .startTLS: text = "STARTTLS"
        }
        return Array(text.utf8) + [0x0D, 0x0A]
    }

    /// Whether MAIL or RCPT names a non-ASCII address (then MAIL must carry `SMTPUTF8`).
    public var requiresSMTPUTF8: Bool {
        switch self {
        case .mail(let from, _): from.requiresSMTPUTF8
        case .rcpt(let to, _): to.requiresSMTPUTF8
        default: false
        }
    }
}
