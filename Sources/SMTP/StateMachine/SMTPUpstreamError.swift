// SMTP: typed failures of the upstream (Microsoft 365) side, classified so the session knows what to tell the client.
public import MailCore

/// Why the upstream conversation cannot go on.
public enum SMTPUpstreamError: MailGateError, Equatable {
    /// Where the fault lies, so the session can choose between retrying, a 4xx and an administrator message.
    public enum Kind: String, Sendable {
        /// The configuration forbids what was asked (plaintext upstream).
        case configuration
        /// The server does not offer what MailGate requires (STARTTLS, XOAUTH2).
        case remoteConfiguration
        /// The server refused or closed (greeting, EHLO, STARTTLS, 421): try again later.
        case temporary
        /// The server (or the caller) broke the protocol.
        case protocolViolation
    }

    /// `smtp_security = "none"` without `allow_insecure_upstream = true`.
    case insecureNotAllowed
    /// `smtp_security = "starttls"` but the EHLO reply has no STARTTLS.
    case startTLSNotOffered
    /// The EHLO reply (after TLS) has no `AUTH … XOAUTH2`.
    case xoauth2NotOffered
    /// The greeting was not 220.
    case greetingRejected(SMTPReply)
    /// EHLO was refused.
    case ehloRejected(SMTPReply)
    /// STARTTLS was refused.
    case startTLSRejected(SMTPReply)
    /// The server said 421 outside a command we were waiting on.
    case serviceClosing(SMTPReply)
    /// A reply arrived that the current state does not expect (e.g. between STARTTLS and the handshake).
    case unexpectedReply(SMTPReply, state: String)
    /// A message sent with DATA cannot be taken back; the upstream connection must be dropped.
    case messageAbandoned
    /// More message bytes arrived before DATA's 354 than may be held.
    case messageBufferOverflow(maximumCount: Int)
    /// More envelope commands were queued than allowed while the upstream was busy.
    case tooManyQueuedCommands(maximumCount: Int)
    /// An input arrived in a state where it makes no sense (a bug in the caller).
    case unexpectedInput(String, state: String)

    public var kind: Kind {
        switch self {
        case .insecureNotAllowed: .configuration
        case .startTLSNotOffered, .xoauth2NotOffered: .remoteConfiguration
        case .greetingRejected, .ehloRejected, .startTLSRejected, .serviceClosing: .temporary
        case .unexpectedReply, .messageAbandoned, .messageBufferOverflow, .tooManyQueuedCommands, .unexpectedInput:
            .protocolViolation
        }
    }

    public var description: String {
        switch self {
        case .insecureNotAllowed:
            "smtp_security is \"none\" but allow_insecure_upstream is not true; use \"starttls\" or \"tls\", or allow it explicitly."
        case .startTLSNotOffered:
            "The upstream SMTP server does not offer STARTTLS; check the smtp address and port, or set smtp_security = \"tls\"."
        case .xoauth2NotOffered:
            "The upstream SMTP server does not offer AUTH XOAUTH2; check that SMTP AUTH is enabled for the tenant and mailbox."
        case .greetingRejected(let reply):
            "The upstream SMTP server refused the connection (\(sanitizeForLog(reply.description))); try again later."
        case .ehloRejected(let reply):
            "The upstream SMTP server refused EHLO (\(sanitizeForLog(reply.description))); check the server address."
        case .startTLSRejected(let reply):
            "The upstream SMTP server refused STARTTLS (\(sanitizeForLog(reply.description))); try again later."
        case .serviceClosing(let reply):
            "The upstream SMTP server closed the session (\(sanitizeForLog(reply.description))); try again later."
        case .unexpectedReply(let reply, let state):
            "The upstream SMTP server sent an unexpected reply in state \(state) (\(sanitizeForLog(reply.description))); the connection is dropped."
        case .messageAbandoned:
            "A message already being sent with DATA was refused locally; the upstream connection must be dropped to discard it."
        case .messageBufferOverflow(let maximum):
            "More than \(maximum) message bytes arrived before the upstream accepted DATA; the upstream connection is dropped."
        case .tooManyQueuedCommands(let maximum):
            "More than \(maximum) commands were queued for the upstream; the upstream connection is dropped."
        case .unexpectedInput(let input, let state):
            "The upstream state machine received \(input) in state \(state); this is a bug in the gateway."
        }
    }
}
