// IMAP: the client-facing state machine before authentication (RFC 9051 §6.1–6.2, RFC 3501, RFC 4959, RFC 2971).

public import MailCore

/// The IMAP conversation with one client up to a successful login, as a pure value: bytes and results in,
/// actions out (the shape of `SMTPServerSide`).
///
/// **How the session drives it.** Feed `.connected` once (after the handshake, for imaps), then every byte read
/// from the client as `.received(bytes)`, in any chunks. Perform the returned actions in order. LOGIN and
/// AUTHENTICATE PLAIN end in `.verify(username:password:)`: the session checks the local password, opens the
/// upstream and logs in there, then feeds `.loginSucceeded(capabilities:)` (the filtered upstream list, see
/// `IMAPCapabilityFilter`) or `.loginFailed(…)`. After success the machine answers `tag OK [CAPABILITY …]`, is
/// `.authenticated`, and returns `.authenticated(username:leftover:)` with the bytes the client pipelined after
/// its login: the proxy's `IMAPCommandFramer` starts with those.
///
///     S: * OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS AUTH=PLAIN] MailGate ready
///     C: a1 LOGIN user@contoso.com {8}
///     S: + Ready for literal data
///     C: p4ssw0rd
///         → .verify(username: "user@contoso.com", password: …)
///         ← .loginSucceeded(capabilities: [IMAP4rev1, UIDPLUS, MOVE, IDLE, LITERAL+, SPECIAL-USE])
///     S: a1 OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE IDLE LITERAL+ SPECIAL-USE] LOGIN completed
///
/// **Rules.** On a plaintext connection that is not loopback (and without `allowPlaintext`) LOGIN and
/// AUTHENTICATE are refused with `NO [PRIVACYREQUIRED]` and CAPABILITY says `LOGINDISABLED` without `AUTH=PLAIN`
/// (RFC 9051 §6.2.3). After STARTTLS's OK, bytes the client pipelined in plaintext are discarded (RFC 9051
/// §6.2.1). Malformed commands, unknown commands and commands of later states get `BAD`, failed logins
/// `NO [AUTHENTICATIONFAILED]`; each counts against `Configuration.errorBudget`, whose last error gets
/// `* BYE` and a close. Input past a bound (a line over `limits.commandLine`, a non-synchronizing literal over
/// `limits.commandLiteral`) gets `* BYE` and a close.
public struct IMAPServerSide: Sendable {
    /// What the gateway knows about this listener and client.
    public struct Configuration: Sendable {
        /// The text of the greeting after its `[CAPABILITY …]` code.
        public var greetingText: String
        /// A certificate is configured, so STARTTLS can be offered.
        public var tlsAvailable: Bool
        /// The connection is TLS from the first byte (imaps).
        public var implicitTLS: Bool
        /// The client connected over loopback, where a password in plaintext is acceptable.
        public var clientIsLoopback: Bool
        /// `allow_plaintext = true`: allow LOGIN without TLS on any interface.
        public var allowPlaintext: Bool
        /// Bounds of the pre-login framer: short lines, literals only as large as a user name or password.
        public var limits: IMAPLimits
        /// Protocol errors and failed logins allowed before `* BYE` (`Limits.errorBudget`).
        public var errorBudget: Int
        /// Unprocessed client bytes held while a login is verified; more gets `* BYE` and a close.
        public var maximumBufferedInput: Int
        /// What `* ID` answers (RFC 2971): field/value pairs.
        public var serverID: [(field: String, value: String)]

        public init(
            greetingText: String = "MailGate ready",
            tlsAvailable: Bool = false,
            implicitTLS: Bool = false,
            clientIsLoopback: Bool = true,
            allowPlaintext: Bool = false,
            limits: IMAPLimits = IMAPServerSide.preLoginLimits,
            errorBudget: Int = Limits.standard.errorBudget,
            maximumBufferedInput: Int = Limits.standard.writeBufferHighWater,
            serverID: [(field: String, value: String)] = [("name", "MailGate")]
        ) {
            self.greetingText = greetingText
            self.tlsAvailable = tlsAvailable
            self.implicitTLS = implicitTLS
            self.clientIsLoopback = clientIsLoopback
            self.allowPlaintext = allowPlaintext
            self.limits = limits
            self.errorBudget = errorBudget
            self.maximumBufferedInput = maximumBufferedInput
            self.serverID = serverID
        }
    }

