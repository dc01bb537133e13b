// POP3: the client-side state machine for one connection to the upstream server (Microsoft 365).

public import MailCore

/// Drives one upstream POP3 connection: greeting, CAPA, AUTH XOAUTH2 in two steps (Exchange requires it, and
/// RFC 5034's 255-octet limit rules out an initial response anyway), the transaction commands and QUIT.
///
/// No I/O: the driver hands every byte read to `receive(_:)` and writes every `.send`. Multi-line bodies stream
/// out un-stuffed as `.multilineData` between `.multilineBegan` and `.multilineEnded`.
///
///     C: AUTH XOAUTH2
///     S: +
///     C: dXNlcj10ZXN0QGNvbnRvc28…
///     S: +OK User successfully authenticated.
public struct POP3UpstreamClient: Sendable {
    /// The session state (RFC 1939 §3), printed by name in logs.
    public enum State: String, Hashable, Sendable, CustomStringConvertible {
        case awaitingGreeting, authorization, authenticating, transaction, quitting, closed
        public var description: String { rawValue }
    }

    /// Why the session is over.
    public enum SessionEndReason: Hashable, Sendable {
        /// QUIT was answered `+OK` (deletions committed).
        case quit
        /// The greeting was `-ERR` (text included).
        case greetingRefused(String)
        /// The connection ended without QUIT.
        case connectionClosed
    }

    /// What the driver must do or learn.
    public enum Action: Hashable, Sendable {
        case send([UInt8])
        /// The server's `+OK` greeting.
        case greeting(POP3Reply)
        /// A single-line reply (or the `-ERR` of a multi-line command) completed the command.
        case completed(POP3Verb, POP3Reply)
        /// A `+OK` opened a multi-line body.
        case multilineBegan(POP3Verb, POP3Reply)
        /// Un-stuffed body bytes.
        case multilineData([UInt8])
        /// The `.` line ended the body.
        case multilineEnded(POP3Verb)
        /// The server sent a second challenge after our SASL response (decoded when base64); an empty line has been
        /// queued and `-ERR` follows.
        case authenticationErrorDetails(String)
        case sessionEnded(SessionEndReason)
        /// The server broke the protocol or a bound; close the connection and log the reason.
        case protocolViolation(String)
    }

    private enum AuthenticationStep: Sendable {
        case awaitingChallenge(Redacted<[UInt8]>)
        case responseSent
        case errorAcknowledged
    }

    private enum Reading: Sendable {
        case lines
        case body(POP3Verb, POP3MultilineReader)
    }

    public private(set) var state: State = .awaitingGreeting
    /// The CAPA list, once CAPA has completed.
    public private(set) var capabilities: POP3Capabilities?
    private let limits: POP3Limits
    private var lines: POP3LineBuffer
    private var reading: Reading = .lines
    private var pending: POP3Command?
    private var authentication: AuthenticationStep?
    private var capaBody: [UInt8] = []

    /// Largest CAPA body kept for parsing.
    public static let maximumCapabilityBody = 65_536

    public init(limits: POP3Limits = .standard) {
        self.limits = limits
        self.lines = POP3LineBuffer(maximumLineLength: limits.responseLine)
    }

    /// The command in flight, if any.
    public var commandInFlight: POP3Verb? { pending?.verb }

    // MARK: - Commands

    /// Sends `command`. AUTH goes through `authenticate(mechanism:response:)`.
    public mutating func send(_ command: POP3Command) throws(POP3Error) -> [Action] {
        let allowed: Bool
        switch (state, command) {
        case _ where pending != nil: allowed = false
        case (.authorization, .user), (.authorization, .pass), (.authorization, .capa), (.authorization, .quit),
            (.authorization, .noop), (.authorization, .stls):
            allowed = true
        case (.transaction, .auth), (.transaction, .user), (.transaction, .pass), (.transaction, .stls):
            allowed = false
        case (.transaction, _):
            allowed = true
        default:
            allowed = false
        }
        if case .auth = command { throw .invalidClientState(command: "AUTH", state: "use authenticate(mechanism:response:)") }
        guard allowed else { throw .invalidClientState(command: command.verb.rawValue, state: describeState()) }
        pending = command
        if case .quit = command { state = .quitting }
        return [.send(POP3CommandEncoder.encode(command))]
    }

    /// Starts `AUTH mechanism` and sends the raw SASL `response` (base64-encoded here) after the server's `+`.
    public mutating func authenticate(mechanism: String, response: Redacted<[UInt8]>) throws(POP3Error) -> [Action] {
        guard state == .authorization, pending == nil else {
            throw .invalidClientState(command: "AUTH", state: describeState())
        }
        let command = POP3Command.auth(mechanism: mechanism, initialResponse: nil)
        pending = command
        authentication = .awaitingChallenge(response)
        state = .authenticating
        return [.send(POP3CommandEncoder.encode(command))]
    }

