// POP3: the client-facing state machine (RFC 1939, RFC 2449 CAPA and response codes, RFC 5034 AUTH, RFC 2595 STLS).

public import MailCore

/// The POP3 conversation with one client, as a pure value: bytes and results in, actions out (the shape of
/// `SMTPServerSide` and `IMAPServerSide`).
///
/// **How the session drives it.** Feed `.connected` once (for pop3s after the handshake), then every byte read from
/// the client as `.received(bytes)`, in any chunks, and perform the returned actions in order. USER/PASS and
/// AUTH PLAIN end in `.verify`: the session checks the local password, opens the account's maildrop (or the
/// relayed upstream POP3 login) and feeds `.loginSucceeded(…)` or `.loginFailed(…)`. In the TRANSACTION state
/// STAT, LIST, UIDL, DELE, RSET, NOOP are answered from the message list; RETR and TOP return `.retrieve`, after
/// which the session feeds the raw message bytes as `.messageData` (dot-stuffed here, streaming) and ends with
/// `.retrieveFinished`. QUIT with deletions returns `.commit` (the UPDATE state), answered after
/// `.commitFinished`; a connection that drops never commits.
///
///     S: +OK MailGate POP3 ready
///     C: USER alice@contoso.com
///     S: +OK Send the password
///     C: PASS secret            → .verify(…)   ← .loginSucceeded(.maildrop([…]))
///     S: +OK Logged in; 2 messages (3120 octets)
///     C: RETR 1                 → .retrieve(index: 0, bodyLines: nil)   ← .messageData(…) …, .retrieveFinished
///
/// **Rules.** Command lines are bounded by `commandLine` (255 octets with CRLF, RFC 2449 §4); a longer line is
/// discarded up to its line end and answered `-ERR`; so are unknown and ill-formed commands. Every `-ERR` for a
/// protocol error or a failed login counts against `errorBudget`, whose last one ends the session. On a plaintext
/// connection that is neither loopback nor `allowPlaintext`, USER, PASS and AUTH are refused until STLS (RFC 2595
/// §4) and CAPA lists neither USER nor SASL. While a command waits for the session (a login, a retrieval, the
/// commit) input is only buffered, up to `maximumBufferedInput`; pipelined commands (RFC 2449 PIPELINING) are
/// answered in order.
public struct POP3ServerSide: Sendable {
    /// What the gateway knows about this listener and client.
    public struct Configuration: Sendable {
        public var greetingText: String
        /// A certificate is configured, so STLS can be offered.
        public var tlsAvailable: Bool
        /// The connection is TLS from the first byte (pop3s).
        public var implicitTLS: Bool
        /// The client connected over loopback, where a password in plaintext is acceptable.
        public var clientIsLoopback: Bool
        /// `allow_plaintext = true`.
        public var allowPlaintext: Bool
        /// Longest command line, CRLF included (RFC 2449 §4: 255).
        public var commandLine: Int
        /// Longest SASL response line after `+ ` (a PLAIN response of a long password).
        public var saslResponseLine: Int
        /// Protocol errors and failed logins allowed; the one that reaches it ends the session.
        public var errorBudget: Int
        /// Unprocessed client bytes held while a command waits for the session; more ends the session.
        public var maximumBufferedInput: Int

        public init(
            greetingText: String = "MailGate POP3 ready", tlsAvailable: Bool = false, implicitTLS: Bool = false,
            clientIsLoopback: Bool = true, allowPlaintext: Bool = false, commandLine: Int = POP3Limits.rfcCommandLine,
            saslResponseLine: Int = Limits.standard.saslResponse, errorBudget: Int = Limits.standard.errorBudget,
            maximumBufferedInput: Int = 65_536
        ) {
            self.greetingText = greetingText
            self.tlsAvailable = tlsAvailable
            self.implicitTLS = implicitTLS
            self.clientIsLoopback = clientIsLoopback
            self.allowPlaintext = allowPlaintext
            self.commandLine = commandLine
            self.saslResponseLine = saslResponseLine
            self.errorBudget = errorBudget
            self.maximumBufferedInput = maximumBufferedInput
        }
    }

