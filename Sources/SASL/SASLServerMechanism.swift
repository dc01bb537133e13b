// SASL: server-side PLAIN (RFC 4616) and LOGIN step machines that turn client responses into credentials.
public import MailCore

/// What the protocol session does next in a server-side SASL exchange.
public enum SASLServerStep: Sendable, Equatable {
    /// Send this base64 challenge (SMTP `334 <c>`, IMAP `+ <c>`, POP3 `+ <c>`); may be empty.
    case challenge(String)
    /// The exchange is complete; verify these credentials against the local account.
    case credentials(username: String, password: Redacted<String>)
    /// The client sent `*`: answer with the protocol's "authentication cancelled" reply.
    case cancelled
    /// The response was malformed; answer with the protocol's "cannot decode" reply.
    case failed(SASLError)
}

/// A server-side SASL mechanism as a step machine: `start`, then `respond` once per client line, until a
/// step other than `.challenge` comes out.
///
/// Responses are the base64 text of one client line without CRLF; `=` as an initial response means
/// "empty" (RFC 4954 §4). Every line is bounded by `maximumResponseLength`, decoding is strict, and names and
/// passwords must be UTF-8 without NUL.
public struct SASLServerMechanism: Sendable, CustomStringConvertible {
    /// The mechanisms MailGate offers to local clients.
    public enum Kind: String, Sendable, CaseIterable {
        /// RFC 4616: `[authzid] NUL authcid NUL passwd` in one message.
        case plain = "PLAIN"
        /// The de-facto LOGIN mechanism: user name and password in two challenge rounds.
        case login = "LOGIN"
    }

    /// Where the exchange stands; the case names are what logs print.
    public enum State: String, Sendable {
        /// `start` has not been called.
        case initial
        /// PLAIN sent its empty challenge and waits for the message.
        case awaitingPlainMessage
        /// LOGIN sent "Username:" and waits for it.
        case awaitingUsername
        /// LOGIN sent "Password:" and waits for it.
        case awaitingPassword
        /// A final step (credentials, cancelled, failed) was returned.
        case finished
    }

    /// `base64("Username:")`, LOGIN's first challenge.
    public static let usernameChallenge = "VXNlcm5hbWU6"
    /// `base64("Password:")`, LOGIN's second challenge.
    public static let passwordChallenge = "UGFzc3dvcmQ6"

    public let kind: Kind
    public private(set) var state: State = .initial
    private let maximumResponseLength: Int
    private var username: String?

    /// A machine for `kind`; `maximumResponseLength` bounds each response line in octets.
    public init(kind: Kind, maximumResponseLength: Int = Limits.standard.saslResponse) {
        self.kind = kind
        self.maximumResponseLength = maximumResponseLength
    }

    /// A machine for the mechanism named by a client (case-insensitive), or `nil` when not offered.
    public init?(name: String, maximumResponseLength: Int = Limits.standard.saslResponse) {
        guard let kind = Kind(rawValue: name.uppercased()) else { return nil }
        self.init(kind: kind, maximumResponseLength: maximumResponseLength)
    }

    public var description: String { "\(kind.rawValue)(\(state.rawValue))" }

    /// Begins the exchange, with the initial response from the command line when the client sent one.
    public mutating func start(initialResponse: String?) -> SASLServerStep {
        guard state == .initial else { return finish(.failed(.unexpectedStep)) }
        switch kind {
        case .plain:
            guard let initialResponse else {
                state = .awaitingPlainMessage
                return .challenge("")
            }
            return plainMessage(initialResponse == "=" ? "" : initialResponse)
        case .login:
            guard let initialResponse else {
                state = .awaitingUsername
                return .challenge(Self.usernameChallenge)
            }
            state = .awaitingUsername
            return loginLine(initialResponse == "=" ? "" : initialResponse)
        }
    }

    /// Feeds one client response line (base64, without CRLF).
    public mutating func respond(_ line: String) -> SASLServerStep {
        switch state {
        case .initial, .finished:
            return finish(.failed(.unexpectedStep))
        case .awaitingPlainMessage:
            return plainMessage(line)
        case .awaitingUsername, .awaitingPassword:
            return loginLine(line)
        }
    }

    // MARK: - Steps

    private mutating func plainMessage(_ line: String) -> SASLServerStep {
        let bytes: [UInt8]
        switch decode(line) {
        case .success(let decoded): bytes = decoded
        case .failure(let stop): return stop.step
        }
        let parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return finish(.failed(.malformedPlain)) }
        guard let authzid = String(validating: parts[0], as: UTF8.self),
            let authcid = String(validating: parts[1], as: UTF8.self),
            let password = String(validating: parts[2], as: UTF8.self)
        else { return finish(.failed(.invalidUTF8)) }
        guard !authcid.isEmpty, !password.isEmpty, !parts[2].contains(0) else {
            return finish(.failed(.emptyOrInvalidCredential))
        }
        guard authzid.isEmpty || authzid == authcid else {
            return finish(.failed(.authorizationIdentityNotAllowed))
        }
        return finish(.credentials(username: authcid, password: Redacted(password)))
    }

    private mutating func loginLine(_ line: String) -> SASLServerStep {
        let bytes: [UInt8]
        switch decode(line) {
        case .success(let decoded): bytes = decoded
        case .failure(let stop): return stop.step
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return finish(.failed(.invalidUTF8)) }
        guard !text.isEmpty, !bytes.contains(0) else { return finish(.failed(.emptyOrInvalidCredential)) }
        if state == .awaitingUsername {
            username = text
            state = .awaitingPassword
            return .challenge(Self.passwordChallenge)
        }
        guard let username else { return finish(.failed(.unexpectedStep)) }
        return finish(.credentials(username: username, password: Redacted(text)))
    }

    private struct Stop: Error { let step: SASLServerStep }

    /// Length bound, cancel and strict base64 in one place; a failure carries the final step.
    private mutating func decode(_ line: String) -> Result<[UInt8], Stop> {
        let count = line.utf8.count
        guard count <= maximumResponseLength else {
            return .failure(Stop(step: finish(.failed(.responseTooLong(actualCount: count, maximumCount: maximumResponseLength)))))
        }
        if line == "*" { return .failure(Stop(step: finish(.cancelled))) }
        guard let bytes = Base64Codec.standard.decode(line, padding: .required) else { return .failure(Stop(step: finish(.failed(.invalidBase64)))) }
        return .success(bytes)
    }

    private mutating func finish(_ step: SASLServerStep) -> SASLServerStep {
        state = .finished
        username = nil
        return step
    }
}
