// SMTP: the client-side state machine facing Microsoft 365 (STARTTLS, AUTH XOAUTH2 two-step, envelope, DATA/BDAT).
public import MailCore

/// The SMTP conversation with the upstream server, as a pure value: replies and requests in, actions out.
///
/// **How the session drives it.** After TCP connect (and, for `.tls`, the handshake) the server's greeting
/// arrives: frame upstream lines, collect them with `SMTPReplyParser` and feed each reply as `.reply`.
/// Perform actions in order: `.send`/`.sendSecret` write bytes, `.startTLS` starts the handshake (discard
/// anything read before it) and is answered with `.tlsEstablished`, `.needToken` is answered with `.token`
/// (the base64 XOAUTH2 initial response, `XOAuth2.initialResponse`). `.ready` means envelope commands may
/// flow: feed `.mail`, `.rcpt`, `.data` or `.chunkedData`, `.messageChunk`…, `.endOfMessage`; each result
/// for the client comes back as `.replyForClient` (MAIL, RCPT, DATA's 354, the final verdict), one per
/// command and in the order they were fed. Commands fed while the machine is busy are queued (at most
/// `maximumQueuedCommands`); when the upstream offers PIPELINING (RFC 2920) MAIL, RCPT and RSET go out at once,
/// without waiting for the replies before them, and each reply is matched to its command by order.
///
/// Only what the upstream advertised is used: SMTPUTF8, BODY=, SIZE=, AUTH= and DSN parameters are dropped
/// when it lacks the extension. With CHUNKING and PIPELINING every message goes as BDAT (RFC 3030), also when
/// the client used DATA: its `354` is made here, no `CRLF.CRLF` is ever interpreted upstream, and the DATA
/// round trip is saved. Otherwise DATA, dot-stuffed.
///
/// Wire (Exchange Online):
/// ```
/// S: 220 … Microsoft ESMTP MAIL Service ready   C: EHLO mailgate
/// S: 250-… STARTTLS …                          C: STARTTLS
/// S: 220 2.0.0 SMTP server ready               (TLS)   C: EHLO mailgate
/// S: 250-… AUTH LOGIN XOAUTH2 …                C: AUTH XOAUTH2
/// S: 334                                       C: <base64>
/// S: 235 2.7.0 Authentication successful
/// ```
public struct SMTPUpstreamSide: Sendable {
    /// `smtp_security`.
    public enum Security: String, Sendable {
        /// Plain connect, then STARTTLS (required: refused if not offered). Port 587.
        case starttls
        /// TLS from the first byte (the session did the handshake before the greeting).
        case tls
        /// No TLS at all; only with `allowInsecure`.
        case none
    }

    public struct Configuration: Sendable {
        /// The name we give in EHLO.
        public var ehloHostname: String
        public var security: Security
        /// `allow_insecure_upstream = true`.
        public var allowInsecure: Bool
        /// `smtp_auth`: authenticate with XOAUTH2 (default true).
        public var authenticate: Bool
        /// Message bytes held while waiting for DATA's 354 in the chunked-to-DATA fallback.
        public var maximumBufferedMessage: Int
        /// Envelope commands held while the upstream is busy.
        public var maximumQueuedCommands: Int

        public init(
            ehloHostname: String, security: Security = .starttls, allowInsecure: Bool = false,
            authenticate: Bool = true, maximumBufferedMessage: Int = Limits.standard.spoolMemory,
            maximumQueuedCommands: Int = 100
        ) {
            self.ehloHostname = ehloHostname
            self.security = security
            self.allowInsecure = allowInsecure
            self.authenticate = authenticate
            self.maximumBufferedMessage = maximumBufferedMessage
            self.maximumQueuedCommands = maximumQueuedCommands
        }
    }

    /// Where the conversation stands; case names print in logs.
    public enum State: String, Sendable, Equatable, CustomStringConvertible {
        case connecting, ehlo, startingTLS, tlsHandshake, ehloAfterTLS, awaitingToken, authenticating, sentToken
        case acknowledgingAuthError
        /// Authenticated, nothing outstanding: any command may be sent.
        case ready
        /// MAIL, RCPT or RSET sent and not all answered; with PIPELINING more of them may follow at once.
        case envelope
        /// DATA sent, waiting for `354` (message bytes are held meanwhile in the chunked-to-DATA fallback).
        case dataCommand
        /// After `354`: dot-stuffed message bytes flow.
        case sendingData
        /// The final `CRLF . CRLF` went out; the verdict is awaited.
        case awaitingDataReply
        /// BDAT chunks flow (each answered later, in order); after `BDAT 0 LAST` the verdict is awaited.
        case sendingChunks
        /// A refused DATA of the chunked fallback: bytes are dropped until the end, then the refusal is relayed.
        case discardingMessage
        /// RSET after an abandoned BDAT message: the chunks' replies and the RSET's are swallowed.
        case resetting
        case quitting, authenticationFailed, closed

