// POP3: commands to bytes, and to log lines without secrets.

public import MailCore

/// Encodes POP3 commands for the upstream server and describes them for logs.
public enum POP3CommandEncoder {
    /// `*` CRLF: cancels an AUTH exchange (RFC 5034 §4).
    public static let cancelAuthentication: [UInt8] = Array("*\r\n".utf8)
    /// An empty line: the answer to an XOAUTH2 error challenge.
    public static let emptyResponse: [UInt8] = Array("\r\n".utf8)

    /// The command line, CRLF included.
    public static func encode(_ command: POP3Command) -> [UInt8] {
        Array(text(of: command, redacting: false).utf8) + [0x0D, 0x0A]
    }

    /// A SASL response line during AUTH: base64 of `payload`, CRLF.
    public static func authenticationResponse(_ payload: Redacted<[UInt8]>) -> [UInt8] {
        Base64Codec.standard.encode(payload.revealed, padding: .required) + [0x0D, 0x0A]
    }

    /// The command for a log line: passwords and initial responses appear as `[N bytes]`.
    public static func descriptionWithoutSecrets(_ command: POP3Command) -> String {
        sanitizeForLog(text(of: command, redacting: true), maximumLength: 200)
    }

    private static func text(of command: POP3Command, redacting: Bool) -> String {
        let verb = command.verb.rawValue
        switch command {
        case .user(let name): return "\(verb) \(name)"
        case .pass(let password): return redacting ? "\(verb) [\(password.revealed.utf8.count) bytes]" : "\(verb) \(password.revealed)"
        case .auth(let mechanism, let initial):
            var line = verb
            if let mechanism { line += " \(mechanism)" }
            if let initial { line += redacting ? " [\(initial.revealed.utf8.count) bytes]" : " \(initial.revealed)" }
            return line
        case .list(let number?), .uidl(let number?), .retr(let number), .dele(let number): return "\(verb) \(number)"
        case .top(let number, let lines): return "\(verb) \(number) \(lines)"
        case .list(nil), .uidl(nil), .capa, .stat, .noop, .rset, .quit, .stls: return verb
        }
    }
}
