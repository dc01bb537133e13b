// POP3: grammar, framing, encoders and state machines for POP3 (RFC 1939, RFC 2449, RFC 5034), free of I/O.

public import MailCore

/// Everything that can go wrong while framing, parsing or encoding POP3, with the numbers involved.
///
/// `description` is one sentence that says what to do; remote text in it is sanitized and cut.
public enum POP3Error: MailGateError, Equatable {
    /// A line grew past its bound without a line end.
    case lineTooLong(actualCount: Int, maximumCount: Int)
    /// A multi-line response grew past its bound.
    case responseTooLarge(actualCount: Int, maximumCount: Int)
    /// A server reply that starts with neither `+OK`, `-ERR` nor `+`.
    case malformedReply(String)
    /// A client command whose keyword POP3 does not define.
    case unknownCommand(String)
    /// A defined command MailGate refuses (APOP: it needs the plain password on our side).
    case unsupportedCommand(String)
    /// A command with a missing, surplus or malformed argument.
    case invalidArgument(command: String, reason: String)
    /// The upstream client was asked to do something its state does not allow (a programming error).
    case invalidClientState(command: String, state: String)

    public var description: String {
        switch self {
        case .lineTooLong(let actual, let maximum):
            return "The POP3 peer sent a line of at least \(actual) bytes, longer than the limit of \(maximum); the connection was closed."
        case .responseTooLarge(let actual, let maximum):
            return "A POP3 multi-line response reached \(actual) bytes, more than the limit of \(maximum); "
                + "the connection was closed (raise the message size limit if such messages are expected)."
        case .malformedReply(let line):
            return "The POP3 server sent a reply that is not +OK, -ERR or + (\"\(sanitizeForLog(line, maximumLength: 60))\"); "
                + "check that the server speaks POP3."
        case .unknownCommand(let keyword):
            return "The POP3 command \"\(sanitizeForLog(keyword, maximumLength: 20))\" is not known; use a standard POP3 client."
        case .unsupportedCommand(let keyword):
            return "The POP3 command \(sanitizeForLog(keyword, maximumLength: 20)) is not supported by MailGate; log in with USER/PASS or AUTH PLAIN."
        case .invalidArgument(let command, let reason):
            return "The POP3 command \(sanitizeForLog(command, maximumLength: 20)) has an invalid argument: \(reason)."
        case .invalidClientState(let command, let state):
            return "The POP3 upstream cannot send \(command) in state \(state); this is a MailGate bug, please report it."
        }
    }
}