    /// Pre-login bounds: the standard line, literals up to `Limits.saslResponse` (12 288 octets, ample for a user
    /// name or password), never streamed.
    public static let preLoginLimits: IMAPLimits = {
        var limits = IMAPLimits()
        limits.commandLiteral = Limits.standard.saslResponse
        limits.inlineLiteral = Limits.standard.saslResponse
        limits.inlineFrame = limits.commandLine + 2 * Limits.standard.saslResponse + 64
        return limits
    }()

    /// How the client proved its identity.
    public enum Mechanism: String, Sendable, Equatable {
        case login = "LOGIN"
        case plain = "AUTHENTICATE"
    }

    /// Why the gateway refused a login after `.verify`.
    public enum LoginFailure: Sendable, Equatable {
        /// Wrong local password, unknown account: `NO [AUTHENTICATIONFAILED]`.
        case authenticationFailed
        /// The account's Microsoft 365 sign-in must be renewed: `* OK [ALERT] … run mailgate account connect EMAIL`
        /// and `NO [AUTHENTICATIONFAILED]`.
        case mustReconnect(email: String)
        /// Upstream down or the token service failing: `NO [UNAVAILABLE]`; `reason` is shown to the user, cut
        /// to 160 printable characters.
        case unavailable(reason: String)
        /// The mailbox has as many upstream sessions as the gateway allows (`imap_upstream_sessions`):
        /// `NO [LIMIT]` with `reason`, cut to 160 printable characters (RFC 5530).
        case limit(reason: String)
    }

    /// Where the conversation stands; case names print in logs.
    public enum State: String, Sendable, Equatable, CustomStringConvertible {
        /// Before `.connected`.
        case awaitingConnection
        /// Greeting sent; commands of the not-authenticated state are served.
        case notAuthenticated
        /// `+` sent for AUTHENTICATE PLAIN; the next line is the SASL response.
        case awaitingSASLResponse
        /// `.verify` returned; waiting for `.loginSucceeded` / `.loginFailed`.
        case verifying
        /// OK to STARTTLS sent; waiting for `.tlsStarted`.
        case startingTLS
        /// The login succeeded; the proxy owns the connection now.
        case authenticated
        /// LOGOUT, an error budget exhausted, or a fatal error; nothing more is read.
        case closed

        public var description: String { rawValue }
    }

    /// Events the session feeds in.
    public enum Input: Sendable, Equatable {
        /// The client connected (for imaps: the handshake finished): send the greeting.
        case connected
        /// Bytes from the client, any chunking.
        case received([UInt8])
        /// The STARTTLS handshake finished.
        case tlsStarted
        /// The local password was right and the upstream login succeeded; `capabilities` is what the client may
        /// see (`IMAPCapabilityFilter.clientCapabilities`).
        case loginSucceeded(capabilities: [Capability])
        /// The login was refused.
        case loginFailed(LoginFailure)
    }

    /// What the session must do, in order.
    public enum Action: Sendable, Equatable {
        /// Write these bytes to the client.
        case send([UInt8])
        /// Start the TLS handshake on the client connection, then feed `.tlsStarted`.
        case startTLS
        /// Check these credentials (local password, then upstream login), then feed `.loginSucceeded` or
        /// `.loginFailed`.
        case verify(username: String, password: Redacted<String>, mechanism: Mechanism)
        /// The login is complete (its OK is in the `.send` before): hand the connection to the proxy, starting with
        /// `leftover`, the bytes the client sent after its login command.
        case authenticated(username: String, leftover: [UInt8])
        /// Close the client connection after writing what was sent above.
        case close
    }

    public let configuration: Configuration
    public private(set) var state: State = .awaitingConnection
    /// Whether the client connection is encrypted.
    public private(set) var tlsActive: Bool
    /// Protocol errors and failed logins so far.
    public private(set) var errorCount = 0
    /// The user name of the login being verified, then of the authenticated session.
    public private(set) var username: String?

