// MailCore: bounded bytes, framing, limits, redaction and the error protocol shared by every module.

/// Every MailGate error is a typed value that can say, in one sentence, what went wrong and what to do.
///
/// `description` is safe to log and to show an administrator: it never contains a secret.
public protocol MailGateError: Error, CustomStringConvertible, Sendable {}
