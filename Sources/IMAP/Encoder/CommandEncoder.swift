// IMAP: commands to bytes, and to log lines without secrets.

public import MailCore

/// Encodes `TaggedCommand`s for the wire and describes them for logs with every secret replaced by its size.
public struct IMAPCommandEncoder: Sendable {
    /// Whether `{n+}` may be used (the server advertised LITERAL+, RFC 7888).
    public var literalPlus: Bool
    /// Whether `{n+}` may be used up to 4096 octets (LITERAL-).
    public var literalMinus: Bool

    public init(literalPlus: Bool = false, literalMinus: Bool = false) {
        self.literalPlus = literalPlus
        self.literalMinus = literalMinus
    }

    /// An encoder using what `capabilities` allow.
    public init(capabilities: [Capability]) {
        self.init(literalPlus: capabilities.contains(.literalPlus), literalMinus: capabilities.contains(.literalMinus))
    }

    /// `DONE` CRLF, which ends IDLE (RFC 2177).
    public static let done: [UInt8] = Array("DONE\r\n".utf8)
    /// `*` CRLF, which cancels an AUTHENTICATE exchange (RFC 3501 §6.2.2).
    public static let cancelAuthentication: [UInt8] = Array("*\r\n".utf8)
    /// An empty line: the answer to an XOAUTH2 error challenge, after which the server sends its tagged NO.
    public static let emptyResponse: [UInt8] = Array("\r\n".utf8)

    /// A SASL response line during AUTHENTICATE: base64 of `payload`, CRLF.
    public static func authenticationResponse(_ payload: Redacted<[UInt8]>) -> [UInt8] {
        Base64Codec.standard.encode(payload.revealed, padding: .required) + [0x0D, 0x0A]
    }

    /// The command as segments: bytes to write, with `.waitForContinuation` after each synchronizing literal's
    /// announcement.
    public func encode(_ tagged: TaggedCommand) -> [IMAPCommandSegment] {
        var writer = IMAPCommandWriter(literalPlus: literalPlus, literalMinus: literalMinus)
        writer.write(tagged.tag)
        writer.write(" ")
        switch tagged.command {
        case .capability, .noop, .logout, .idle:
            writer.write(tagged.command.name)
        case .authenticate(let mechanism, let initialResponse):
            writer.write("AUTHENTICATE \(mechanism)")
            if let initialResponse {
                writer.write(" ")
                if initialResponse.revealed.isEmpty {
                    writer.write("=")
                } else {
                    writer.write(Base64Codec.standard.encode(initialResponse.revealed, padding: .required))
                }
            }
        case .login(let username, let password):
            writer.write("LOGIN ")
            writer.writeLiteral(Array(username.utf8))
            writer.write(" ")
            writer.writeLiteral(Array(password.revealed.utf8))
        case .list(let reference, let pattern):
            writer.write("LIST ")
            writer.writeMailbox(reference)
            writer.write(" ")
            writer.writeListMailbox(pattern)
        case .select(let mailbox):
            writer.write("SELECT ")
            writer.writeMailbox(mailbox)
        case .examine(let mailbox):
            writer.write("EXAMINE ")
            writer.writeMailbox(mailbox)
        case .uidSearchHeader(let field, let value):
            writer.write("UID SEARCH ")
            if !(field + value).utf8.allSatisfy({ $0 < 0x80 }) { writer.write("CHARSET UTF-8 ") }
            writer.write("HEADER ")
            writer.writeAstring(Array(field.utf8))
            writer.write(" ")
            writer.writeString(Array(value.utf8))  // quoted even when an atom would do: servers expect it
        case .uidSearchHeaderAny(let field, let values):
            writer.write("UID SEARCH ")
            if !(field + values.joined()).utf8.allSatisfy({ $0 < 0x80 }) { writer.write("CHARSET UTF-8 ") }
            for (index, value) in values.enumerated() {
                if index < values.count - 1 { writer.write("OR ") }
                writer.write("HEADER ")
                writer.writeAstring(Array(field.utf8))
                writer.write(" ")
                writer.writeString(Array(value.utf8))
                if index < values.count - 1 { writer.write(" ") }
            }
        case .append(let mailbox, let flags, let internalDate, let message):
            writer.write("APPEND ")
            writer.writeMailbox(mailbox)
            if !flags.isEmpty {
                writer.write(" ")
                writer.writeFlagList(flags)
            }
            if let internalDate {
                writer.write(" ")
                writer.writeString(Array(internalDate.utf8))
            }
            writer.write(" ")
            writer.writeLiteral(message)
        }
        writer.write("\r\n")
        return writer.finish()
    }

    /// The command as one log line: SASL responses, passwords and message bodies appear only as `[N bytes]`,
    /// and remote-controlled text is sanitized.
    public func descriptionWithoutSecrets(_ tagged: TaggedCommand) -> String {
        let prefix = sanitizeForLog(tagged.tag, maximumLength: 40) + " "
        switch tagged.command {
        case .authenticate(let mechanism, let initialResponse):
            let response = initialResponse.map { " [\($0.revealed.count) bytes]" } ?? ""
            return prefix + "AUTHENTICATE " + sanitizeForLog(mechanism, maximumLength: 40) + response
        case .login(let username, let password):
            return prefix + "LOGIN " + sanitizeForLog(username) + " [\(password.revealed.utf8.count) bytes]"
        case .append(let mailbox, let flags, let internalDate, let message):
            var text = prefix + "APPEND " + sanitizeForLog(mailbox.bytes)
            if !flags.isEmpty { text += " (" + flags.map(\.rawValue).joined(separator: " ") + ")" }
            if let internalDate { text += " \"" + sanitizeForLog(internalDate, maximumLength: 40) + "\"" }
            return text + " [\(message.count) bytes]"
        default:
            var bytes: [UInt8] = []
            for case .bytes(let chunk) in encode(tagged) { bytes += chunk }
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            return sanitizeForLog(bytes, maximumLength: 400)
        }
    }
}