    /// How the client proved its identity.
    public enum Mechanism: String, Sendable, Equatable {
        case userPass = "USER/PASS"
        case plain = "AUTH PLAIN"
    }

    /// What the session found after a verified login.
    public enum LoginResult: Sendable, Equatable {
        /// The maildrop is open with these messages (1-based numbers are their positions + 1).
        case maildrop([MaildropEntry])
        /// The upstream POP3 session is logged in; the session relays from now on.
        case relay
    }

    /// One message of the maildrop as the machine needs it.
    public struct MaildropEntry: Sendable, Equatable {
        public var uidl: String
        public var size: Int
        public init(uidl: String, size: Int) {
            self.uidl = uidl
            self.size = size
        }
    }

    /// Why a login (or the maildrop behind it) was refused.
    public enum LoginFailure: Sendable, Equatable {
        /// Wrong local password or unknown account: `-ERR [AUTH]`.
        case authenticationFailed
        /// The account's Microsoft 365 sign-in must be renewed: `-ERR [AUTH] … run mailgate account connect EMAIL`.
        case mustReconnect(email: String)
        /// Upstream down, token service failing, too many logins waiting: `-ERR [SYS/TEMP]`.
        case temporary(String)
        /// Will not get better by retrying: `-ERR [SYS/PERM]`.
        case permanent(String)
        /// Another session holds the maildrop: `-ERR [IN-USE]`.
        case inUse(String)
    }

    /// How a retrieval or the commit ended.
    public enum Failure: Sendable, Equatable {
        case temporary(String)
        case permanent(String)
    }

    /// Where the conversation stands; case names print in logs.
    public enum State: String, Sendable, Equatable, CustomStringConvertible {
        case awaitingConnection
        /// RFC 1939 AUTHORIZATION.
        case authorization
        /// `+ ` sent for AUTH PLAIN; the next line is the SASL response.
        case awaitingSASLResponse
        /// `.verify` returned; waiting for `.loginSucceeded` / `.loginFailed`.
        case verifying
        /// `+OK` to STLS sent; waiting for `.tlsStarted`.
        case startingTLS
        /// RFC 1939 TRANSACTION.
        case transaction
        /// RETR/TOP streaming; waiting for `.messageData` and `.retrieveFinished`.
        case retrieving
        /// RFC 1939 UPDATE: `.commit` returned; waiting for `.commitFinished`.
        case update
        /// The upstream POP3 session took over (incoming = "pop3").
        case relaying
        /// QUIT answered, error budget spent, or a fatal error; nothing more is read.
        case closed

        public var description: String { rawValue }
    }

    public enum Input: Sendable, Equatable {
        case connected
        case received([UInt8])
        case tlsStarted
        case loginSucceeded(LoginResult)
        case loginFailed(LoginFailure)
        /// Raw message bytes (CRLF line ends, not stuffed) of the running RETR/TOP.
        case messageData([UInt8])
        /// The running RETR/TOP is complete, or failed.
        case retrieveFinished(Failure?)
        /// The UPDATE state's deletions are done, or failed.
        case commitFinished(Failure?)
    }

    public enum Action: Sendable, Equatable {
        case send([UInt8])
        /// Start the TLS handshake on the client connection, then feed `.tlsStarted`.
        case startTLS
        /// Check these credentials, open the maildrop or the upstream login, then feed `.loginSucceeded`/`.loginFailed`.
        case verify(username: String, password: Redacted<String>, mechanism: Mechanism)
        /// Stream message `index` (0-based): all of it (`bodyLines == nil`) or header plus `bodyLines` lines.
        case retrieve(index: Int, bodyLines: Int?)
        /// Remove these messages (0-based), then feed `.commitFinished`.
        case commit(deleting: [Int])
        /// Relay from now on (incoming = "pop3"), starting with `leftover`, the bytes the client sent after its login.
        case relay(leftover: [UInt8])
        /// Close the client connection after writing what was sent above.
        case close
    }

    public let configuration: Configuration
    public private(set) var state: State = .awaitingConnection
    public private(set) var tlsActive: Bool
    public private(set) var errorCount = 0
    /// The user name given with USER, then the verified one.
    public private(set) var username: String?
    /// The maildrop in the TRANSACTION state.
    public private(set) var messages: [MaildropEntry] = []
    /// Marked for deletion (0-based).
    public private(set) var deleted: Set<Int> = []