        public var description: String { rawValue }
    }

    public enum Input: Sendable {
        /// One complete reply from the upstream.
        case reply(SMTPReply)
        /// The STARTTLS handshake finished.
        case tlsEstablished
        /// The base64 XOAUTH2 initial response, answering `.needToken`.
        case token(Redacted<String>)
        case mail(from: SMTPReversePath, parameters: [SMTPParameter])
        case rcpt(to: SMTPForwardPath, parameters: [SMTPParameter])
        /// Begin the message (client used DATA). With CHUNKING and PIPELINING upstream the message goes as BDAT
        /// and the client's `354` is made here at once (no round trip); otherwise DATA, and the upstream's `354`
        /// (or refusal) comes back as `.replyForClient`.
        case data
        /// Begin a message whose bytes follow without waiting (client used BDAT); BDAT upstream if CHUNKING.
        case chunkedData
        /// Un-stuffed message bytes.
        case messageChunk([UInt8])
        /// The message is complete; the verdict comes back as `.replyForClient`.
        case endOfMessage
        /// Discard the message being sent (RSET under BDAT; impossible under DATA: `.failed(.messageAbandoned)`).
        case abortMessage
        /// RSET the transaction; the reply is not for the client.
        case reset
        case quit
    }

    public enum Action: Sendable, Equatable {
        /// Write these bytes to the upstream.
        case send([UInt8])
        /// Write these bytes, which hold the token: never log them.
        case sendSecret(Redacted<[UInt8]>)
        /// Start the TLS handshake, then feed `.tlsEstablished`.
        case startTLS
        /// Fetch the account's token and feed `.token`.
        case needToken
        /// Authenticated (or no AUTH configured); envelope commands may be sent.
        case ready(SMTPExtensions)
        /// XOAUTH2 was refused (e.g. `535 5.7.139`); the session decides what the client hears.
        case authenticationFailed(SMTPReply)
        /// The upstream's answer to a client's MAIL, RCPT, DATA or message, relayed unchanged (in the order
        /// the commands were fed, also when they were pipelined).
        case replyForClient(SMTPReply)
        /// The conversation cannot continue; close the upstream connection.
        case failed(SMTPUpstreamError)
        /// QUIT was answered (or the connection is done); close it.
        case close
    }

    /// A command sent whose reply has not come back yet. Replies come in the order of the commands
    /// (RFC 2920 §3.1, RFC 3030 §4.2), so the oldest entry says what the next reply answers.
    private enum Awaiting: Sendable, Equatable {
        /// MAIL or RCPT: the reply is the client's.
        case envelope
        /// RSET, or anything else whose reply nobody asked for.
        case silent
        /// A BDAT chunk that is not the last: swallowed, but its first failure becomes the verdict.
        case chunk
        /// `BDAT … LAST`: the verdict.
        case lastChunk
        /// DATA: `354` or a refusal.
        case dataCommand
        /// The final dot: the verdict.
        case endOfData
        case quit
    }

    /// The reply made up for a client's DATA when the message goes upstream as BDAT (RFC 5321 §4.2.2 text).
    public static let localStartMailInput = SMTPReply(code: 354, "Start mail input; end with <CRLF>.<CRLF>")

    public let configuration: Configuration
    public private(set) var state: State = .connecting
    /// The EHLO reply last read (after TLS when STARTTLS was used).
    public private(set) var extensions = SMTPExtensions()
    /// Whether the connection is encrypted.
    public private(set) var tlsActive: Bool

    private var token: Redacted<String>?
    private var queue: [Input] = []
    private var awaiting: [Awaiting] = []
    private var awaitingStart = 0
    private var stuffer = DotStuffer()
    private var heldMessage: [UInt8] = []
    private var endRequested = false
    private var messageFailure: SMTPReply?
    private var usesChunkedFallback = false

