// IMAP: grammar, framing, encoders and state machines for IMAP4rev1 (RFC 3501), free of I/O.

public import MailCore

/// Everything that can go wrong while framing, parsing or encoding IMAP, each case with the numbers involved.
///
/// `description` is one sentence an administrator can act on; it never quotes secrets and cuts remote text
/// with `sanitizeForLog`.
public enum IMAPError: MailGateError, Equatable {
    /// A line (outside literals) grew past its bound without a line end.
    case lineTooLong(actualCount: Int, maximumCount: Int)
    /// A literal announced more octets than allowed (`IMAPLimits.responseLiteral`).
    case literalTooLarge(announcedCount: Int, maximumCount: Int)
    /// A whole response (lines plus literals) grew past `IMAPLimits.responseFrame`.
    case responseTooLarge(actualCount: Int, maximumCount: Int)
    /// A number had more digits than its type can hold (`{99999999999999999999}`, a 33-bit UID).
    case numberTooLarge(digits: String, maximumValue: UInt64)
    /// Parenthesised lists nested deeper than `IMAPLimits.parserDepth`.
    case tooMuchNesting(limit: Int)
    /// The bytes do not follow the grammar; `production` names the ABNF rule, `offset` the byte in the response.
    case malformed(production: String, offset: Int, found: String)
    /// A mailbox name is not valid modified UTF-7 (RFC 3501 §5.1.3).
    case invalidModifiedUTF7(reason: String)
    /// A command (its lines and inline literals) grew past `IMAPLimits.inlineFrame`.
    case commandTooLarge(actualCount: Int, maximumCount: Int)
    /// The upstream client was asked to do something its state does not allow (a programming error in the caller).
    case invalidClientState(command: String, state: String)

    public var description: String {
        switch self {
        case .lineTooLong(let actual, let maximum):
            return "The IMAP peer sent a line of at least \(actual) bytes, longer than the limit of \(maximum); "
                + "the connection was closed (raise the line limit only if the server is trusted)."
        case .literalTooLarge(let announced, let maximum):
            return "The IMAP peer announced a literal of \(announced) bytes, more than the limit of \(maximum); "
                + "the connection was closed (raise the literal limit if such messages are expected)."
        case .responseTooLarge(let actual, let maximum):
            return "An IMAP response reached \(actual) bytes, more than the limit of \(maximum); the connection was closed."
        case .numberTooLarge(let digits, let maximum):
            return "The IMAP peer sent the number \(sanitizeForLog(digits, maximumLength: 40)), larger than \(maximum); "
                + "the connection was closed as the data cannot be trusted."
        case .tooMuchNesting(let limit):
            return "An IMAP response nests parentheses deeper than \(limit) levels; the connection was closed."
        case .malformed(let production, let offset, let found):
            return "The IMAP peer sent a malformed \(production) at byte \(offset) (found \"\(found)\"); "
                + "the connection was closed; check that the server speaks IMAP4rev1."
        case .invalidModifiedUTF7(let reason):
            return "A mailbox name is not valid modified UTF-7 (\(reason)); rename the folder or report the server's name."
        case .commandTooLarge(let actual, let maximum):
            return "An IMAP command reached \(actual) bytes outside streamed literals, more than the limit of \(maximum); "
                + "the connection was closed."
        case .invalidClientState(let command, let state):
            return "The IMAP upstream cannot send \(command) in state \(state); this is a MailGate bug, please report it."
        }
    }
}
