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
/// for the client comes back as `.replyForClient` (MAIL, RCPT, DATA's 354, the final verdict). Commands fed
/// while the machine is busy are queued (at most `maximumQueuedCommands`) and sent one at a time.
///
/// Only what the upstream advertised is used: SMTPUTF8, BODY=, SIZE=, AUTH= and DSN parameters are dropped
/// when it lacks the extension, and BDAT is used only with CHUNKING (otherwise DATA, dot-stuffed).
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
        case acknowledgingAuthError, ready, mail, rcpt, dataCommand, sendingData, awaitingDataReply, sendingChunks
        case discardingMessage, resetting, quitting, authenticationFailed, closed

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
        /// Begin the message with DATA; the 354 (or refusal) comes back as `.replyForClient`.
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
        /// The upstream's answer to a client's MAIL, RCPT, DATA or message, relayed unchanged.
        case replyForClient(SMTPReply)
        /// The conversation cannot continue; close the upstream connection.
        case failed(SMTPUpstreamError)
        /// QUIT was answered (or the connection is done); close it.
        case close
    }

    public let configuration: Configuration
    public private(set) var state: State = .connecting
    /// The EHLO reply last read (after TLS when STARTTLS was used).
    public private(set) var extensions = SMTPExtensions()
    /// Whether the connection is encrypted.
    public private(set) var tlsActive: Bool

    private var token: Redacted<String>?
    private var queue: [Input] = []
    private var stuffer = DotStuffer()
    private var heldMessage: [UInt8] = []
    private var endRequested = false
    private var messageFailure: SMTPReply?
    private var outstandingChunks = 0
    private var lastChunkSent = false
    private var pendingResetReplies = 0
    private var usesChunkedFallback = false

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
        case .mail, .rcpt:
            state = .ready
            actions.append(.replyForClient(reply))
            drainQueue(&actions)
        case .dataCommand:
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
                drainQueue(&actions)
            }
        case .awaitingDataReply:
            state = .ready
            actions.append(.replyForClient(reply))
            drainQueue(&actions)
        case .sendingChunks:
            outstandingChunks -= 1
            if !reply.isPositiveCompletion, messageFailure == nil { messageFailure = reply }
            if outstandingChunks == 0 && lastChunkSent {
                state = .ready
                actions.append(.replyForClient(messageFailure ?? reply))
                messageFailure = nil
                drainQueue(&actions)
            }
        case .resetting:
            pendingResetReplies -= 1
            if pendingResetReplies <= 0 {
                state = .ready
                drainQueue(&actions)
            }
        case .quitting:
            state = .closed
            actions.append(.close)
        case .tlsHandshake, .awaitingToken, .ready, .sendingData, .discardingMessage, .authenticationFailed, .closed:
            if reply.code == 421 { return actions += fail(.serviceClosing(reply)) }
            actions += fail(.unexpectedReply(reply, state: state.rawValue))
        }
    }

    private mutating func becomeReady(_ actions: inout [Action]) {
        state = .ready
        actions.append(.ready(extensions))
        drainQueue(&actions)
    }

    private mutating func drainQueue(_ actions: inout [Action]) {
        while state == .ready, !queue.isEmpty {
            let next = queue.removeFirst()
            envelope(next, &actions)
        }
    }

    // MARK: - Envelope and message

    private mutating func envelope(_ input: Input, _ actions: inout [Action]) {
        guard state == .ready else {
            if case .quit = input, state == .authenticationFailed || state == .closed {
                return send(.quit, then: .quitting, &actions)
            }
            guard queue.count < configuration.maximumQueuedCommands else {
                return actions += fail(.tooManyQueuedCommands(maximumCount: configuration.maximumQueuedCommands))
            }
            queue.append(input)
            return
        }
        switch input {
        case .mail(let from, let parameters):
            send(.mail(from: from, parameters: parameters.filter(mailParameterAllowed)), then: .mail, &actions)
        case .rcpt(let to, let parameters):
            send(.rcpt(to: to, parameters: extensions.dsn ? parameters : []), then: .rcpt, &actions)
        case .data:
            usesChunkedFallback = false
            startMessage(&actions)
            send(.data, then: .dataCommand, &actions)
        case .chunkedData:
            startMessage(&actions)
            if extensions.chunking {
                usesChunkedFallback = false
                state = .sendingChunks
            } else {
                usesChunkedFallback = true
                send(.data, then: .dataCommand, &actions)
            }
        case .reset:
            pendingResetReplies = 1
            send(.rset, then: .resetting, &actions)
        case .quit:
            send(.quit, then: .quitting, &actions)
        default:
            break
        }
    }

    private mutating func startMessage(_ actions: inout [Action]) {
        heldMessage = []
        endRequested = false
        messageFailure = nil
        outstandingChunks = 0
        lastChunkSent = false
    }

    private mutating func send(_ command: SMTPCommand, then next: State, _ actions: inout [Action]) {
        state = next
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
            outstandingChunks += 1
            actions.append(.send(SMTPCommand.bdat(size: bytes.count, last: false).encode() + bytes))
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
            actions.append(.send(stuffer.finish()))
        case .sendingChunks:
            outstandingChunks += 1
            lastChunkSent = true
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
            pendingResetReplies = outstandingChunks + 1
            outstandingChunks = 0
            send(.rset, then: .resetting, &actions)
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
