// SMTP: the server-side state machine facing a local or LAN client (RFC 5321 submission with AUTH, PIPELINING, BDAT).
public import MailCore

/// The SMTP conversation with one client, as a pure value: bytes and results in, actions out.
///
/// **How the session drives it.** Feed `.connected` once, then every byte read from the client (after TLS
/// decryption) as `.received(bytes)`, in whatever chunks the socket delivers: the machine frames lines
/// itself, because only it knows where commands stop and DATA/BDAT bytes begin. Perform the returned actions
/// in order. Pipelined commands are buffered (bounded by `Configuration.maximumBufferedInput`). While MAIL or
/// RCPT replies are outstanding, the RCPTs that follow in the client's group are forwarded at once (RFC 2920:
/// the upstream side sends them in one write); any other command waits. While the machine waits for the
/// upstream otherwise (`.beginData`, `.endOfMessage`) or for `.verifyCredentials`, it consumes nothing more.
/// The session answers each forwarded command with exactly one `.upstreamReply` / `.authResult`, in order, and
/// the machine continues with the buffered input in the same call.
/// `shouldPauseReading` tells the session when to stop reading from the client for back-pressure.
///
/// Lines end only at CRLF: a command line ended by a bare LF gets `500 5.5.2`, and DATA follows
/// `Limits.smtpBareNewline` (see `DotUnstuffer` and `BareNewlinePolicy`), so no smuggled end of data is relayed.
///
/// Replies keep the client's order (RFC 2920). Input received after STARTTLS and before `.tlsStarted` is
/// discarded (RFC 3207 §4.2). Every reply except the greeting, EHLO/HELO and `334` carries an enhanced code.
public struct SMTPServerSide: Sendable {
    /// What the gateway knows about this listener, the client and the upstream.
    public struct Configuration: Sendable {
        /// Our host name, in the greeting and the EHLO reply.
        public var hostname: String
        /// A certificate is configured, so STARTTLS can be offered.
        public var tlsAvailable: Bool
        /// The connection is TLS from the first byte (smtps, port 465).
        public var implicitTLS: Bool
        /// The client connected over loopback, where AUTH in plaintext is acceptable.
        public var clientIsLoopback: Bool
        /// `allow_plaintext = true`: offer AUTH without TLS on any interface.
        public var allowPlaintext: Bool
        /// The client address is in `relay_networks`: MAIL is allowed without AUTH, as `relayAccount`.
        public var relayAllowed: Bool
        /// The account a relay-allowed client sends as.
        public var relayAccount: String?
        /// Largest message accepted (the upstream's SIZE, else `Limits.messageSize`); advertised as SIZE.
        public var maximumMessageSize: Int
        /// What the upstream offers; 8BITMIME, SMTPUTF8, CHUNKING and BINARYMIME are offered only if it does.
        public var upstreamExtensions: SMTPExtensions
        /// Recipients per message (Exchange Online's default is 500); more get `452 4.5.3`.
        public var maximumRecipients: Int
        /// Unprocessed client bytes held while waiting; more is answered `421 4.7.0` and the connection closed.
        public var maximumBufferedInput: Int
        /// Mechanisms offered in `AUTH …`, upper-case.
        public var authMechanisms: [String]
        /// Creates the exchange for an offered mechanism name (upper-case), `nil` if it is not available.
        public var makeAuthExchange: @Sendable (String) -> (any SMTPAuthExchange)?
        /// Line limits and the error budget.
        public var limits: Limits

        public init(
            hostname: String,
            tlsAvailable: Bool = false,
            implicitTLS: Bool = false,
            clientIsLoopback: Bool = true,
            allowPlaintext: Bool = false,
            relayAllowed: Bool = false,
            relayAccount: String? = nil,
            maximumMessageSize: Int = Limits.standard.messageSize,
            upstreamExtensions: SMTPExtensions = SMTPExtensions(),
            maximumRecipients: Int = 500,
            maximumBufferedInput: Int = Limits.standard.writeBufferHighWater,
            authMechanisms: [String] = ["PLAIN", "LOGIN"],
            limits: Limits = .standard,
            makeAuthExchange: @escaping @Sendable (String) -> (any SMTPAuthExchange)?
        ) {
            self.hostname = hostname
            self.tlsAvailable = tlsAvailable
            self.implicitTLS = implicitTLS
            self.clientIsLoopback = clientIsLoopback
            self.allowPlaintext = allowPlaintext
            self.relayAllowed = relayAllowed
            self.relayAccount = relayAccount
            self.maximumMessageSize = maximumMessageSize
            self.upstreamExtensions = upstreamExtensions
            self.maximumRecipients = maximumRecipients
            self.maximumBufferedInput = maximumBufferedInput
            self.authMechanisms = authMechanisms
            self.limits = limits
            self.makeAuthExchange = makeAuthExchange
        }
    }