    /// The transport closed.
    public mutating func connectionClosed() -> [Action] {
        guard state != .closed else { return [] }
        state = .closed
        pending = nil
        return [.sessionEnded(.connectionClosed)]
    }

    private func describeState() -> String {
        pending.map { "\(state) with \($0.verb.rawValue) in flight" } ?? state.description
    }

    // MARK: - Bytes from the server

    /// Handles bytes read from the server.
    public mutating func receive(_ bytes: some Collection<UInt8>) -> [Action] {
        guard state != .closed else { return bytes.isEmpty ? [] : [.protocolViolation("the server sent data after the session ended")] }
        lines.append(bytes)
        var actions: [Action] = []
        while state != .closed {
            switch reading {
            case .body(let verb, var reader):
                let buffered = lines.takeBufferedBytes()
                let result: (data: [UInt8], consumedCount: Int, isComplete: Bool)
                do throws(POP3Error) {
                    result = try reader.read(buffered)
                } catch {
                    return actions + violation(error.description)
                }
                if !result.data.isEmpty {
                    actions.append(.multilineData(result.data))
                    if verb == .capa { capaBody += result.data }
                }
                if verb == .capa && capaBody.count > Self.maximumCapabilityBody {
                    return actions + violation(POP3Error.responseTooLarge(actualCount: capaBody.count, maximumCount: Self.maximumCapabilityBody).description)
                }
                lines.append(buffered[result.consumedCount...])
                guard result.isComplete else {
                    reading = .body(verb, reader)
                    return actions
                }
                reading = .lines
                if verb == .capa {
                    capabilities = POP3Capabilities.parse(capaBody)
                    capaBody = []
                }
                actions.append(.multilineEnded(verb))
            case .lines:
                let line: [UInt8]?
                do throws(POP3Error) {
                    line = try lines.nextLine()
                } catch {
                    return actions + violation(error.description)
                }
                guard let line else { return actions }
                let reply: POP3Reply
                do throws(POP3Error) {
                    reply = try POP3Reply.parse(line: line)
                } catch {
                    return actions + violation(error.description)
                }
                actions += handle(reply)
            }
        }
        return actions
    }

    private mutating func handle(_ reply: POP3Reply) -> [Action] {
        if state == .awaitingGreeting {
            switch reply.status {
            case .ok:
                state = .authorization
                return [.greeting(reply)]
            case .err:
                state = .closed
                return [.sessionEnded(.greetingRefused(sanitizeForLog(reply.text)))]
            case .continuation:
                return violation("the server greeted with a continuation")
            }
        }
        guard let command = pending else {
            return violation("the server replied while no command was running")
        }
        if reply.status == .continuation {
            return handleContinuation(reply)
        }
        pending = nil
        let verb = command.verb
        if case .auth = command {
            authentication = nil
            state = reply.status == .ok ? .transaction : .authorization
            return [.completed(verb, reply)]
        }
        switch (verb, reply.status) {
        case (.pass, .ok):
            state = .transaction
        case (.quit, .ok):
            state = .closed
            return [.completed(verb, reply), .sessionEnded(.quit)]
        case (.quit, .err):
            state = .closed  // RFC 1939 §6: the session ends either way; deletions may not have happened
            return [.completed(verb, reply), .sessionEnded(.quit)]
        default:
            break
        }
        if reply.status == .ok && command.hasMultilineResponse {
            reading = .body(verb, POP3MultilineReader(maximumSize: limits.multilineResponse))
            if verb == .capa { capaBody = [] }
            return [.multilineBegan(verb, reply)]
        }
        return [.completed(verb, reply)]
    }

    private mutating func handleContinuation(_ reply: POP3Reply) -> [Action] {
        switch authentication {
        case .awaitingChallenge(let response)?:
            authentication = .responseSent
            return [.send(POP3CommandEncoder.authenticationResponse(response))]
        case .responseSent?:
            authentication = .errorAcknowledged
            let decoded = Base64Codec.standard.decode(reply.text, padding: .optional).map { String(decoding: $0, as: UTF8.self) } ?? reply.text
            return [.authenticationErrorDetails(sanitizeForLog(decoded, maximumLength: 400)), .send(POP3CommandEncoder.emptyResponse)]
        case .errorAcknowledged?:
            return violation("the server sent another AUTH challenge after the error challenge")
        case nil:
            return violation("the server sent a continuation to a command that does not expect one")
        }
    }

    private mutating func violation(_ reason: String) -> [Action] {
        state = .closed
        pending = nil
        reading = .lines
        return [.protocolViolation(reason)]
    }
}
