/// Every bound MailGate enforces, in one place, each with its default and why (STYLE.md rule 3).
///
/// Input past a bound gets a protocol error and the connection is closed; nothing is ever buffered without one.
public struct Limits: Sendable, Equatable {
    /// Longest SMTP command line from a client, CRLF included (RFC 5321 §4.5.3.1.4 says 512; we allow more).
    public var smtpCommandLine: Int = 2_048
    /// Longest SMTP text line inside DATA, CRLF included. RFC 5321 §4.5.3.1.6 says 1000, but ERP exports and
    /// HTML mail carry far longer lines and Exchange accepts them; DATA is streamed, so this costs no memory.
    public var smtpTextLine: Int = 1_048_576
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
    /// What a bare CR or bare LF inside DATA gets (`[limits] smtp_bare_newline`); see `BareNewlinePolicy`.
    public var smtpBareNewline: BareNewlinePolicy = .reject

    /// Largest APPEND message literal an IMAP client may send; larger ones get `NO [TOOBIG]` before the `+`.
    public var imapAppendLiteral: Int = 52_428_800
    /// IMAP commands a client may have in flight (pipelined) before the gateway stops reading from it.
    public var imapCommandsInFlight: Int = 64
    /// Upstream IMAP sessions per mailbox (Exchange allows about 16; past this a login gets `NO [LIMIT]`).
    public var imapUpstreamSessions: Int = 10
    /// Seconds an authenticated IMAP connection may stay silent (RFC 9051 §5.4: at least 30 minutes).
    public var imapIdleTimeoutSeconds: Double = 1_800
    /// Seconds a message sent through the gateway counts as "just sent": a client's APPEND of it to Sent is not
    /// filed a second time.
    public var imapAppendDedupWindowSeconds: Double = 86_400
    /// SMTP client sessions open at once over all SMTP listeners; one more is told `421 4.7.0` and closed, so a
    /// flood costs neither descriptors nor upstream connections (each session holds one to Microsoft 365).
    public var smtpSessions: Int = 500
    /// SMTP client sessions open at once from one client address (a whole site behind NAT counts as one; keep it
    /// well above the number of devices that submit at the same time).
    public var smtpSessionsPerAddress: Int = 100
    /// Logins waiting for the slow password hash at most (beyond those being hashed); one more is told
    /// `454 4.7.0` at once instead of queueing without bound (each scrypt costs 32 MiB and ~100 ms of a core).
    public var passwordHashQueue: Int = 256
    /// Seconds SIGTERM waits for sessions to finish the message or command in flight before SMTP clients get
    /// `421 4.3.2` and IMAP clients `* BYE` (systemd's own stop timeout is 90 s by default; this stays below it).
    public var drainTimeoutSeconds: Double = 30
    /// Seconds a client may take over one command line, from its first byte to its line end (SMTP, IMAP, POP3).
    /// The idle timer restarts on every byte, so without this a sender of one byte every few seconds (slowloris)
    /// holds a session for ever. Message data (SMTP DATA/BDAT) and IMAP literals are not command lines: they are
    /// bounded by the idle timeout per chunk and by their size. RFC 5321 §4.5.3.2.7 gives a server 5 minutes to
    /// wait for a command; a real client sends one line in well under a second.
    public var commandLineTimeoutSeconds: Double = 60
    /// Seconds a client may stay connected without logging in (SMTP: until AUTH succeeds or a relay client's MAIL
    /// is accepted; IMAP: until LOGIN/AUTHENTICATE succeeds; POP3: until PASS/AUTH succeeds). RFC 9051 §5.4 asks
    /// at least 30 minutes only of the timer after authentication; a login takes seconds.
    public var unauthenticatedTimeoutSeconds: Double = 180
    /// IMAP client sessions open at once from one client address on one listener; one more gets
    /// `* BYE [UNAVAILABLE]` in place of the greeting (RFC 9051 §7.1).
    public var imapSessionsPerAddress: Int = 100
    /// POP3 client sessions open at once from one client address on one listener; one more gets
    /// `-ERR [SYS/TEMP]` in place of the greeting (RFC 3206).
    public var pop3SessionsPerAddress: Int = 100

    public init() {}

    /// The defaults.
    public static let standard = Limits()
}

/// What the SMTP server side does with a bare CR or bare LF (one not part of CRLF) inside DATA.
///
/// Either way the end of data is only CRLF `.` CRLF (RFC 5321 §4.1.1.4), and nothing with a bare line end goes
/// upstream, so an upstream that reads `LF . LF` as the end cannot be handed a second, smuggled message. Commands
/// with a bare LF are refused in both modes (a client that ends commands with LF also ends data with `LF . LF`,
/// which neither mode can accept). The choice mirrors Postfix's `smtpd_forbid_bare_newline` (`reject` /
/// `normalize`).
public enum BareNewlinePolicy: String, Sendable, Equatable, CaseIterable {
    /// Refuse the message with `550 5.5.2` after its end of data (the default: nothing ambiguous is ever relayed,
    /// and the administrator sees which device needs `normalize`).
    case reject
    /// Turn every bare CR and bare LF into CRLF and relay the message (keeps old devices with stray bare line
    /// ends working, at the price of changing those bytes).
    case normalize
}