    /// Whether the upstream takes BDAT chunks without a wait for each reply (CHUNKING and PIPELINING offered).
    private var streamsChunks: Bool { extensions.chunking && extensions.pipelining }

    /// Commands sent and not yet answered (tests and logs).
    public var outstandingReplies: Int { awaiting.count - awaitingStart }

    /// - Throws: `SMTPUpstreamError.insecureNotAllowed` for `.none` without `allowInsecure`.
    public init(configuration: Configuration) throws(SMTPUpstreamError) {
        if configuration.security == .none && !configuration.allowInsecure { throw .insecureNotAllowed }
        self.configuration = configuration
        self.tlsActive = configuration.security == .tls
    }

    /// Handles one event and returns the actions to perform, in order.
    public mutating func handle(_ input: Input) -> [Action] {
        var actions: [Action] = []
        switch input {
        case .reply(let reply): self.reply(reply, &actions)
        case .tlsEstablished:
            guard state == .tlsHandshake else { return fail(.unexpectedInput("tlsEstablished", state: state.rawValue)) }
            tlsActive = true
            state = .ehloAfterTLS
            actions.append(.send(SMTPCommand.ehlo(configuration.ehloHostname).encode()))
        case .token(let token):
            guard state == .awaitingToken else { return fail(.unexpectedInput("token", state: state.rawValue)) }
            self.token = token
            state = .authenticating
            actions.append(.send(SMTPCommand.auth(mechanism: "XOAUTH2", initialResponse: nil).encode()))
        case .mail, .rcpt, .data, .chunkedData, .reset, .quit:
            envelope(input, &actions)
        case .messageChunk(let bytes):
            messageChunk(bytes, &actions)
        case .endOfMessage:
            endOfMessage(&actions)
        case .abortMessage:
            abortMessage(&actions)
        }
        return actions
    }

    private mutating func fail(_ error: SMTPUpstreamError) -> [Action] {
        state = .closed
        token = nil
        queue = []
        awaiting = []
        awaitingStart = 0
        heldMessage = []
        return [.failed(error)]
    }

    // MARK: - Replies

    private mutating func reply(_ reply: SMTPReply, _ actions: inout [Action]) {
        switch state {
        case .connecting:
            guard reply.code == 220 else { return actions += fail(.greetingRejected(reply)) }
            state = .ehlo
            actions.append(.send(SMTPCommand.ehlo(configuration.ehloHostname).encode()))
        case .ehlo, .ehloAfterTLS:
            guard reply.code == 250 else { return actions += fail(.ehloRejected(reply)) }
            extensions = SMTPExtensions(ehloReply: reply)
            if configuration.security == .starttls && !tlsActive {
                guard extensions.startTLS else { return actions += fail(.startTLSNotOffered) }
                state = .startingTLS
                actions.append(.send(SMTPCommand.startTLS.encode()))
                return
            }
            guard configuration.authenticate else { return becomeReady(&actions) }
            guard extensions.authMechanisms.contains("XOAUTH2") else { return actions += fail(.xoauth2NotOffered) }
            state = .awaitingToken
            actions.append(.needToken)
        case .startingTLS:
            guard reply.code == 220 else { return actions += fail(.startTLSRejected(reply)) }
            state = .tlsHandshake
            actions.append(.startTLS)
        case .authenticating:
            guard reply.code == 334, let token else {
                self.token = nil
                state = .authenticationFailed
                actions.append(.authenticationFailed(reply))
                return
            }
            self.token = nil
            state = .sentToken
            actions.append(.sendSecret(Redacted(Array(token.revealed.utf8) + [0x0D, 0x0A])))
        case .sentToken:
            if reply.code == 235 { return becomeReady(&actions) }
            if reply.code == 334 {
                // Error challenge (base64 JSON): answer with an empty line, then the server sends 535.
                state = .acknowledgingAuthError
                actions.append(.send([0x0D, 0x0A]))
                return
            }
            state = .authenticationFailed
            actions.append(.authenticationFailed(reply))
        case .acknowledgingAuthError:
            state = .authenticationFailed
            actions.append(.authenticationFailed(reply))
        case .ready, .envelope, .dataCommand, .sendingData, .awaitingDataReply, .sendingChunks, .discardingMessage,
            .resetting, .quitting:
            transactionReply(reply, &actions)
        case .tlsHandshake, .awaitingToken, .authenticationFailed, .closed:
            if reply.code == 421 { return actions += fail(.serviceClosing(reply)) }
            actions += fail(.unexpectedReply(reply, state: state.rawValue))
        }
    }

