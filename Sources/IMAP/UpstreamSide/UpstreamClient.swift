// IMAP: the client-side state machine for one connection to the upstream server (Microsoft 365).

public import MailCore

/// Drives one upstream IMAP connection: numbers commands, tracks the RFC 3501 state, feeds literal payloads
/// after `+`, runs the XOAUTH2 exchange and turns responses into actions for the connection driver.
///
/// No I/O happens here: the driver writes every `.send`, reads bytes into an `IMAPResponseDecoder` and hands each
/// response to `receive(_:)`. One command is in flight at a time.
///
///     var client = IMAPUpstreamClient()
///     client.receive(greeting)                                   // [.greeting(...)]
///     let (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: xoauth2Bytes)
public struct IMAPUpstreamClient: Sendable {
    /// The connection's state (RFC 3501 §3), printed by name in logs.
    public enum State: Hashable, Sendable, CustomStringConvertible {
        case awaitingGreeting
        case notAuthenticated
        case authenticating
        case authenticated
        case selected(MailboxName)
        /// IDLE accepted; only `finishIdle()` may follow.
        case idling
        case loggingOut
        case closed

        public var description: String {
            switch self {
            case .awaitingGreeting: return "awaitingGreeting"
            case .notAuthenticated: return "notAuthenticated"
            case .authenticating: return "authenticating"
            case .authenticated: return "authenticated"
            case .selected(let mailbox): return "selected(\(sanitizeForLog(mailbox.bytes)))"
            case .idling: return "idling"
            case .loggingOut: return "loggingOut"
            case .closed: return "closed"
            }
        }
    }

    /// Why the session is over.
    public enum SessionEndReason: Hashable, Sendable {
        /// LOGOUT completed.
        case loggedOut
        /// `* BYE Session invalidated - AccessTokenExpired`: refresh the token and reconnect.
        case accessTokenExpired(String)
        /// Any other `* BYE`, with the server's text.
        case serverClosed(String)
        /// The connection ended without BYE.
        case connectionClosed
    }

    /// What the driver must do or learn.
    public enum Action: Hashable, Sendable {
        /// Write these bytes.
        case send([UInt8])
        /// Write nothing more for this command until the next action: a synchronizing literal waits for `+`.
        case waitForContinuation
        /// The server greeted us (`* OK` or, already authenticated, `* PREAUTH`).
        case greeting(ResponseText, preauthenticated: Bool)
        /// The command with `tag` finished; `untagged` are the responses received while it ran.
        case completed(tag: String, response: TaggedResponse, untagged: [UntaggedResponse])
        /// An untagged response outside any command, or during IDLE (EXISTS, EXPUNGE, FETCH flags…).
        case unsolicited(UntaggedResponse)
        /// The server accepted IDLE; call `finishIdle()` to end it.
        case idleStarted
        /// The server answered an AUTHENTICATE response with an error challenge (decoded when it is base64,
        /// e.g. `{"status":"401",…}`); an empty line has been queued and a tagged NO follows.
        case authenticationErrorDetails(String)
        /// The session is over; close the connection.
        case sessionEnded(SessionEndReason)
        /// The server broke the protocol; close the connection and log the reason.
        case protocolViolation(String)
    }

    private enum AuthenticationProgress: Sendable {
        /// The response waits for the server's first `+` (no SASL-IR).
        case awaitingChallenge(Redacted<[UInt8]>)
        /// The response has been sent; a `+` now is an error challenge.
        case responseSent
        /// The empty line after an error challenge has been sent; only the tagged NO may follow.
        case errorAcknowledged
    }

    private struct PendingCommand: Sendable {
        var tag: String
        var command: IMAPCommand
        var remainingSegments: [IMAPCommandSegment]
        var untagged: [UntaggedResponse] = []
        var authentication: AuthenticationProgress?
        var stateBefore: State
    }

    public private(set) var state: State = .awaitingGreeting
    /// The latest capability list the server sent (untagged CAPABILITY or a `[CAPABILITY …]` code).
    public private(set) var capabilities: [Capability] = []

    /// Takes `shared` in place of an equal capability list, so that sessions to one server keep one array between
    /// them (an idle gateway session would otherwise hold its own ~1 KiB copy); a list that differs is ignored.
    public mutating func shareCapabilities(_ shared: [Capability]) {
        if shared == capabilities { capabilities = shared }
    }
    private var pending: PendingCommand?
    private var commandCount = 0
    private let tagPrefix: String

    /// A client whose tags are `tagPrefix` followed by a four-digit counter (`A0001`, `A0002`, …).
    public init(tagPrefix: String = "A") {
        self.tagPrefix = tagPrefix
    }

