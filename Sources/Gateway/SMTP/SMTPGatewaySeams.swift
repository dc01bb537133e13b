// Gateway: the seams between the SMTP gateway and the parts the lead wires in (tokens, sent mail, counters).
public import Dispatch

/// An error that can say whether a later retry may cure it (OAuthError has `isTemporary`).
///
/// `UpstreamCredentials` (Sources/Gateway/Upstream) errors that conform and say `true` become `454 4.7.0`; all
/// others become `535 5.7.8` with their description, which tells the administrator what to run.
public protocol TemporaryFailureClassifying {
    /// True when the same request may succeed later without anybody changing anything.
    var isTemporary: Bool { get }
}

/// The sent-mail settings (archive, journal, sent copy) the SMTP gateway passes on to the recorder.
public typealias SMTPSentMailPolicy = SentMailPolicy

/// Starts the record of one message (archive, journal, sent copy); implemented by `SentMailRecorder`.
public protocol MessageRecorder: Sendable {
    /// Begins recording a message whose envelope the upstream has accepted.
    ///
    /// `mailFrom` is the reverse path without brackets (empty for `<>`); `recipients` are the accepted ones.
    func beginRecording(
        account: String, listener: String, mailFrom: String, recipients: [String], policy: SMTPSentMailPolicy
    ) -> any MessageRecordingProtocol
}

/// One message being recorded while it streams upstream. Used only on the session's queue.
public protocol MessageRecordingProtocol: AnyObject {
    /// Records un-stuffed message bytes; returns the bytes to forward upstream now (it may hold back the header
    /// block to add a Message-ID).
    func append(_ bytes: [UInt8]) throws -> [UInt8]
    /// The client finished the message; returns the rest to forward before the final dot.
    func finishInput() throws -> [UInt8]
    /// Makes the archive durable and writes a pending journal row; call BEFORE the final dot goes upstream.
    func prepareCommit(on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void)
    /// The upstream accepted the message; the client may get its 250 only after `completion`.
    func commit(upstreamReply: String, on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void)
    /// The message was not (or may not have been) sent: `fateUnknown` when the final dot went out but no reply came.
    func abandon(reason: String, fateUnknown: Bool)
    /// Message-ID and size of the message as relayed, for the session's "message relayed" log line.
    var logSummary: (messageID: String, size: Int) { get }
}

extension MessageRecordingProtocol {
    /// Recorders that do not know them (test doubles) log none.
    public var logSummary: (messageID: String, size: Int) { ("", 0) }
}

/// Statistics the SMTP gateway counts (the Store's `increment`); called off the session queue.
public protocol GatewayCounters: Sendable {
    /// Adds one to `name` (`smtp.sessions`, `smtp.login.ok`, `smtp.login.failed`) for the account and listener.
    func increment(_ name: String, account: String?, listener: String)
}

/// Counters that count nothing, for tools and tests that do not keep statistics.
public struct NoCounters: GatewayCounters {
    public init() {}
    public func increment(_ name: String, account: String?, listener: String) {}
}