    /// A reply after authentication: it answers the oldest command still awaiting one.
    private mutating func transactionReply(_ reply: SMTPReply, _ actions: inout [Action]) {
        guard awaitingStart < awaiting.count else {
            if reply.code == 421 { return actions += fail(.serviceClosing(reply)) }
            return actions += fail(.unexpectedReply(reply, state: state.rawValue))
        }
        let answered = awaiting[awaitingStart]
        awaitingStart += 1
        if awaitingStart == awaiting.count {
            awaiting = []
            awaitingStart = 0
        }
        switch answered {
        case .envelope:
            actions.append(.replyForClient(reply))
            if outstandingReplies == 0, state == .envelope { state = .ready }
        case .silent:
            if outstandingReplies == 0, state == .envelope || state == .resetting { state = .ready }
        case .chunk:
            if !reply.isPositiveCompletion, messageFailure == nil { messageFailure = reply }
        case .lastChunk:
            state = .ready
            actions.append(.replyForClient(messageFailure ?? reply))
            messageFailure = nil
        case .dataCommand:
            dataCommandReply(reply, &actions)
        case .endOfData:
            state = .ready
            actions.append(.replyForClient(reply))
        case .quit:
            state = .closed
            actions.append(.close)
            return
        }
        drainQueue(&actions)
    }

    private mutating func dataCommandReply(_ reply: SMTPReply, _ actions: inout [Action]) {
        if reply.code == 354 {
            state = .sendingData
            stuffer = DotStuffer()
            if !usesChunkedFallback { actions.append(.replyForClient(reply)) }
            if !heldMessage.isEmpty { actions.append(.send(stuffer.stuff(heldMessage))) }
            heldMessage = []
            if endRequested { endOfMessage(&actions) }
        } else if usesChunkedFallback {
            messageFailure = reply
            heldMessage = []
            state = .discardingMessage
            if endRequested { endOfMessage(&actions) }
        } else {
            state = .ready
            actions.append(.replyForClient(reply))
        }
    }

    private mutating func becomeReady(_ actions: inout [Action]) {
        state = .ready
        actions.append(.ready(extensions))
        drainQueue(&actions)
    }

    /// Sends queued commands while they may go (all of them at once under PIPELINING, RFC 2920).
    private mutating func drainQueue(_ actions: inout [Action]) {
        while !queue.isEmpty, mayStart(queue[0]) {
            let next = queue.removeFirst()
            start(next, &actions)
        }
    }

    /// Whether `input` may be sent now, or must wait for outstanding replies.
    private func mayStart(_ input: Input) -> Bool {
        switch state {
        case .ready:
            return true
        case .envelope:
            // RFC 2920 §3.1: RSET, MAIL and RCPT may appear anywhere in a group; DATA, BDAT and QUIT only once
            // the replies before them are known (the client's DATA needs its RCPT verdicts anyway).
            guard extensions.pipelining else { return false }
            switch input {
            case .mail, .rcpt, .reset: return true
            default: return false
            }
        default:
            return false
        }
    }

    // MARK: - Envelope and message

    /// An envelope command from the session: sent now if it may go, else queued behind the others.
    private mutating func envelope(_ input: Input, _ actions: inout [Action]) {
        guard mayStart(input), queue.isEmpty else {
            if case .quit = input, state == .authenticationFailed || state == .closed {
                return send(.quit, awaiting: .quit, then: .quitting, &actions)
            }
            guard queue.count < configuration.maximumQueuedCommands else {
                return actions += fail(.tooManyQueuedCommands(maximumCount: configuration.maximumQueuedCommands))
            }
            queue.append(input)
            return
        }
        start(input, &actions)
    }