    /// The tag of the command in flight, if any.
    public var tagInFlight: String? { pending?.tag }

    // MARK: - Commands

    /// Starts `command`; the returned actions write it (up to the first synchronizing literal).
    public mutating func send(_ command: IMAPCommand) throws(IMAPError) -> (tag: String, actions: [Action]) {
        try checkAllowed(command)
        var authentication: AuthenticationProgress? = nil
        if case .authenticate(_, _?) = command { authentication = .responseSent }
        return start(command, authentication: authentication)
    }

    /// Starts `AUTHENTICATE mechanism` with the raw SASL `response`: on the command line when the server offers
    /// SASL-IR, else after its first `+`.
    public mutating func authenticate(mechanism: String, response: Redacted<[UInt8]>) throws(IMAPError) -> (tag: String, actions: [Action]) {
        let withInitialResponse = capabilities.contains(.saslIR)
        let command = IMAPCommand.authenticate(mechanism: mechanism, initialResponse: withInitialResponse ? response : nil)
        try checkAllowed(command)
        return start(command, authentication: withInitialResponse ? .responseSent : .awaitingChallenge(response))
    }

    /// Ends IDLE by sending DONE; the tagged OK then completes the IDLE command.
    public mutating func finishIdle() throws(IMAPError) -> [Action] {
        guard state == .idling else { throw .invalidClientState(command: "DONE", state: state.description) }
        return [.send(IMAPCommandEncoder.done)]
    }

    /// The transport closed: the session is over, whatever the state.
    public mutating func connectionClosed() -> [Action] {
        guard state != .closed else { return [] }
        let wasLoggingOut = state == .loggingOut
        state = .closed
        pending = nil
        return [.sessionEnded(wasLoggingOut ? .loggedOut : .connectionClosed)]
    }

    private func checkAllowed(_ command: IMAPCommand) throws(IMAPError) {
        let allowed: Bool
        if pending != nil {
            allowed = false
        } else {
            switch (state, command) {
            case (.awaitingGreeting, _), (.authenticating, _), (.idling, _), (.loggingOut, _), (.closed, _):
                allowed = false
            case (_, .capability), (_, .noop), (_, .logout):
                allowed = true
            case (.notAuthenticated, .authenticate), (.notAuthenticated, .login):
                allowed = true
            case (.authenticated, .list), (.authenticated, .select), (.authenticated, .examine),
                (.authenticated, .append), (.authenticated, .idle),
                (.selected, .list), (.selected, .select), (.selected, .examine), (.selected, .append),
                (.selected, .idle), (.selected, .uidSearchHeader), (.selected, .uidSearchHeaderAny),
                (.selected, .uidFetchHeaderFields):
                allowed = true
            default:
                allowed = false
            }
        }
        guard allowed else {
            throw .invalidClientState(command: command.name, state: pending == nil ? state.description : "\(state) with a command in flight")
        }
    }

    private mutating func start(
        _ command: IMAPCommand, authentication: AuthenticationProgress?
    ) -> (tag: String, actions: [Action]) {
        commandCount += 1
        let digits = String(commandCount)
        let tag = tagPrefix + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        let encoder = IMAPCommandEncoder(capabilities: capabilities)
        let allSegments = encoder.encode(TaggedCommand(tag: tag, command: command))
        pending = PendingCommand(
            tag: tag, command: command, remainingSegments: allSegments, authentication: authentication, stateBefore: state)
        switch command {
        case .authenticate, .login: state = .authenticating
        case .logout: state = .loggingOut
        default: break
        }
        return (tag, emitUntilStopPoint())
    }

    /// Sends the pending segments up to the next wait marker.
    private mutating func emitUntilStopPoint() -> [Action] {
        guard var command = pending else { return [] }
        var actions: [Action] = []
        while !command.remainingSegments.isEmpty {
            let segment = command.remainingSegments.removeFirst()
            switch segment {
            case .bytes(let bytes):
                actions.append(.send(bytes))
            case .waitForContinuation:
                actions.append(.waitForContinuation)
                pending = command
                return actions
            }
        }
        pending = command
        return actions
    }

    // MARK: - Responses

    /// Handles one response from the server.
    public mutating func receive(_ response: IMAPResponse) -> [Action] {
        guard state != .closed else { return [.protocolViolation("the server sent data after the session ended")] }
        switch response {
        case .untagged(let untagged):
            return receiveUntagged(untagged)
        case .continuation(let text):
            return receiveContinuation(text)
        case .tagged(let tagged):
            return receiveTagged(tagged)
        }
    }

