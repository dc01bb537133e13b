// Gateway: a sequential IMAP client session to the upstream (account test, sent copy), over the async transport.
public import IMAP
public import MailCore
import SASL
import Transport

/// Drives `IMAPUpstreamClient` over one upstream connection, one command at a time.
///
/// For short administrative conversations (account test, sent copy), not for relaying a client's session.
/// STARTTLS happens before the state machine sees anything: the pre-TLS greeting's capabilities are not
/// trusted, CAPABILITY is asked again over TLS (RFC 3501 §6.2.1). STARTTLS and APPEND (whose literal is streamed
/// in chunks, so a 150 MiB message never sits in memory) use their own tags (`S…`, `M…`), so the state machine
/// never sees their responses.
public final class IMAPUpstreamSession: @unchecked Sendable {
    // @unchecked: used by one task at a time (each caller owns its session); nothing is shared.
    private let connection: AsyncConnection
    private var client = IMAPUpstreamClient()
    private var decoder: IMAPResponseDecoder
    private var pendingActions: [IMAPUpstreamClient.Action] = []
    private var ownTagCount = 0

    /// What the server reported about itself.
    public var capabilities: [Capability] { client.capabilities }

    private init(connection: AsyncConnection, limits: IMAPLimits) {
        self.connection = connection
        self.decoder = IMAPResponseDecoder(limits: limits)
    }

    /// Connects, reads the greeting (upgrading with STARTTLS when the endpoint says so) and learns the capabilities.
    public static func open(
        _ endpoint: UpstreamEndpoint, timeout: Double, limits: Limits = .standard,
        imapLimits: IMAPLimits = .standard
    ) async throws -> IMAPUpstreamSession {
        let connection = try await endpoint.connect(timeout: timeout, limits: limits)
        let session = IMAPUpstreamSession(connection: connection, limits: imapLimits)
        do {
            let greeting = try await session.nextResponse()
            if endpoint.security == .starttls {
                try await connection.write(Array("S0 STARTTLS\r\n".utf8))
                while true {
                    let response = try await session.nextResponse()
                    guard case .tagged(let tagged) = response, tagged.tag == "S0" else { continue }
                    guard tagged.status == .ok else {
                        throw IMAPSessionError.startTLSRefused(sanitizeForLog(tagged.text))
                    }
                    break
                }
                try await connection.startTLS(context: try endpoint.tlsContext(), serverName: endpoint.serverName)
                session.decoder = IMAPResponseDecoder(limits: imapLimits)
                session.pendingActions = session.client.receive(greeting.withoutCapabilities)
                _ = try await session.run(.capability)
            } else {
                session.pendingActions = session.client.receive(greeting)
                if session.client.capabilities.isEmpty { _ = try await session.run(.capability) }
            }
            guard session.client.state == .notAuthenticated || session.client.state == .authenticated else {
                throw IMAPSessionError.greetingRefused(session.client.state.description)
            }
            return session
        } catch {
            connection.close()
            throw error
        }
    }

    /// AUTHENTICATE XOAUTH2 for `user` with `token`; the tagged result (OK or NO) is returned, not thrown.
    public func authenticateXOAuth2(user: String, token: Redacted<String>) async throws -> TaggedResponse {
        let response = try XOAuth2.rawResponse(user: user, accessToken: token)
        let (tag, actions) = try client.authenticate(mechanism: "XOAUTH2", response: response)
        return try await complete(tag: tag, actions: actions).response
    }

    /// Runs one command and returns its tagged result with the untagged responses it produced.
    public func run(_ command: IMAPCommand) async throws -> (response: TaggedResponse, untagged: [UntaggedResponse]) {
        let (tag, actions) = try client.send(command)
        return try await complete(tag: tag, actions: actions)
    }

