/// Every bound MailGate enforces, in one place, each with its default and why (STYLE.md rule 3).
///
/// Input past a bound gets a protocol error and the connection is closed; nothing is ever buffered without one.
public struct Limits: Sendable, Equatable {
    /// Longest SMTP command line from a client, CRLF included (RFC 5321 §4.5.3.1.4 says 512; we allow more).
    public var smtpCommandLine: Int = 2_048
    /// Longest SMTP text line inside DATA, CRLF included (RFC 5321 §4.5.3.1.6: 1000).
    public var smtpTextLine: Int = 1_000
    /// Longest SASL response line (RFC 4954 requires at least 12 288 octets; XOAUTH2 tokens are several KB).
    public var saslResponse: Int = 12_288
    /// Longest line a Microsoft 365 upstream may send us (reply lines, capability lists, XOAUTH2 challenges).
    public var upstreamLine: Int = 16_384
    /// Longest IMAP command or response line outside literals.
    public var imapLine: Int = 8_192
    /// Largest message MailGate accepts when the upstream does not say (Exchange Online's service maximum, 150 MiB).
    public var messageSize: Int = 157_286_400
    /// Bytes of a message kept in memory for the sent copy before the spool spills to a file.
    public var spoolMemory: Int = 1_048_576
    /// Bytes queued for writing on one connection before reading from its peer pauses (back-pressure).
    public var writeBufferHighWater: Int = 1_048_576
    /// Bytes read from a socket at a time.
    public var readChunk: Int = 65_536
    /// Protocol errors a client may make in one session before it is disconnected.
    public var errorBudget: Int = 10
    /// Seconds a client connection may stay silent before it is closed.
    public var idleTimeoutSeconds: Double = 300
    /// Seconds allowed for a TCP connect plus TLS handshake to an upstream.
    public var connectTimeoutSeconds: Double = 30
    /// Seconds allowed for a TLS handshake from a client.
    public var handshakeTimeoutSeconds: Double = 30
    /// SMTP client sessions open at once over all SMTP listeners; one more is told `421 4.7.0` and closed, so a
    /// flood costs neither descriptors nor upstream connections (each session holds one to Microsoft 365).
    public var smtpSessions: Int = 500
    /// SMTP client sessions open at once from one client address (a whole site behind NAT counts as one; keep it
    /// well above the number of devices that submit at the same time).
    public var smtpSessionsPerAddress: Int = 100
    /// Logins waiting for the slow password hash at most (beyond those being hashed); one more is told
    /// `454 4.7.0` at once instead of queueing without bound (each scrypt costs 32 MiB and ~100 ms of a core).
    public var passwordHashQueue: Int = 256

    public init() {}

    /// The defaults.
    public static let standard = Limits()
}
