// SMTP: typed command-parse failures, each carrying the reply the client deserves.
public import MailCore

/// Why a client command line was refused; `reply` is what the server answers.
public enum SMTPParseError: MailGateError, Equatable {
    /// The line exceeded the command-line bound: `500 5.5.2 Line too long`.
    case lineTooLong(actualCount: Int, maximumCount: Int)
    /// Control bytes, invalid UTF-8 or no verb: `500 5.5.2`.
    case syntax(String)
    /// A verb MailGate does not know: `500 5.5.2`.
    case unknownCommand(String)
    /// A known verb with a missing or malformed argument: `501 5.5.4`.
    case badArgument(String)
    /// MAIL FROM with an unparsable path: `501 5.1.7`.
    case badSenderAddress(String)
    /// RCPT TO with an unparsable path: `501 5.1.3`.
    case badRecipientAddress(String)
    /// An ESMTP parameter MailGate does not know: `555 5.5.4`.
    case unknownParameter(String)

    /// The reply for the client.
    public var reply: SMTPReply {
        switch self {
        case .lineTooLong: SMTPReply(500, (5, 5, 2), "Line too long")
        case .syntax(let reason): SMTPReply(500, (5, 5, 2), "Syntax error: \(reason)")
        case .unknownCommand: SMTPReply(500, (5, 5, 2), "Command unrecognized")
        case .badArgument(let reason): SMTPReply(501, (5, 5, 4), "Syntax error in arguments: \(reason)")
        case .badSenderAddress(let reason): SMTPReply(501, (5, 1, 7), "Bad sender address syntax: \(reason)")
        case .badRecipientAddress(let reason): SMTPReply(501, (5, 1, 3), "Bad recipient address syntax: \(reason)")
        case .unknownParameter(let keyword): SMTPReply(555, (5, 5, 4), "Unsupported parameter \(keyword)")
        }
    }

    public var description: String {
        switch self {
        case .lineTooLong(let actual, let maximum):
            "The client sent a command line of \(actual) octets, more than the \(maximum) allowed; it was refused."
        case .syntax(let reason): "The client sent a malformed command line (\(reason)); it was refused."
        case .unknownCommand(let verb): "The client sent an unknown command '\(verb)'; it was refused."
        case .badArgument(let reason): "The client sent a command with a bad argument (\(reason)); it was refused."
        case .badSenderAddress(let reason): "The client sent a malformed sender address (\(reason)); it was refused."
        case .badRecipientAddress(let reason): "The client sent a malformed recipient address (\(reason)); it was refused."
        case .unknownParameter(let keyword): "The client used the unsupported parameter \(keyword); it was refused."
        }
    }
}