    /// What the machine is waiting for from the upstream.
    public enum UpstreamStep: String, Sendable, Equatable {
        /// The reply to a forwarded MAIL.
        case mail
        /// The reply to a forwarded RCPT.
        case rcpt
        /// The upstream's `354` (or refusal) for DATA.
        case dataStart
        /// The upstream's verdict on the whole message.
        case endOfMessage
    }

    /// Where the conversation stands; case names print in logs.
    public enum State: Sendable, Equatable, CustomStringConvertible {
        /// Before `.connected`.
        case awaitingConnection
        /// Greeting sent (or TLS just started); EHLO/HELO expected.
        case greeting
        /// EHLO done, no mail transaction.
        case ready
        /// A SASL exchange is running; client lines are SASL responses.
        case authenticating
        /// Waiting for `.authResult`.
        case verifyingCredentials
        /// MAIL accepted; RCPT, DATA, BDAT expected.
        case transaction
        /// Waiting for `.upstreamReply` to a forwarded step.
        case awaitingUpstream(UpstreamStep)
        /// Receiving DATA bytes up to `CRLF . CRLF`.
        case data
        /// Receiving a BDAT chunk.
        case bdat(remaining: Int, last: Bool)
        /// Swallowing a refused BDAT chunk before sending its reply.
        case discardingBDAT(remaining: Int, reply: SMTPReply)
        /// `220` to STARTTLS sent; waiting for `.tlsStarted`.
        case startingTLS
        /// QUIT, an error budget exhausted, or a fatal error; nothing more is read.
        case closed

        public var description: String {
            switch self {
            case .awaitingConnection: "awaitingConnection"
            case .greeting: "greeting"
            case .ready: "ready"
            case .authenticating: "authenticating"
            case .verifyingCredentials: "verifyingCredentials"
            case .transaction: "transaction"
            case .awaitingUpstream(let step): "awaitingUpstream(\(step.rawValue))"
            case .data: "data"
            case .bdat(let remaining, let last): "bdat(remaining: \(remaining), last: \(last))"
            case .discardingBDAT(let remaining, _): "discardingBDAT(remaining: \(remaining))"
            case .startingTLS: "startingTLS"
            case .closed: "closed"
            }
        }
    }

    /// Events the session feeds in.
    public enum Input: Sendable {
        /// The client connected (and, for implicit TLS, the handshake finished): send the greeting.
        case connected
        /// Bytes from the client, any chunking.
        case received([UInt8])
        /// The STARTTLS handshake finished.
        case tlsStarted
        /// The answer to `.verifyCredentials`: `account` is the local account the credentials belong to.
        case authResult(ok: Bool, account: String)
        /// The upstream's reply to `.forwardMail`, `.forwardRcpt`, `.beginData`, `.endOfMessage`; also any
        /// upstream failure (e.g. a locally made `421 4.4.2`), which is relayed to the client.
        case upstreamReply(SMTPReply)
    }

    /// What the session must do, in order.
    public enum Action: Sendable, Equatable {
        /// Write this reply to the client.
        case reply(SMTPReply)
        /// Start the TLS handshake on the client connection, then feed `.tlsStarted`.
        case startTLS
        /// Check these credentials (asynchronously), then feed `.authResult`.
        case verifyCredentials(username: String, password: Redacted<String>)
        /// Make sure an upstream is ready for `account`, send MAIL, feed its reply back.
        case forwardMail(account: String, from: SMTPReversePath, parameters: [SMTPParameter])
        /// Send RCPT upstream, feed its reply back.
        case forwardRcpt(to: SMTPForwardPath, parameters: [SMTPParameter])
        /// Send DATA upstream; feed back its `354` (or its refusal).
        case beginData
        /// The client uses BDAT; the message follows as `.messageBytes` with no intermediate reply expected.
        case beginChunkedData
        /// Un-stuffed message bytes for the upstream (and the journal/sent copy).
        case messageBytes([UInt8])
        /// The message is complete: finish it upstream and feed back the upstream's verdict.
        case endOfMessage
        /// The message was refused locally after bytes went upstream: abandon it there (RSET for BDAT, drop
        /// the upstream connection for DATA). No reply is expected.
        case abortMessage
        /// The transaction was abandoned (RSET, EHLO): send RSET upstream; no reply is expected.
        case resetUpstream
        /// Close the client connection after writing the replies above.
        case close
    }