    private var input: [UInt8] = []
    private var inputStart = 0
    /// Dropping an overlong line up to its LF.
    private var discarding = false
    private var stuffer = POP3DotStuffer()
    /// The running retrieval sent its `+OK` already (data came).
    private var retrievalStarted = false
    private var retrievalAnnounce = ""
    private let parser: POP3CommandParser

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.tlsActive = configuration.implicitTLS
        self.parser = POP3CommandParser(maximumCommandLength: configuration.commandLine)
    }

    /// Whether USER/PASS/AUTH may be used now.
    public var loginPermitted: Bool { tlsActive || configuration.clientIsLoopback || configuration.allowPlaintext }

    /// Bytes received but not processed yet.
    public var bufferedByteCount: Int { input.count - inputStart }

    /// Whether the machine waits for the session (input is only buffered meanwhile).
    public var isWaitingForSession: Bool {
        switch state {
        case .verifying, .startingTLS, .retrieving, .update: true
        default: false
        }
    }

    /// The CAPA lines for the current state (RFC 2449 §6).
    public var capabilities: [String] {
        var lines: [String] = []
        if state == .authorization || state == .awaitingSASLResponse {
            if loginPermitted {
                lines.append("USER")
                lines.append("SASL PLAIN")
            }
            if configuration.tlsAvailable && !tlsActive { lines.append("STLS") }
        }
        lines += ["TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"]
        return lines
    }

    // MARK: - Input

    public mutating func handle(_ event: Input) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .connected:
            guard state == .awaitingConnection else { return [] }
            state = .authorization
            ok(configuration.greetingText, &actions)
        case .received(let bytes):
            switch state {
            case .closed, .relaying, .awaitingConnection: return []
            case .startingTLS: return []  // RFC 2595 §4: nothing may follow STLS before the handshake
            default: input.append(contentsOf: bytes)
            }
            if isWaitingForSession && bufferedByteCount > configuration.maximumBufferedInput {
                fatal("Too much pipelined input", &actions)
                return actions
            }
        case .tlsStarted:
            guard state == .startingTLS else { return [] }
            tlsActive = true
            username = nil
            dropInput()
            state = .authorization
        case .loginSucceeded(let result):
            guard state == .verifying else { return [] }
            switch result {
            case .relay:
                ok("Logged in", &actions)
                state = .relaying
                let leftover = Array(input[inputStart...])
                dropInput()
                actions.append(.relay(leftover: leftover))
                return actions
            case .maildrop(let list):
                messages = list
                deleted = []
                state = .transaction
                ok("Logged in; \(list.count) message\(list.count == 1 ? "" : "s") (\(totalSize) octets)", &actions)
            }
        case .loginFailed(let failure):
            guard state == .verifying else { return [] }
            state = .authorization
            username = nil
            loginFailed(failure, &actions)
        case .messageData(let bytes):
            guard state == .retrieving, !bytes.isEmpty else { return [] }
            if !retrievalStarted {
                retrievalStarted = true
                ok(retrievalAnnounce, &actions)
            }
            actions.append(.send(stuffer.stuff(bytes)))
            return actions
        case .retrieveFinished(let failure):
            guard state == .retrieving else { return [] }
            state = .transaction
            if let failure {
                if retrievalStarted {
                    // The +OK and part of the body went out: only closing tells the client the message is incomplete.
                    state = .closed
                    actions.append(.close)
                    return actions
                }
                err(code(failure), text(failure), &actions)
            } else {
                if !retrievalStarted { ok(retrievalAnnounce, &actions) }
                actions.append(.send(stuffer.finish()))
            }
            retrievalStarted = false
            stuffer = POP3DotStuffer()
        case .commitFinished(let failure):
            guard state == .update else { return [] }
            if let failure {
                err(code(failure), "Some deleted messages were not removed (\(text(failure))); they are still there", &actions)
            } else {
                ok("MailGate POP3 signing off (\(deleted.count) message\(deleted.count == 1 ? "" : "s") deleted)", &actions)
            }
            state = .closed
            actions.append(.close)
            return actions
        }
        process(&actions)
        return actions
    }

    private var totalSize: Int { messages.indices.filter { !deleted.contains($0) }.reduce(0) { $0 + messages[$1].size } }

    private func code(_ failure: Failure) -> POP3ResponseCode {
        switch failure {
        case .temporary: .systemTemporary
        case .permanent: .systemPermanent
        }
    }

    private func text(_ failure: Failure) -> String {
        switch failure {
        case .temporary(let text), .permanent(let text): Self.printable(text, maximumLength: 200)
        }
    }

    // MARK: - Lines

    private mutating func dropInput() {
        input.removeAll(keepingCapacity: true)
        inputStart = 0
        discarding = false
    }

    private var lineBound: Int {
        state == .awaitingSASLResponse ? configuration.saslResponseLine : configuration.commandLine
    }

    /// The next whole line without its line end; overlong lines are answered here and skipped.
    private mutating func nextLine(_ actions: inout [Action]) -> [UInt8]? {
        while state != .closed {
            let pending = input[inputStart...]
            guard let lineFeed = pending.firstIndex(of: UInt8(ascii: "\n")) else {
                if !discarding && pending.count > lineBound {
                    discarding = true
                    lineTooLong(&actions)
                }
                if discarding {
                    input.removeAll(keepingCapacity: true)
                    inputStart = 0
                }
                return nil
            }
            let length = lineFeed + 1 - inputStart
            var end = lineFeed
            if end > inputStart && input[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let line = Array(input[inputStart..<end])
            inputStart = lineFeed + 1
            if inputStart == input.count {
                input.removeAll(keepingCapacity: true)
                inputStart = 0
            } else if inputStart > 65_536 {
                input.removeFirst(inputStart)
                inputStart = 0
            }
            if discarding {
                discarding = false
                continue
            }
            if length > lineBound {
                lineTooLong(&actions)
                continue
            }
            return line
        }
        return nil
    }

    private mutating func lineTooLong(_ actions: inout [Action]) {
        if state == .awaitingSASLResponse {
            state = .authorization
            error(nil, "The SASL response is longer than \(configuration.saslResponseLine) octets", &actions)
        } else {
            error(nil, "Command line too long (at most \(configuration.commandLine) octets with CRLF)", &actions)
        }
    }

    private mutating func process(_ actions: inout [Action]) {
        while !isWaitingForSession {
            switch state {
            case .authorization, .awaitingSASLResponse, .transaction: break
            default: return
            }
            guard let line = nextLine(&actions) else { return }
            if state == .awaitingSASLResponse {
                saslResponse(line, &actions)
                continue
            }
            let command: POP3Command
            do throws(POP3Error) {
                command = try parser.parse(line: line)
            } catch {
                parseError(error, &actions)
                continue
            }
            if state == .authorization {
                authorization(command, &actions)
            } else {
                transaction(command, &actions)
            }
        }
    }

    private mutating func parseError(_ error: POP3Error, _ actions: inout [Action]) {
        switch error {
        case .unknownCommand(let keyword):
            self.error(nil, "Unknown command \"\(Self.printable(keyword, maximumLength: 20))\"", &actions)
        case .unsupportedCommand:
            self.error(nil, "APOP is not supported; use USER/PASS or AUTH PLAIN", &actions)
        case .invalidArgument(let command, let reason):
            self.error(nil, "\(command.isEmpty ? "Invalid command" : command): \(Self.printable(reason, maximumLength: 100))", &actions)
        case .lineTooLong:
            lineTooLong(&actions)
        default:
            self.error(nil, "Invalid command", &actions)
        }
    }

    // MARK: - AUTHORIZATION

    static let privacySentence = "Log in only over TLS: use STLS or the pop3s port"

    private mutating func authorization(_ command: POP3Command, _ actions: inout [Action]) {
        switch command {
        case .capa:
            multiline("Capability list follows", capabilities, &actions)
        case .quit:
            ok("MailGate POP3 signing off", &actions)
            state = .closed
            actions.append(.close)
        case .stls:
            guard !tlsActive else { return error(nil, "TLS is already active", &actions) }
            guard configuration.tlsAvailable else { return error(nil, "STLS is not available here", &actions) }
            ok("Begin TLS negotiation", &actions)
            state = .startingTLS
            dropInput()
            actions.append(.startTLS)
        case .user(let name):
            guard loginPermitted else { return error(.auth, Self.privacySentence, &actions) }
            guard !name.isEmpty else { return error(nil, "USER needs a user name", &actions) }
            username = name
            ok("Send the password", &actions)
        case .pass(let password):
            guard loginPermitted else { return error(.auth, Self.privacySentence, &actions) }
            guard let name = username else { return error(nil, "Send USER first", &actions) }
            verify(name, password, .userPass, &actions)
        case .auth(nil, _):
            multiline("Mechanisms follow", loginPermitted ? ["PLAIN"] : [], &actions)
        case .auth(let mechanism?, let initial):
            guard mechanism == "PLAIN" else {
                return error(nil, "Unsupported authentication mechanism; use PLAIN", &actions)
            }
            guard loginPermitted else { return error(.auth, Self.privacySentence, &actions) }
            if let initial {
                plainResponse(initial.revealed == "=" ? [] : Array(initial.revealed.utf8), &actions)
            } else {
                state = .awaitingSASLResponse
                actions.append(.send(Array("+ \r\n".utf8)))
            }
        case .stat, .list, .uidl, .retr, .top, .dele, .rset, .noop:
            error(nil, "Log in first", &actions)
        }
    }

    private mutating func saslResponse(_ line: [UInt8], _ actions: inout [Action]) {
        state = .authorization
        if line == [UInt8(ascii: "*")] {
            return error(nil, "Authentication cancelled", &actions)
        }
        plainResponse(line, &actions)
    }

    /// RFC 4616: `base64([authzid] NUL authcid NUL passwd)`; an authzid other than the authcid is refused.
    private mutating func plainResponse(_ base64: [UInt8], _ actions: inout [Action]) {
        guard let decoded = Base64Codec.standard.decode(base64, padding: .required) else {
            return error(nil, "Invalid base64 in the SASL response", &actions)
        }
        let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let authzid = String(validating: parts[0], as: UTF8.self),
            let user = String(validating: parts[1], as: UTF8.self),
            let password = String(validating: parts[2], as: UTF8.self), !user.isEmpty, !password.isEmpty,
            !parts[2].contains(0)
        else { return error(nil, "Malformed PLAIN response", &actions) }
        guard authzid.isEmpty || authzid == user else {
            return error(.auth, "Acting as another user is not allowed", &actions)
        }
        verify(user, Redacted(password), .plain, &actions)
    }

    private mutating func verify(_ user: String, _ password: Redacted<String>, _ mechanism: Mechanism, _ actions: inout [Action]) {
        username = user
        state = .verifying
        actions.append(.verify(username: user, password: password, mechanism: mechanism))
    }

    private mutating func loginFailed(_ failure: LoginFailure, _ actions: inout [Action]) {
        switch failure {
        case .authenticationFailed:
            error(.auth, "Authentication failed", &actions)
        case .mustReconnect(let email):
            let address = Self.printable(email, maximumLength: 254)
            error(.auth, "The Microsoft 365 sign-in of \(address) must be renewed: run mailgate account connect \(address) on the MailGate host", &actions)
        case .temporary(let reason):
            err(.systemTemporary, Self.printable(reason, maximumLength: 200) + "; try again later", &actions)
        case .permanent(let reason):
            err(.systemPermanent, Self.printable(reason, maximumLength: 200), &actions)
        case .inUse(let reason):
            err(.inUse, Self.printable(reason, maximumLength: 200), &actions)
        }
    }

    // MARK: - TRANSACTION

    /// The 0-based index of message `number` if it exists and is not deleted.
    private func index(_ number: Int) -> Int? {
        let index = number - 1
        guard messages.indices.contains(index), !deleted.contains(index) else { return nil }
        return index
    }

    private mutating func noSuchMessage(_ number: Int, _ actions: inout [Action]) {
        let index = number - 1
        if messages.indices.contains(index) {
            err(nil, "Message \(number) is deleted", &actions)
        } else {
            err(nil, "No such message (the maildrop has \(messages.count))", &actions)
        }
    }

    private mutating func transaction(_ command: POP3Command, _ actions: inout [Action]) {
        let live = messages.indices.filter { !deleted.contains($0) }
        switch command {
        case .capa:
            multiline("Capability list follows", capabilities, &actions)
        case .stat:
            ok("\(live.count) \(totalSize)", &actions)
        case .list(nil):
            multiline("\(live.count) messages (\(totalSize) octets)", live.map { "\($0 + 1) \(messages[$0].size)" }, &actions)
        case .list(let number?):
            guard let index = index(number) else { return noSuchMessage(number, &actions) }
            ok("\(number) \(messages[index].size)", &actions)
        case .uidl(nil):
            multiline("Unique-id listing follows", live.map { "\($0 + 1) \(messages[$0].uidl)" }, &actions)
        case .uidl(let number?):
            guard let index = index(number) else { return noSuchMessage(number, &actions) }
            ok("\(number) \(messages[index].uidl)", &actions)
        case .retr(let number):
            guard let index = index(number) else { return noSuchMessage(number, &actions) }
            startRetrieval(index: index, bodyLines: nil, announce: "\(messages[index].size) octets", &actions)
        case .top(let number, let lines):
            guard let index = index(number) else { return noSuchMessage(number, &actions) }
            startRetrieval(index: index, bodyLines: lines, announce: "Top of message follows", &actions)
        case .dele(let number):
            guard let index = index(number) else { return noSuchMessage(number, &actions) }
            deleted.insert(index)
            ok("Message \(number) deleted", &actions)
        case .rset:
            deleted = []
            ok("Maildrop has \(messages.count) messages (\(totalSize) octets)", &actions)
        case .noop:
            ok("", &actions)
        case .quit:
            if deleted.isEmpty {
                ok("MailGate POP3 signing off", &actions)
                state = .closed
                actions.append(.close)
            } else {
                state = .update
                actions.append(.commit(deleting: deleted.sorted()))
            }
        case .user, .pass, .auth, .stls:
            error(nil, "Already logged in", &actions)
        }
    }

    private mutating func startRetrieval(index: Int, bodyLines: Int?, announce: String, _ actions: inout [Action]) {
        state = .retrieving
        retrievalStarted = false
        retrievalAnnounce = announce
        stuffer = POP3DotStuffer()
        actions.append(.retrieve(index: index, bodyLines: bodyLines))
    }

    // MARK: - Output

    private func ok(_ text: String, _ actions: inout [Action]) {
        actions.append(.send(POP3Reply(status: .ok, text: text).encoded))
    }

    private func err(_ code: POP3ResponseCode?, _ text: String, _ actions: inout [Action]) {
        actions.append(.send(POP3Reply(status: .err, code: code, text: text).encoded))
    }

    /// A multi-line response whose lines are generated here (never start with `.`, but stuffed anyway).
    private func multiline(_ text: String, _ lines: [String], _ actions: inout [Action]) {
        var bytes = POP3Reply(status: .ok, text: text).encoded
        for line in lines {
            if line.hasPrefix(".") { bytes.append(UInt8(ascii: ".")) }
            bytes += Array(line.utf8) + [0x0D, 0x0A]
        }
        bytes += Array(".\r\n".utf8)
        actions.append(.send(bytes))
    }

    /// A counted `-ERR`; the one that spends the budget also ends the session.
    private mutating func error(_ code: POP3ResponseCode?, _ text: String, _ actions: inout [Action]) {
        errorCount += 1
        err(code, text, &actions)
        if errorCount >= configuration.errorBudget {
            fatal("Too many errors; closing the connection", &actions)
        }
    }

    private mutating func fatal(_ text: String, _ actions: inout [Action]) {
        err(nil, text, &actions)
        state = .closed
        dropInput()
        actions.append(.close)
    }

    /// Printable ASCII only, cut to `maximumLength`: safe inside a response line.
    static func printable(_ text: String, maximumLength: Int) -> String {
        var out = ""
        for byte in text.utf8.prefix(maximumLength) {
            out.unicodeScalars.append(Unicode.Scalar(byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "?")))
        }
        return out
    }
}