    /// `APPEND mailbox (flags) {size}` with the literal streamed from `nextChunk` (nil at the end), using LITERAL+
    /// when offered, else waiting for the go-ahead. The tagged result (OK or NO) is returned, not thrown; a NO
    /// before the literal means nothing was sent.
    public func append(
        to mailbox: MailboxName, flags: [Flag], size: Int, nextChunk: () throws -> [UInt8]?
    ) async throws -> TaggedResponse {
        ownTagCount += 1
        let tag = "M\(ownTagCount)"
        let literalPlus = client.capabilities.contains(.literalPlus)
        var writer = IMAPCommandWriter(literalPlus: literalPlus)
        writer.write("\(tag) APPEND ")
        writer.writeMailbox(mailbox)
        writer.write(" ")
        writer.writeFlagList(flags)
        writer.write(" ")
        writer.writeLiteralHeader(count: size)
        var header: [UInt8] = []
        for case .bytes(let bytes) in writer.finish() { header += bytes }
        try await connection.write(header)
        if !literalPlus {
            waiting: while true {
                switch try await nextResponse() {
                case .continuation: break waiting
                case .tagged(let tagged) where tagged.tag == tag: return tagged
                case .tagged: throw IMAPSessionError.protocolViolation("a command completed that was not in flight")
                case .untagged: continue
                }
            }
        }
        var sent = 0
        while let chunk = try nextChunk() {
            sent += chunk.count
            guard sent <= size else { break }
            try await connection.write(chunk)
        }
        guard sent == size else { throw IMAPSessionError.literalLengthMismatch(expected: size, actual: sent) }
        try await connection.write([0x0D, 0x0A])
        while true {
            switch try await nextResponse() {
            case .tagged(let tagged) where tagged.tag == tag: return tagged
            case .tagged, .continuation: throw IMAPSessionError.protocolViolation("APPEND was answered out of order")
            case .untagged: continue
            }
        }
    }

    /// LOGOUT, politely; the connection is closed either way.
    public func logout() async throws {
        defer { close() }
        _ = try await run(.logout)
    }

    public func close() { connection.close() }

    // MARK: - Driving the state machine

    private func complete(tag: String, actions: [IMAPUpstreamClient.Action]) async throws
        -> (response: TaggedResponse, untagged: [UntaggedResponse])
    {
        pendingActions += actions
        while true {
            while !pendingActions.isEmpty {
                switch pendingActions.removeFirst() {
                case .send(let bytes):
                    try await connection.write(bytes)
                case .completed(let doneTag, let response, let untagged) where doneTag == tag:
                    return (response, untagged)
                case .sessionEnded(let reason):
                    throw IMAPSessionError.sessionEnded("\(reason)")
                case .protocolViolation(let reason):
                    throw IMAPSessionError.protocolViolation(sanitizeForLog(reason))
                case .waitForContinuation, .greeting, .completed, .unsolicited, .idleStarted, .authenticationErrorDetails:
                    continue
                }
            }
            pendingActions = client.receive(try await nextResponse())
        }
    }

    private func nextResponse() async throws -> IMAPResponse {
        while true {
            if let response = try decoder.next() { return response }
            guard let bytes = try await connection.readAvailable() else {
                pendingActions += client.connectionClosed()
                throw IMAPSessionError.sessionEnded("the server closed the connection")
            }
            decoder.append(bytes)
        }
    }
}

/// Why an upstream IMAP conversation could not go on.
public enum IMAPSessionError: MailGateError {
    case startTLSRefused(String)
    case greetingRefused(String)
    case sessionEnded(String)
    case protocolViolation(String)
    case literalLengthMismatch(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .startTLSRefused(let text): "The IMAP server refused STARTTLS (\(text)); check imap_security."
        case .greetingRefused(let state): "The IMAP server did not greet us normally (state \(state))."
        case .sessionEnded(let reason): "The IMAP server ended the session: \(reason)."
        case .protocolViolation(let reason): "The IMAP server broke the protocol: \(reason)."
        case .literalLengthMismatch(let expected, let actual):
            "The message to append has \(actual) bytes, not the \(expected) announced; nothing was filed."
        }
    }
}

extension IMAPResponse {
    /// The greeting with any `[CAPABILITY …]` code removed: capabilities seen before TLS are not trusted.
    fileprivate var withoutCapabilities: IMAPResponse {
        guard case .untagged(.ok(var text)) = self, case .capability? = text.code else { return self }
        text.code = nil
        return .untagged(.ok(text))
    }
}