    private struct Transaction: Sendable {
        var from: SMTPReversePath
        var parameters: [SMTPParameter]
        var smtpUTF8: Bool
        var bodyType: SMTPBodyType?
        var recipients: [SMTPForwardPath] = []
        var acceptedUpstream = false
        var chunkedStarted = false
        var chunkedSize = 0
        var currentChunkSize = 0
    }

    public let configuration: Configuration
    public private(set) var state: State = .awaitingConnection
    /// The name from the last EHLO/HELO.
    public private(set) var heloName: String?
    /// Whether the client connection is encrypted.
    public private(set) var tlsActive: Bool
    /// The local account after a successful AUTH.
    public private(set) var authenticatedAccount: String?
    /// Protocol errors so far; at `Limits.errorBudget` the client gets `421 4.7.0` and is disconnected.
    public private(set) var errorCount = 0

    private var transaction: Transaction?
    /// Envelope commands forwarded and not yet answered, oldest first. While the upstream works on them, further
    /// RCPTs of the client's pipelined group go on at once (RFC 2920); anything else waits for the replies.
    private var envelopeInFlight: [EnvelopeStep] = []

    private enum EnvelopeStep: Sendable {
        case mail
        case rcpt(SMTPForwardPath)

        var upstreamStep: UpstreamStep {
            switch self {
            case .mail: .mail
            case .rcpt: .rcpt
            }
        }
    }
    private var authExchange: (any SMTPAuthExchange)?
    private var unstuffer: DotUnstuffer?
    private var upstreamFailure: SMTPReply?
    private var stateAfterDiscard: State = .ready
    private var input: [UInt8] = []
    private var inputStart = 0
    private var discardingLongLine = false

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.tlsActive = configuration.implicitTLS
    }

    /// The recipients the upstream accepted in the current transaction.
    public var acceptedRecipients: [SMTPForwardPath] { transaction?.recipients ?? [] }

    /// Bytes received but not yet processed.
    public var bufferedByteCount: Int { input.count - inputStart }

    /// True while the machine waits and holds at least `Limits.readChunk` unprocessed bytes: stop reading
    /// from the client until the next input has been handled.
    public var shouldPauseReading: Bool {
        switch state {
        case .awaitingUpstream, .verifyingCredentials: bufferedByteCount >= configuration.limits.readChunk
        default: false
        }
    }

    /// Whether AUTH may be used on this connection now (TLS, loopback, or `allowPlaintext`).
    public var authenticationPermitted: Bool {
        tlsActive || configuration.clientIsLoopback || configuration.allowPlaintext
    }

    /// What MailGate offers in its EHLO reply right now.
    public var offeredExtensions: SMTPExtensions {
        let upstream = configuration.upstreamExtensions
        var offered = SMTPExtensions()
        offered.serverName = configuration.hostname
        offered.pipelining = true
        offered.maximumSize = configuration.maximumMessageSize
        offered.enhancedStatusCodes = true
        offered.startTLS = configuration.tlsAvailable && !tlsActive
        offered.authMechanisms = authenticationPermitted ? configuration.authMechanisms : []
        offered.eightBitMIME = upstream.eightBitMIME
        offered.smtpUTF8 = upstream.smtpUTF8
        offered.chunking = upstream.chunking
        offered.binaryMIME = upstream.chunking && upstream.binaryMIME
        return offered
    }

    // MARK: - Input

    /// Handles one event and returns the actions to perform, in order.
    public mutating func handle(_ event: Input) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .connected:
            guard state == .awaitingConnection else { return [] }
            state = .greeting
            actions.append(.reply(SMTPReply(code: 220, "\(configuration.hostname) ESMTP MailGate ready")))
        case .received(let bytes):
            guard state != .closed else { return [] }
            if state == .startingTLS { return [] }
            if bufferedByteCount == 0 {
                input = bytes  // the usual case: no copy, the chunk itself becomes the buffer
                inputStart = 0
            } else {
                input += bytes
            }
        case .tlsStarted:
            guard state == .startingTLS else { return [] }
            tlsActive = true
            heloName = nil
            authenticatedAccount = nil
            transaction = nil
            discardInput()
            state = .greeting
        case .authResult(let ok, let account):
            guard state == .verifyingCredentials else { return [] }
            state = .ready
            if ok {
                authenticatedAccount = account
                actions.append(.reply(SMTPReply(235, (2, 7, 0), "Authentication successful")))
            } else {
                error(SMTPReply(535, (5, 7, 8), "Authentication credentials invalid"), &actions)
            }
        case .upstreamReply(let reply):
            upstreamReply(reply, &actions)
        }
        process(&actions)
        compactInput()
        return actions
    }

    private mutating func upstreamReply(_ reply: SMTPReply, _ actions: inout [Action]) {
        switch state {
        case .awaitingUpstream(.mail), .awaitingUpstream(.rcpt):
            actions.append(.reply(reply))
            guard !envelopeInFlight.isEmpty else {
                state = transaction == nil ? .ready : .transaction
                return
            }
            switch envelopeInFlight.removeFirst() {
            case .mail:
                if reply.isPositiveCompletion {
                    transaction?.acceptedUpstream = true
                } else {
                    transaction = nil  // RCPTs pipelined behind it get the upstream's own refusals
                }
            case .rcpt(let recipient):
                if reply.isPositiveCompletion { transaction?.recipients.append(recipient) }
            }
            if let oldest = envelopeInFlight.first {
                state = .awaitingUpstream(oldest.upstreamStep)
            } else {
                state = transaction == nil ? .ready : .transaction
            }
        case .awaitingUpstream(.dataStart):
            actions.append(.reply(reply))
            if reply.code == 354 {
                unstuffer = DotUnstuffer(
                    maximumMessageSize: configuration.maximumMessageSize,
                    maximumLineLength: configuration.limits.smtpTextLine,
                    bareNewline: configuration.limits.smtpBareNewline)
                upstreamFailure = nil
                state = .data
            } else {
                state = .transaction
            }
        case .awaitingUpstream(.endOfMessage):
            actions.append(.reply(reply))
            transaction = nil
            state = .ready
        case .data, .bdat, .discardingBDAT:
            if upstreamFailure == nil, !reply.isPositiveCompletion { upstreamFailure = reply }
        default:
            if reply.code == 421 {
                actions += [.reply(reply), .close]
                close()
            }
        }
    }

    // MARK: - Framing

    private enum LineResult {
        case line([UInt8])
        case tooLong
        /// A line ended by LF without CR before it: refused whatever `smtpBareNewline` says (see
        /// `BareNewlinePolicy`), so commands and DATA agree on where lines end.
        case bareLineFeed
        case needMore
    }

    private mutating func process(_ actions: inout [Action]) {
        while true {
            switch state {
            case .closed:
                discardInput()
                return
            case .awaitingConnection, .awaitingUpstream, .verifyingCredentials, .startingTLS:
                if case .awaitingUpstream(let step) = state, step == .mail || step == .rcpt,
                    pipelineRecipient(&actions)
                {
                    continue
                }
                if bufferedByteCount > configuration.maximumBufferedInput {
                    actions += [.reply(SMTPReply(421, (4, 7, 0), "Too much pipelined input")), .close]
                    close()
                }
                return
            case .data:
                guard bufferedByteCount > 0, var unstuffer else { return }
                let chunk = inputStart == 0 ? input : Array(input[inputStart...])
                discardInput()
                let output = unstuffer.feed(chunk)
                self.unstuffer = unstuffer
                if !output.message.isEmpty, upstreamFailure == nil { actions.append(.messageBytes(output.message)) }
                guard output.finished else { return }
                input = output.leftover
                inputStart = 0
                finishData(problem: unstuffer.problem, &actions)
            case .bdat(let remaining, let last):
                if remaining == 0 {
                    finishChunk(last: last, &actions)
                    continue
                }
                guard bufferedByteCount > 0 else { return }
                let count = min(remaining, bufferedByteCount)
                let whole = inputStart == 0 && count == input.count
                let bytes = whole ? input : Array(input[inputStart..<(inputStart + count)])
                if whole { discardInput() } else { inputStart += count }
                if upstreamFailure == nil { actions.append(.messageBytes(bytes)) }
                state = .bdat(remaining: remaining - count, last: last)
            case .discardingBDAT(let remaining, let reply):
                if remaining == 0 {
                    state = stateAfterDiscard
                    if reply.isPositiveCompletion || reply.code == 552 || reply.code == 554 {
                        actions.append(.reply(reply))
                    } else {
                        error(reply, &actions)
                    }
                    continue
                }
                guard bufferedByteCount > 0 else { return }
                let count = min(remaining, bufferedByteCount)
                inputStart += count
                state = .discardingBDAT(remaining: remaining - count, reply: reply)
            case .greeting, .ready, .transaction, .authenticating:
                let isAuth = state == .authenticating
                let limit = isAuth ? configuration.limits.saslResponse + 2 : configuration.limits.smtpCommandLine
                switch nextLine(limit: limit) {
                case .needMore:
                    return
                case .tooLong:
                    if isAuth {
                        authExchange = nil
                        state = .ready
                    }
                    error(SMTPReply(500, (5, 5, 2), "Line too long"), &actions)
                case .bareLineFeed:
                    if isAuth {
                        authExchange = nil
                        state = .ready
                    }
                    error(SMTPReply(500, (5, 5, 2), "Bare LF in command; SMTP commands must end with CRLF"), &actions)
                case .line(let line):
                    if isAuth {
                        authLine(line, &actions)
                    } else {
                        command(line, &actions)
                    }
                }
            }
        }
    }

    /// The next CRLF-terminated line, bounded by `limit` octets including the line end; a line ended by a bare
    /// LF is consumed and reported as `.bareLineFeed`.
    private mutating func nextLine(limit: Int) -> LineResult {
        guard let lf = input[inputStart...].firstIndex(of: 0x0A) else {
            if discardingLongLine || bufferedByteCount > limit {
                discardingLongLine = true
                discardInput()
            }
            return .needMore
        }
        var line = Array(input[inputStart..<lf])
        inputStart = lf + 1
        if discardingLongLine {
            discardingLongLine = false
            return .tooLong
        }
        guard line.count + 1 <= limit else { return .tooLong }
        guard line.last == 0x0D else { return .bareLineFeed }
        line.removeLast()
        return .line(line)
    }

    private mutating func discardInput() {
        input = []
        inputStart = 0
    }

    private mutating func compactInput() {
        if inputStart > 0 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    private mutating func close() {
        state = .closed
        transaction = nil
        envelopeInFlight = []
        authExchange = nil
        unstuffer = nil
        discardInput()
    }

    /// Answers a protocol error and counts it; the error that exhausts the budget gets `421 4.7.0` and a close.
    private mutating func error(_ reply: SMTPReply, _ actions: inout [Action]) {
        errorCount += 1
        if errorCount >= configuration.limits.errorBudget {
            actions += [.reply(SMTPReply(421, (4, 7, 0), "Too many errors")), .close]
            close()
        } else {
            actions.append(.reply(reply))
        }
    }

    // MARK: - Commands

    private mutating func command(_ line: [UInt8], _ actions: inout [Action]) {
        let command: SMTPCommand
        do {
            command = try SMTPCommand.parse(line, maximumLength: configuration.limits.smtpCommandLine - 2)
        } catch {
            self.error(error.reply, &actions)
            return
        }
        switch command {
        case .ehlo(let domain), .helo(let domain):
            abandonTransaction(&actions)
            heloName = domain
            state = .ready
            let greeting = "\(configuration.hostname) Hello \(sanitizeForLog(domain, maximumLength: 64))"
            if case .ehlo = command {
                actions.append(.reply(SMTPReply(code: 250, lines: [greeting] + offeredExtensions.keywordLines)))
            } else {
                actions.append(.reply(SMTPReply(code: 250, greeting)))
            }
        case .mail(let from, let parameters):
            mail(from: from, parameters: parameters, &actions)
        case .rcpt(let to, let parameters):
            rcpt(to: to, parameters: parameters, &actions)
        case .data:
            data(&actions)
        case .bdat(let size, let last):
            bdat(size: size, last: last, &actions)
        case .rset:
            abandonTransaction(&actions)
            state = heloName == nil ? .greeting : .ready
            actions.append(.reply(SMTPReply(250, (2, 0, 0), "Flushed")))
        case .noop:
            actions.append(.reply(SMTPReply(250, (2, 0, 0), "OK")))
        case .quit:
            actions += [.reply(SMTPReply(221, (2, 0, 0), "\(configuration.hostname) closing connection")), .close]
            close()
        case .help:
            actions.append(
                .reply(SMTPReply(214, (2, 0, 0), "Commands: EHLO HELO AUTH STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT")))
        case .vrfy:
            actions.append(
                .reply(SMTPReply(252, (2, 1, 5), "Cannot VRFY user, but will accept message and attempt delivery")))
        case .expn:
            actions.append(.reply(SMTPReply(502, (5, 5, 1), "EXPN is not available")))
        case .auth(let mechanism, let initialResponse):
            auth(mechanism: mechanism, initialResponse: initialResponse?.revealed, &actions)
        case .startTLS:
            startTLS(&actions)
        }
    }

    /// Ends the transaction; the upstream learns of it only if it had accepted MAIL.
    private mutating func abandonTransaction(_ actions: inout [Action]) {
        guard let transaction else { return }
        if transaction.chunkedStarted {
            actions.append(.abortMessage)
        } else if transaction.acceptedUpstream {
            actions.append(.resetUpstream)
        }
        self.transaction = nil
    }

    private mutating func mail(from: SMTPReversePath, parameters: [SMTPParameter], _ actions: inout [Action]) {
        guard heloName != nil else { return error(SMTPReply(503, (5, 5, 1), "Send EHLO first"), &actions) }
        guard transaction == nil else { return error(SMTPReply(503, (5, 5, 1), "Sender already specified"), &actions) }
        let account = authenticatedAccount ?? (configuration.relayAllowed ? configuration.relayAccount : nil)
        guard let account else { return error(SMTPReply(530, (5, 7, 0), "Authentication required"), &actions) }
        let offered = offeredExtensions
        var forwarded: [SMTPParameter] = []
        var bodyType: SMTPBodyType?
        for parameter in parameters {
            switch parameter.keyword {
            case "SIZE":
                if let size = Int(parameter.value ?? ""), size > configuration.maximumMessageSize {
                    actions.append(.reply(SMTPReply(552, (5, 3, 4), "Message size exceeds fixed maximum message size")))
                    return
                }
            case "BODY":
                bodyType = SMTPBodyType(rawValue: parameter.value ?? "")
                let offeredBody = bodyType == .sevenBit
                    || (bodyType == .eightBitMIME && offered.eightBitMIME) || (bodyType == .binaryMIME && offered.binaryMIME)
                guard offeredBody else {
                    return error(SMTPReply(555, (5, 5, 4), "Unsupported BODY type"), &actions)
                }
            case "SMTPUTF8":
                guard offered.smtpUTF8 else { return error(SMTPReply(555, (5, 5, 4), "SMTPUTF8 is not offered"), &actions) }
            case "AUTH":
                continue  // RFC 4954 §5: about our own trust in the client; meaningless upstream.
            default:
                return error(SMTPReply(555, (5, 5, 4), "Unsupported parameter \(parameter.keyword)"), &actions)
            }
            forwarded.append(parameter)
        }
        let smtpUTF8 = parameters.first(named: "SMTPUTF8") != nil
        guard smtpUTF8 || !from.requiresSMTPUTF8 else {
            return error(SMTPReply(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8"), &actions)
        }
        transaction = Transaction(from: from, parameters: forwarded, smtpUTF8: smtpUTF8, bodyType: bodyType)
        envelopeInFlight = [.mail]
        state = .awaitingUpstream(.mail)
        actions.append(.forwardMail(account: account, from: from, parameters: forwarded))
    }

    private mutating func rcpt(to: SMTPForwardPath, parameters: [SMTPParameter], _ actions: inout [Action]) {
        guard heloName != nil, let transaction else {
            return error(SMTPReply(503, (5, 5, 1), "Need MAIL command first"), &actions)
        }
        guard !transaction.chunkedStarted else {
            return error(SMTPReply(503, (5, 5, 1), "RCPT is not allowed after BDAT"), &actions)
        }
        guard transaction.recipients.count + envelopeInFlight.count < configuration.maximumRecipients else {
            actions.append(.reply(SMTPReply(452, (4, 5, 3), "Too many recipients")))
            return
        }
        if let parameter = parameters.first {
            return error(SMTPReply(555, (5, 5, 4), "Unsupported parameter \(parameter.keyword)"), &actions)
        }
        guard transaction.smtpUTF8 || !to.requiresSMTPUTF8 else {
            return error(SMTPReply(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8"), &actions)
        }
        envelopeInFlight.append(.rcpt(to))
        if case .awaitingUpstream = state {} else { state = .awaitingUpstream(.rcpt) }
        actions.append(.forwardRcpt(to: to, parameters: parameters))
    }

    /// While MAIL/RCPT replies are outstanding: forwards the next buffered command if it is a RCPT that will
    /// certainly go upstream (so its reply keeps its place in the order), and says whether it did. Anything
    /// else (another command, a RCPT that gets a local answer, an incomplete line) stays buffered untouched.
    private mutating func pipelineRecipient(_ actions: inout [Action]) -> Bool {
        guard let transaction, !transaction.chunkedStarted, heloName != nil,
            transaction.recipients.count + envelopeInFlight.count < configuration.maximumRecipients,
            let lf = input[inputStart...].firstIndex(of: 0x0A), lf > inputStart, input[lf - 1] == 0x0D,
            lf + 1 - inputStart <= configuration.limits.smtpCommandLine
        else { return false }
        let line = Array(input[inputStart..<(lf - 1)])
        guard let command = try? SMTPCommand.parse(line, maximumLength: configuration.limits.smtpCommandLine - 2),
            case .rcpt(let to, let parameters) = command, parameters.isEmpty,
            transaction.smtpUTF8 || !to.requiresSMTPUTF8
        else { return false }
        inputStart = lf + 1
        rcpt(to: to, parameters: parameters, &actions)
        return true
    }

    private mutating func data(_ actions: inout [Action]) {
        guard heloName != nil, let transaction else {
            return error(SMTPReply(503, (5, 5, 1), "Need MAIL command first"), &actions)
        }
        guard !transaction.chunkedStarted else {
            return error(SMTPReply(503, (5, 5, 1), "DATA is not allowed after BDAT"), &actions)
        }
        guard transaction.bodyType != .binaryMIME else {
            return error(SMTPReply(503, (5, 5, 1), "BODY=BINARYMIME requires BDAT"), &actions)
        }
        guard !transaction.recipients.isEmpty else {
            actions.append(.reply(SMTPReply(554, (5, 5, 1), "No valid recipients")))
            return
        }
        state = .awaitingUpstream(.dataStart)
        actions.append(.beginData)
    }

    private mutating func bdat(size: Int, last: Bool, _ actions: inout [Action]) {
        func refuse(_ reply: SMTPReply, then next: State) {
            stateAfterDiscard = next
            state = .discardingBDAT(remaining: size, reply: reply)
        }
        let current = heloName == nil ? State.greeting : (transaction == nil ? .ready : .transaction)
        guard offeredExtensions.chunking else {
            return refuse(SMTPReply(502, (5, 5, 1), "BDAT is not available"), then: current)
        }
        guard heloName != nil, var transaction else {
            return refuse(SMTPReply(503, (5, 5, 1), "Need MAIL command first"), then: current)
        }
        guard !transaction.recipients.isEmpty else {
            return refuse(SMTPReply(554, (5, 5, 1), "No valid recipients"), then: .transaction)
        }
        guard size <= configuration.maximumMessageSize - transaction.chunkedSize else {
            abandonTransaction(&actions)
            return refuse(SMTPReply(552, (5, 3, 4), "Message size exceeds fixed maximum message size"), then: .ready)
        }
        if !transaction.chunkedStarted {
            transaction.chunkedStarted = true
            upstreamFailure = nil
            actions.append(.beginChunkedData)
        }
        transaction.chunkedSize += size
        transaction.currentChunkSize = size
        self.transaction = transaction
        state = .bdat(remaining: size, last: last)
    }

    private mutating func finishChunk(last: Bool, _ actions: inout [Action]) {
        guard last else {
            state = .transaction
            let size = transaction?.currentChunkSize ?? 0
            if let upstreamFailure {
                actions.append(.reply(upstreamFailure))
            } else {
                actions.append(.reply(SMTPReply(250, (2, 0, 0), "\(size) octets received")))
            }
            return
        }
        if let upstreamFailure {
            actions += [.abortMessage, .reply(upstreamFailure)]
            transaction = nil
            state = .ready
            return
        }
        state = .awaitingUpstream(.endOfMessage)
        actions.append(.endOfMessage)
    }

    private mutating func finishData(problem: DotUnstuffer.Problem?, _ actions: inout [Action]) {
        unstuffer = nil
        switch problem {
        case .lineTooLong:
            actions.append(.abortMessage)
            transaction = nil
            state = .ready
            let limit = configuration.limits.smtpTextLine
            error(SMTPReply(500, (5, 5, 2), "Line too long: message lines may have at most \(limit) octets"), &actions)
        case .bareLineEnding:
            let refusal = SMTPReply(550, (5, 5, 2), "Message refused: bare CR or LF in the text; lines must end with CRLF")
            actions += [.abortMessage, .reply(refusal)]
            transaction = nil
            state = .ready
        case .nulCharacter:
            actions += [.abortMessage, .reply(SMTPReply(550, (5, 5, 2), "Message refused: NUL character in the text"))]
            transaction = nil
            state = .ready
        case .messageTooLarge:
            actions += [.abortMessage, .reply(SMTPReply(552, (5, 3, 4), "Message size exceeds fixed maximum message size"))]
            transaction = nil
            state = .ready
        case nil:
            if let upstreamFailure {
                actions += [.abortMessage, .reply(upstreamFailure)]
                transaction = nil
                state = .ready
            } else {
                state = .awaitingUpstream(.endOfMessage)
                actions.append(.endOfMessage)
            }
        }
    }

    // MARK: - AUTH and STARTTLS

    private mutating func auth(mechanism: String, initialResponse: String?, _ actions: inout [Action]) {
        guard heloName != nil else { return error(SMTPReply(503, (5, 5, 1), "Send EHLO first"), &actions) }
        guard authenticatedAccount == nil else { return error(SMTPReply(503, (5, 5, 1), "Already authenticated"), &actions) }
        guard transaction == nil else {
            return error(SMTPReply(503, (5, 5, 1), "AUTH is not allowed during a mail transaction"), &actions)
        }
        guard authenticationPermitted else {
            return error(
                SMTPReply(538, (5, 7, 11), "Encryption required for requested authentication mechanism"), &actions)
        }
        guard configuration.authMechanisms.contains(mechanism), var exchange = configuration.makeAuthExchange(mechanism)
        else { return error(SMTPReply(504, (5, 5, 4), "Unrecognized authentication type"), &actions) }
        let step = exchange.start(initialResponse: initialResponse)
        authExchange = exchange
        authStep(step, &actions)
    }

    private mutating func authLine(_ line: [UInt8], _ actions: inout [Action]) {
        guard var exchange = authExchange else {
            state = .ready
            return
        }
        let step: SMTPAuthStep
        if let text = String(validating: line, as: UTF8.self) {
            step = exchange.respond(text)
        } else {
            step = .failed(reason: "response is not UTF-8")
        }
        authExchange = exchange
        authStep(step, &actions)
    }

    private mutating func authStep(_ step: SMTPAuthStep, _ actions: inout [Action]) {
        switch step {
        case .challenge(let challenge):
            state = .authenticating
            actions.append(.reply(SMTPReply(code: 334, challenge)))
        case .credentials(let username, let password):
            authExchange = nil
            state = .verifyingCredentials
            actions.append(.verifyCredentials(username: username, password: password))
        case .cancelled:
            authExchange = nil
            state = .ready
            actions.append(.reply(SMTPReply(501, (5, 0, 0), "Authentication cancelled")))
        case .failed:
            authExchange = nil
            state = .ready
            error(SMTPReply(501, (5, 5, 2), "Cannot decode response"), &actions)
        }
    }

    private mutating func startTLS(_ actions: inout [Action]) {
        guard !tlsActive else { return error(SMTPReply(503, (5, 5, 1), "TLS is already active"), &actions) }
        guard configuration.tlsAvailable else { return error(SMTPReply(502, (5, 5, 1), "STARTTLS is not available"), &actions) }
        guard transaction == nil else {
            return error(SMTPReply(503, (5, 5, 1), "STARTTLS is not allowed during a mail transaction"), &actions)
        }
        actions += [.reply(SMTPReply(220, (2, 0, 0), "Ready to start TLS")), .startTLS]
        state = .startingTLS
        discardInput()
    }
}