    private mutating func start(_ input: Input, _ actions: inout [Action]) {
        switch input {
        case .mail(let from, let parameters):
            send(.mail(from: from, parameters: parameters.filter(mailParameterAllowed)), awaiting: .envelope, then: .envelope, &actions)
        case .rcpt(let to, let parameters):
            send(.rcpt(to: to, parameters: extensions.dsn ? parameters : []), awaiting: .envelope, then: .envelope, &actions)
        case .data:
            startMessage()
            if streamsChunks {
                // RFC 3030: the message goes as BDAT, so no end-of-data line can be misread upstream and the
                // client's 354 needs no round trip.
                usesChunkedFallback = false
                state = .sendingChunks
                actions.append(.replyForClient(Self.localStartMailInput))
            } else {
                usesChunkedFallback = false
                send(.data, awaiting: .dataCommand, then: .dataCommand, &actions)
            }
        case .chunkedData:
            startMessage()
            if streamsChunks {
                usesChunkedFallback = false
                state = .sendingChunks
            } else {
                usesChunkedFallback = true
                send(.data, awaiting: .dataCommand, then: .dataCommand, &actions)
            }
        case .reset:
            send(.rset, awaiting: .silent, then: .envelope, &actions)
        case .quit:
            send(.quit, awaiting: .quit, then: .quitting, &actions)
        default:
            break
        }
    }

    private mutating func startMessage() {
        heldMessage = []
        endRequested = false
        messageFailure = nil
    }

    private mutating func send(_ command: SMTPCommand, awaiting reply: Awaiting, then next: State, _ actions: inout [Action]) {
        state = next
        awaiting.append(reply)
        actions.append(.send(command.encode()))
    }

    /// Keeps a MAIL parameter only if the upstream advertised its extension.
    private func mailParameterAllowed(_ parameter: SMTPParameter) -> Bool {
        switch parameter.keyword {
        case "SMTPUTF8": extensions.smtpUTF8
        case "SIZE": extensions.sizeAdvertised
        case "BODY":
            switch SMTPBodyType(rawValue: parameter.value ?? "") {
            case .binaryMIME: extensions.binaryMIME && extensions.chunking
            case .eightBitMIME, .sevenBit: extensions.eightBitMIME
            case nil: false
            }
        case "AUTH": !extensions.authMechanisms.isEmpty
        case "RET", "ENVID": extensions.dsn
        default: true
        }
    }

    private mutating func messageChunk(_ bytes: [UInt8], _ actions: inout [Action]) {
        switch state {
        case .sendingData:
            actions.append(.send(stuffer.stuff(bytes)))
        case .sendingChunks:
            guard !bytes.isEmpty else { return }
            awaiting.append(.chunk)
            var framed = SMTPCommand.bdat(size: bytes.count, last: false).encode()
            framed.reserveCapacity(framed.count + bytes.count)
            framed.append(contentsOf: bytes)
            actions.append(.send(framed))
        case .dataCommand:
            guard heldMessage.count + bytes.count <= configuration.maximumBufferedMessage else {
                return actions += fail(.messageBufferOverflow(maximumCount: configuration.maximumBufferedMessage))
            }
            heldMessage += bytes
        case .discardingMessage:
            break
        default:
            actions += fail(.unexpectedInput("messageChunk", state: state.rawValue))
        }
    }

    private mutating func endOfMessage(_ actions: inout [Action]) {
        switch state {
        case .sendingData:
            state = .awaitingDataReply
            awaiting.append(.endOfData)
            actions.append(.send(stuffer.finish()))
        case .sendingChunks:
            guard !awaiting[awaitingStart...].contains(.lastChunk) else {
                return actions += fail(.unexpectedInput("endOfMessage", state: state.rawValue))
            }
            awaiting.append(.lastChunk)
            actions.append(.send(SMTPCommand.bdat(size: 0, last: true).encode()))
        case .dataCommand:
            endRequested = true
        case .discardingMessage:
            state = .ready
            actions.append(.replyForClient(messageFailure ?? SMTPReply(451, (4, 3, 0), "Message not accepted")))
            messageFailure = nil
            drainQueue(&actions)
        default:
            actions += fail(.unexpectedInput("endOfMessage", state: state.rawValue))
        }
    }

    private mutating func abortMessage(_ actions: inout [Action]) {
        switch state {
        case .sendingChunks:
            // The chunks' replies are no longer anybody's; then RSET, whose reply is swallowed too.
            for index in awaitingStart..<awaiting.count where awaiting[index] == .chunk || awaiting[index] == .lastChunk {
                awaiting[index] = .silent
            }
            messageFailure = nil
            send(.rset, awaiting: .silent, then: .resetting, &actions)
        case .discardingMessage:
            state = .ready
            drainQueue(&actions)
        case .dataCommand, .sendingData, .awaitingDataReply:
            actions += fail(.messageAbandoned)
        default:
            break
        }
    }
}