    private mutating func receiveUntagged(_ untagged: UntaggedResponse) -> [Action] {
        noteCapabilities(in: untagged)
        if state == .awaitingGreeting {
            switch untagged {
            case .ok(let text):
                state = .notAuthenticated
                return [.greeting(text, preauthenticated: false)]
            case .preauth(let text):
                state = .authenticated
                return [.greeting(text, preauthenticated: true)]
            case .bye(let text):
                return endSession(with: text)
            default:
                return violation("the server sent \(Self.name(of: untagged)) instead of a greeting")
            }
        }
        if case .bye(let text) = untagged, state != .loggingOut {
            return endSession(with: text)
        }
        if state != .idling, var command = pending {
            command.untagged.append(untagged)
            pending = command
            return []
        }
        return [.unsolicited(untagged)]
    }

    private mutating func receiveContinuation(_ text: String) -> [Action] {
        guard var command = pending else {
            return violation("the server sent a continuation request while no command was running")
        }
        if !command.remainingSegments.isEmpty {
            return emitUntilStopPoint()
        }
        if case .idle = command.command, state != .idling {
            state = .idling
            return [.idleStarted]
        }
        switch command.authentication {
        case .awaitingChallenge(let response)?:
            command.authentication = .responseSent
            pending = command
            return [.send(IMAPCommandEncoder.authenticationResponse(response))]
        case .responseSent?:
            command.authentication = .errorAcknowledged
            pending = command
            let decoded = Base64Codec.standard.decode(text, padding: .optional).map { String(decoding: $0, as: UTF8.self) } ?? text
            return [.authenticationErrorDetails(sanitizeForLog(decoded, maximumLength: 400)), .send(IMAPCommandEncoder.emptyResponse)]
        case .errorAcknowledged?:
            return violation("the server sent a second AUTHENTICATE challenge after the error challenge")
        case nil:
            return violation("the server sent a continuation request that \(command.command.name) does not expect")
        }
    }

    private mutating func receiveTagged(_ tagged: TaggedResponse) -> [Action] {
        guard let command = pending, command.tag == tagged.tag else {
            return violation("the server completed tag \(sanitizeForLog(tagged.tag, maximumLength: 40)), which is not in flight")
        }
        pending = nil
        if case .capability(let list)? = tagged.code { capabilities = list }
        var actions: [Action] = [.completed(tag: tagged.tag, response: tagged, untagged: command.untagged)]
        switch (command.command, tagged.status) {
        case (.authenticate, .ok), (.login, .ok):
            state = .authenticated
        case (.authenticate, _), (.login, _):
            state = .notAuthenticated
        case (.select(let mailbox), .ok), (.examine(let mailbox), .ok):
            state = .selected(mailbox)
        case (.select, .no), (.examine, .no):
            state = .authenticated
        case (.logout, .ok):
            state = .closed
            actions.append(.sessionEnded(.loggedOut))
        case (.logout, _), (.idle, _):
            state = command.stateBefore
        default:
            break
        }
        return actions
    }

    private mutating func noteCapabilities(in untagged: UntaggedResponse) {
        switch untagged {
        case .capability(let list):
            capabilities = list
        case .ok(let text), .preauth(let text):
            if case .capability(let list)? = text.code { capabilities = list }
        default:
            break
        }
    }

    private mutating func endSession(with text: ResponseText) -> [Action] {
        state = .closed
        pending = nil
        if text.exchangeCondition == .accessTokenExpired {
            return [.sessionEnded(.accessTokenExpired(sanitizeForLog(text.text)))]
        }
        return [.sessionEnded(.serverClosed(sanitizeForLog(text.text)))]
    }

    private mutating func violation(_ reason: String) -> [Action] {
        state = .closed
        pending = nil
        return [.protocolViolation(reason)]
    }

    private static func name(of untagged: UntaggedResponse) -> String {
        switch untagged {
        case .ok: return "OK"
        case .no: return "NO"
        case .bad: return "BAD"
        case .bye: return "BYE"
        case .preauth: return "PREAUTH"
        case .capability: return "CAPABILITY"
        case .list: return "LIST"
        case .lsub: return "LSUB"
        case .search: return "SEARCH"
        case .flags: return "FLAGS"
        case .exists: return "EXISTS"
        case .recent: return "RECENT"
        case .expunge: return "EXPUNGE"
        case .fetch: return "FETCH"
        case .other(let name, _): return sanitizeForLog(name, maximumLength: 40)
        }
    }
}
