// TLS: the shared, immutable configuration (SSL_CTX) for one side: upstream client or listener server.

internal import COpenSSL
import Crypto
import Synchronization

/// One SSL_CTX: trust roots and verification for clients, certificate and key for servers; TLS 1.2 minimum.
///
/// `@unchecked Sendable` because the SSL_CTX is fully configured in the factory methods and never mutated
/// afterwards; OpenSSL 3 documents SSL_new on a shared, unchanging SSL_CTX as safe from any thread (the
/// context's reference count and certificate store lookups are internally locked).
public final class TLSContext: @unchecked Sendable {
    /// The SSL_CTX; freed in `deinit` (each SSL made from it holds its own reference).
    let pointer: OpaquePointer
    /// Whether connections made from this context are clients (verify the peer, send SNI).
    let isClient: Bool
    /// Client contexts: the last resumable session per server name (TLS session resumption). A resumed session
    /// shares the verified peer certificate instead of parsing and keeping its own copy (~3 KiB per idle upstream
    /// session) and skips the certificate verification's CPU; a server that declines simply gets a full handshake,
    /// verified as always. Bounded: at most `resumableSessionBound` names.
    private let resumableSessions = Mutex<[String: ResumableSession]>([:])
    static let resumableSessionBound = 64

    private init(pointer: OpaquePointer, isClient: Bool) {
        self.pointer = pointer
        self.isClient = isClient
    }

    deinit {
        SSL_CTX_free(pointer)
    }

    /// The session to offer when connecting to `serverName` again (nil: none yet).
    func resumableSession(for serverName: String) -> ResumableSession? {
        resumableSessions.withLock { $0[serverName] }
    }

    /// Remembers `session` (a reference the caller hands over, from SSL_get1_session) for `serverName`.
    func remember(_ session: OpaquePointer, for serverName: String) {
        let box = ResumableSession(session)
        resumableSessions.withLock { sessions in
            if sessions[serverName] == nil, sessions.count >= Self.resumableSessionBound { sessions.removeAll() }
            sessions[serverName] = box
        }
    }

    /// A client context for upstream connections: verifies the peer chain against the system trust store
    /// (SSL_CTX_set_default_verify_paths) plus `caFile` if given, and refuses anything below TLS 1.2.
    /// Verification cannot be turned off; the host name is set per connection.
    ///
    /// - Throws: `TLSError.configuration` naming `caFile` if it cannot be loaded.
    public static func client(caFile: String? = nil) throws(TLSError) -> TLSContext {
        let context = try make(method: TLS_client_method(), isClient: true)
        SSL_CTX_set_verify(context.pointer, SSL_VERIFY_PEER, nil)
        ERR_clear_error()
        guard SSL_CTX_set_default_verify_paths(context.pointer) == 1 else {
            throw .configuration(
                "the system trust store could not be loaded: " + drainOpenSSLErrors(fallback: "no reason given"))
        }
        if let caFile {
            ERR_clear_error()
            guard SSL_CTX_load_verify_locations(context.pointer, caFile, nil) == 1 else {
                throw .configuration(
                    "the CA file \(caFile) could not be loaded: " + drainOpenSSLErrors(fallback: "no reason given"))
            }
        }
        return context
    }

    /// The process's one client context for `caFile` (nil: the system trust store alone), made on first use.
    ///
    /// Loading the system trust store takes several MiB and milliseconds; every upstream connection, token
    /// request and sent copy with the same trust configuration shares this context (an SSL_CTX may be shared
    /// by any number of connections on any thread). A CA file changed on disk is read again only after a
    /// restart; a context that failed to load is not remembered, so the next call tries again.
    ///
    /// - Throws: `TLSError.configuration`, as `client(caFile:)`.
    public static func sharedClient(caFile: String? = nil) throws(TLSError) -> TLSContext {
        let key = caFile ?? ""
        if let existing = sharedClients.withLock({ $0[key] }) { return existing }
        let made = try client(caFile: caFile)
        return sharedClients.withLock { stored in
            if let existing = stored[key] { return existing }
            stored[key] = made
            return made
        }
    }

    /// `sharedClient`'s contexts by CA file path ("" for none).
    private static let sharedClients = Mutex<[String: TLSContext]>([:])