    private var framer: IMAPCommandFramer
    /// Tag and mechanism of the running AUTHENTICATE or the login being verified.
    private var pending: (tag: String, mechanism: Mechanism)?

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.tlsActive = configuration.implicitTLS
        self.framer = IMAPCommandFramer(limits: configuration.limits, literalPlusAdvertised: true)
    }

    /// Whether LOGIN / AUTHENTICATE may be used now (TLS, loopback, or `allowPlaintext`).
    public var loginPermitted: Bool {
        tlsActive || configuration.clientIsLoopback || configuration.allowPlaintext
    }

    /// What this machine advertises now (greeting and CAPABILITY).
    public var capabilities: [Capability] {
        var list: [Capability] = [.imap4rev1, .saslIR, .literalPlus, Capability("ID")]
        if configuration.tlsAvailable && !tlsActive { list.append(.startTLS) }
        list.append(loginPermitted ? .auth("PLAIN") : .loginDisabled)
        return list
    }

    /// Bytes received but not yet processed.
    public var bufferedByteCount: Int { framer.bufferedByteCount }

    // MARK: - Input

    /// Handles one event and returns the actions to perform, in order.
    public mutating func handle(_ event: Input) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .connected:
            guard state == .awaitingConnection else { return [] }
            state = .notAuthenticated
            send("* OK [CAPABILITY \(IMAPCapabilityFilter.wire(capabilities))] \(configuration.greetingText)", &actions)
        case .received(let bytes):
            switch state {
            case .closed, .authenticated, .startingTLS, .awaitingConnection:
                return []
            default:
                framer.append(bytes)
            }
        case .tlsStarted:
            guard state == .startingTLS else { return [] }
            tlsActive = true
            _ = framer.takeBufferedInput()
            state = .notAuthenticated
        case .loginSucceeded(let capabilities):
            guard state == .verifying, let pending, let username else { return [] }
            let code = IMAPCapabilityFilter.wire(capabilities)
            send("\(pending.tag) OK [CAPABILITY \(code)] \(pending.mechanism.rawValue) completed", &actions)
            self.pending = nil
            state = .authenticated
            actions.append(.authenticated(username: username, leftover: framer.takeBufferedInput()))
            return actions
        case .loginFailed(let failure):
            guard state == .verifying, let pending else { return [] }
            self.pending = nil
            username = nil
            state = .notAuthenticated
            loginFailed(failure, tag: pending.tag, &actions)
        }
        process(&actions)
        return actions
    }

    // MARK: - Processing

    private mutating func process(_ actions: inout [Action]) {
        while true {
            switch state {
            case .notAuthenticated, .awaitingSASLResponse:
                break
            case .verifying:
                if framer.bufferedByteCount > configuration.maximumBufferedInput {
                    bye("Too much pipelined input", &actions)
                }
                return
            default:
                return
            }
            let event: IMAPCommandFramer.Event?
            do {
                event = try framer.next()
            } catch {
                switch error {
                case .lineTooLong: bye("Line too long", &actions)
                case .literalTooLarge: bye("Literal too large", &actions)
                default: bye("Command too large", &actions)
                }
                return
            }
            guard let event else { return }
            switch event {
            case .command(let command):
                self.command(command, &actions)
            case .literalRequest(let request):
                literalRequest(request, &actions)
            case .literalTooLarge(let request):
                error("\(request.tag) NO [TOOBIG] Literal too large before login", &actions)
            case .streamBegin, .streamBytes, .streamEnd, .streamTail:
                // Pre-login limits keep every literal inline; a stream means a command far too large.
                bye("Command too large", &actions)
                return
            case .rawLine(let line):
                saslResponse(line, &actions)
            case .malformed(let malformed):
                error(String(decoding: malformed.badResponse.dropLast(2), as: UTF8.self), &actions)
            }
        }
    }

    private mutating func send(_ line: String, _ actions: inout [Action]) {
        actions.append(.send(Array((line + "\r\n").utf8)))
    }

    /// Answers a protocol error and counts it; the error that exhausts the budget gets `* BYE` and a close.
    private mutating func error(_ line: String, _ actions: inout [Action]) {
        errorCount += 1
        send(line, &actions)
        if errorCount >= configuration.errorBudget {
            bye("Too many errors", &actions)
        }
    }

    private mutating func bye(_ text: String, _ actions: inout [Action]) {
        send("* BYE \(text)", &actions)
        actions.append(.close)
        state = .closed
        pending = nil
        framer = IMAPCommandFramer(limits: configuration.limits)
    }

    // MARK: - Commands

    /// Commands of the authenticated and selected states (RFC 9051 §6.3–6.4 and common extensions): before login
    /// they get "log in first" rather than "unknown command".
    static let laterStateCommands: Set<String> = [
        "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE",
        "STATUS", "APPEND", "IDLE", "ENABLE", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE",
        "COPY", "MOVE", "UID", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "GETACL", "SETACL", "MYRIGHTS", "LISTRIGHTS",
        "DELETEACL", "SORT", "THREAD", "COMPRESS", "GETMETADATA", "SETMETADATA", "NOTIFY", "ESEARCH", "XLIST",
    ]

    private mutating func command(_ command: IMAPClientCommand, _ actions: inout [Action]) {
        let tag = command.tag
        if command.isUID {
            return error("\(tag) BAD Log in first", &actions)
        }
        switch command.name {
        case "CAPABILITY":
            guard command.arguments.isEmpty else { return error("\(tag) BAD CAPABILITY takes no arguments", &actions) }
            send("* CAPABILITY \(IMAPCapabilityFilter.wire(capabilities))", &actions)
            send("\(tag) OK CAPABILITY completed", &actions)
        case "NOOP":
            guard command.arguments.isEmpty else { return error("\(tag) BAD NOOP takes no arguments", &actions) }
            send("\(tag) OK NOOP completed", &actions)
        case "LOGOUT":
            guard command.arguments.isEmpty else { return error("\(tag) BAD LOGOUT takes no arguments", &actions) }
            send("* BYE MailGate logging out", &actions)
            send("\(tag) OK LOGOUT completed", &actions)
            actions.append(.close)
            state = .closed
        case "ID":
            // id = "ID" SP id-params-list ; id-params-list = "(" *(string SP nstring) ")" / nil
            let arguments = command.arguments
            let isNil = arguments.count == 1 && arguments[0].keyword == "NIL"
            let isList =
                arguments.first?.kind == .listOpen && arguments.last?.kind == .listClose
                && arguments.dropFirst().dropLast().allSatisfy { $0.isString && $0.depth == 1 }
            guard isNil || isList else { return error("\(tag) BAD Invalid ID parameters", &actions) }
            let fields = configuration.serverID.map { "\(Self.quoted($0.field)) \(Self.quoted($0.value))" }
            send("* ID (\(fields.joined(separator: " ")))", &actions)
            send("\(tag) OK ID completed", &actions)
        case "STARTTLS":
            guard command.arguments.isEmpty else { return error("\(tag) BAD STARTTLS takes no arguments", &actions) }
            guard !tlsActive else { return error("\(tag) BAD TLS is already active", &actions) }
            guard configuration.tlsAvailable else { return error("\(tag) BAD STARTTLS is not available", &actions) }
            send("\(tag) OK Begin TLS negotiation now", &actions)
            actions.append(.startTLS)
            state = .startingTLS
            _ = framer.takeBufferedInput()
        case "LOGIN":
            login(command, &actions)
        case "AUTHENTICATE":
            authenticate(command, &actions)
        default:
            if Self.laterStateCommands.contains(command.name) {
                error("\(tag) BAD Log in first", &actions)
            } else {
                error("\(tag) BAD Unknown command", &actions)
            }
        }
    }

    private mutating func literalRequest(_ request: IMAPLiteralRequest, _ actions: inout [Action]) {
        if request.command.name == "ID" && !request.command.isUID {
            framer.acceptLiteral()
            return send("+ Ready for literal data", &actions)
        }
        guard request.command.name == "LOGIN" && !request.command.isUID else {
            framer.refuseLiteral()
            let known = Self.laterStateCommands.contains(request.command.name)
            return error("\(request.tag) BAD \(known ? "Log in first" : "Unknown command")", &actions)
        }
        guard loginPermitted else {
            framer.refuseLiteral()
            return error("\(request.tag) NO [PRIVACYREQUIRED] \(Self.privacySentence)", &actions)
        }
        let stringsSoFar = request.command.arguments.filter(\.isString).count
        guard stringsSoFar <= 2, request.command.arguments.allSatisfy({ $0.isString && $0.depth == 0 }) else {
            framer.refuseLiteral()
            return error("\(request.tag) BAD LOGIN takes a user name and a password", &actions)
        }
        framer.acceptLiteral()
        send("+ Ready for literal data", &actions)
    }

    static let privacySentence = "Log in only over TLS: use STARTTLS or the imaps port"

    // login = "LOGIN" SP userid SP password ; userid = astring ; password = astring
    private mutating func login(_ command: IMAPClientCommand, _ actions: inout [Action]) {
        let tag = command.tag
        guard loginPermitted else { return error("\(tag) NO [PRIVACYREQUIRED] \(Self.privacySentence)", &actions) }
        let arguments = command.arguments
        guard arguments.count == 2, arguments.allSatisfy({ $0.isString && $0.depth == 0 }) else {
            return error("\(tag) BAD LOGIN takes a user name and a password", &actions)
        }
        guard let user = String(validating: arguments[0].value, as: UTF8.self),
            let password = String(validating: arguments[1].value, as: UTF8.self), !user.isEmpty, !password.isEmpty,
            !arguments[0].value.contains(0), !arguments[1].value.contains(0)
        else { return error("\(tag) BAD User name and password must be non-empty UTF-8", &actions) }
        startVerifying(tag: tag, mechanism: .login, username: user, password: password, &actions)
    }

    // authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")] *(CRLF base64)   ; RFC 4959 initial response
    private mutating func authenticate(_ command: IMAPClientCommand, _ actions: inout [Action]) {
        let tag = command.tag
        let arguments = command.arguments
        guard (1...2).contains(arguments.count), arguments.allSatisfy({ $0.kind == .atom }),
            let mechanism = arguments[0].keyword
        else { return error("\(tag) BAD AUTHENTICATE takes a mechanism and an optional initial response", &actions) }
        guard mechanism == "PLAIN" else { return error("\(tag) NO Unsupported authentication mechanism", &actions) }
        guard loginPermitted else { return error("\(tag) NO [PRIVACYREQUIRED] \(Self.privacySentence)", &actions) }
        if arguments.count == 2 {
            let response = arguments[1].value
            plainResponse(response == [UInt8(ascii: "=")] ? [] : response, tag: tag, &actions)
            return
        }
        pending = (tag, .plain)
        state = .awaitingSASLResponse
        framer.expectRawLine()
        send("+ ", &actions)
    }

    private mutating func saslResponse(_ line: [UInt8], _ actions: inout [Action]) {
        guard state == .awaitingSASLResponse, let pending else { return }
        self.pending = nil
        state = .notAuthenticated
        if line == [UInt8(ascii: "*")] {
            send("\(pending.tag) BAD Authentication cancelled", &actions)
            return
        }
        plainResponse(line, tag: pending.tag, &actions)
    }

    /// RFC 4616: `base64([authzid] NUL authcid NUL passwd)`; an authzid other than the authcid is refused.
    private mutating func plainResponse(_ base64: [UInt8], tag: String, _ actions: inout [Action]) {
        guard let decoded = Base64Codec.standard.decode(base64, padding: .required) else {
            return error("\(tag) BAD Invalid base64 in SASL response", &actions)
        }
        let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let authzid = String(validating: parts[0], as: UTF8.self),
            let user = String(validating: parts[1], as: UTF8.self),
            let password = String(validating: parts[2], as: UTF8.self), !user.isEmpty, !password.isEmpty,
            !parts[2].contains(0)
        else { return error("\(tag) BAD Malformed PLAIN response", &actions) }
        guard authzid.isEmpty || authzid == user else {
            return error("\(tag) NO [AUTHORIZATIONFAILED] Acting as another user is not allowed", &actions)
        }
        startVerifying(tag: tag, mechanism: .plain, username: user, password: password, &actions)
    }

    private mutating func startVerifying(
        tag: String, mechanism: Mechanism, username: String, password: String, _ actions: inout [Action]
    ) {
        pending = (tag, mechanism)
        self.username = username
        state = .verifying
        actions.append(.verify(username: username, password: Redacted(password), mechanism: mechanism))
    }

    private mutating func loginFailed(_ failure: LoginFailure, tag: String, _ actions: inout [Action]) {
        switch failure {
        case .authenticationFailed:
            error("\(tag) NO [AUTHENTICATIONFAILED] Authentication failed", &actions)
        case .mustReconnect(let email):
            let address = Self.printable(email, maximumLength: 254)
            send(
                "* OK [ALERT] The Microsoft 365 sign-in of \(address) must be renewed: "
                    + "run mailgate account connect \(address) on the MailGate host", &actions)
            error("\(tag) NO [AUTHENTICATIONFAILED] Microsoft 365 sign-in must be renewed", &actions)
        case .limit(let reason):
            send("\(tag) NO [LIMIT] \(Self.printable(reason, maximumLength: 160))", &actions)
        case .unavailable(let reason):
            let text = Self.printable(reason, maximumLength: 160)
            send(
                "\(tag) NO [UNAVAILABLE] Microsoft 365 is not available right now\(text.isEmpty ? "" : " (\(text))"); "
                    + "try again later", &actions)
        }
    }

    // MARK: - Text

    /// Printable ASCII only, cut to `maximumLength`: safe inside a response line.
    static func printable(_ text: String, maximumLength: Int) -> String {
        var out = ""
        for byte in text.utf8.prefix(maximumLength) {
            out.unicodeScalars.append(Unicode.Scalar(byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "?")))
        }
        return out
    }

    /// A quoted string for `* ID`: printable ASCII with `"` and `\` escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for character in printable(text, maximumLength: 1024) {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }
}