    /// A server context for listeners, from PEM files: `certificateChainFile` holds the leaf certificate
    /// first, then any intermediates; `privateKeyFile` holds the leaf's unencrypted key. TLS 1.2 minimum.
    ///
    /// - Throws: `TLSError.configuration` naming the file that is missing, unreadable or does not match.
    public static func server(certificateChainFile: String, privateKeyFile: String) throws(TLSError) -> TLSContext {
        let context = try make(method: TLS_server_method(), isClient: false)
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(context.pointer, certificateChainFile) == 1 else {
            throw .configuration(
                "the certificate chain file \(certificateChainFile) could not be loaded: "
                    + drainOpenSSLErrors(fallback: "no reason given"))
        }
        ERR_clear_error()
        guard SSL_CTX_use_PrivateKey_file(context.pointer, privateKeyFile, SSL_FILETYPE_PEM) == 1 else {
            throw .configuration(
                "the private key file \(privateKeyFile) could not be loaded: "
                    + drainOpenSSLErrors(fallback: "no reason given"))
        }
        ERR_clear_error()
        guard SSL_CTX_check_private_key(context.pointer) == 1 else {
            throw .configuration(
                "the private key file \(privateKeyFile) does not match the certificate in \(certificateChainFile): "
                    + drainOpenSSLErrors(fallback: "no reason given"))
        }
        return context
    }

    /// The common part: a new SSL_CTX with TLS 1.2 as the lowest version.
    private static func make(method: OpaquePointer?, isClient: Bool) throws(TLSError) -> TLSContext {
        ERR_clear_error()
        guard let pointer = SSL_CTX_new(method) else {
            throw .configuration("OpenSSL could not create a context: " + drainOpenSSLErrors(fallback: "out of memory"))
        }
        let context = TLSContext(pointer: pointer, isClient: isClient)
        // An idle session would otherwise keep its ~17 KiB read and write record buffers for good: with thousands
        // of sessions in IDLE that is most of the gateway's memory. OpenSSL frees them whenever they are empty.
        _ = mailgate_SSL_CTX_set_mode(pointer, Int(SSL_MODE_RELEASE_BUFFERS))
        guard mailgate_SSL_CTX_set_min_proto_version(pointer, TLS1_2_VERSION) == 1 else {
            throw .configuration(
                "OpenSSL refused TLS 1.2 as the minimum version: " + drainOpenSSLErrors(fallback: "no reason given"))
        }
        return context
    }

    /// Whether sessions of this context free their record buffers while idle (SSL_MODE_RELEASE_BUFFERS); for tests.
    public var releasesBuffersWhenIdle: Bool {
        mailgate_SSL_CTX_get_mode(pointer) & Int(SSL_MODE_RELEASE_BUFFERS) != 0
    }

    /// Protocol versions a test peer may be limited to (keeps OpenSSL's constants out of the tests).
    enum _TestingProtocolVersion {
        case tls1_0, tls1_1, tls1_2, tls1_3

        var openSSLValue: Int32 {
            switch self {
            case .tls1_0: TLS1_VERSION
            case .tls1_1: TLS1_1_VERSION
            case .tls1_2: TLS1_2_VERSION
            case .tls1_3: TLS1_3_VERSION
            }
        }
    }

    /// A client restricted to the protocol versions `minimumVersion...maximumVersion` at OpenSSL security
    /// level `securityLevel`, trusting `caFile`.
    ///
    /// Exists only so tests can build an outdated or TLS 1.2-only peer and prove how MailGate's servers treat
    /// it. Never use it elsewhere: with level 0 it accepts protocol versions with known weaknesses.
    static func _clientForTesting(
        caFile: String, minimumVersion: _TestingProtocolVersion, maximumVersion: _TestingProtocolVersion,
        securityLevel: Int32
    ) throws(TLSError) -> TLSContext {
        let context = try client(caFile: caFile)
        SSL_CTX_set_security_level(context.pointer, securityLevel)
        guard mailgate_SSL_CTX_set_min_proto_version(context.pointer, minimumVersion.openSSLValue) == 1,
            mailgate_SSL_CTX_set_max_proto_version(context.pointer, maximumVersion.openSSLValue) == 1
        else {
            throw .configuration(
                "OpenSSL refused the protocol range: " + drainOpenSSLErrors(fallback: "no reason given"))
        }
        return context
    }
}

/// One SSL_SESSION reference, freed when the last user lets go (OpenSSL counts the references itself; SSL_set_session
/// takes its own).
final class ResumableSession: @unchecked Sendable {
    // @unchecked Sendable: the pointer is never mutated through this box; SSL_SESSION's reference count is atomic.
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_SESSION_free(pointer) }
}
