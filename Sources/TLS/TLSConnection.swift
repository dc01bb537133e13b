// TLS: one TLS session as a sans-I/O state machine over two memory BIOs.

internal import COpenSSL
import Crypto

/// Result of one `TLSConnection.handshake()` step.
public enum TLSHandshakeResult: Sendable, Equatable {
    /// The handshake is done; application data may flow (send `takeNetworkOutput()` first: it may hold
    /// the last handshake flight).
    case complete
    /// OpenSSL waits for more bytes from the peer: send `takeNetworkOutput()`, then read the socket and call
    /// `receiveFromNetwork(_:)` and `handshake()` again.
    case needMoreInput
}

/// Result of one `TLSConnection.readPlaintext(maximumCount:)`.
public enum TLSReadResult: Sendable, Equatable {
    /// Decrypted application bytes (never empty). More may be buffered: call again.
    case data([UInt8])
    /// Nothing decryptable yet: feed more ciphertext with `receiveFromNetwork(_:)`.
    case needMoreInput
    /// The peer sent close_notify: no more data will come. Answer with `shutdown()` if still writing.
    case closed
}

/// One TLS session (client or server) that never touches a socket: ciphertext goes in through
/// `receiveFromNetwork(_:)` and comes out of `takeNetworkOutput()`; the caller owns all I/O and timing.
///
/// The SSL object reads from one memory BIO (BIO_s_mem) and writes to another. After every call that may
/// produce output (`handshake`, `readPlaintext`, `writePlaintext`, `shutdown`, and after any thrown error,
/// which may have queued an alert), send `takeNetworkOutput()` to the peer.
///
/// Not thread-safe and deliberately not `Sendable`: one serial queue (the connection pair's) owns it.
public final class TLSConnection {
    /// The lifecycle, in one place.
    private enum State {
        /// Before the handshake completes.
        case handshaking
        /// Handshake done; application data flows.
        case established
        /// A fatal error happened; every later call throws it again.
        case failed(TLSError)
    }

    /// Keeps the SSL_CTX alive for as long as the SSL that was made from it (also reference-counted in C).
    private let context: TLSContext
    /// The SSL; freed in `deinit`, which also frees both BIOs (SSL_set_bio hands them over).
    private let ssl: OpaquePointer
    /// Inbound ciphertext (peer → us); owned by `ssl`. Replaced by an empty one once drained after it grew.
    private var networkInput: OpaquePointer
    /// Outbound ciphertext (us → peer); owned by `ssl`. Replaced like `networkInput`.
    private var networkOutput: OpaquePointer
    private var state: State = .handshaking
    /// Clients: the server name the session is verified for, the key of the context's resumable sessions.
    private var resumptionKey: String?
    /// The session has been offered to the context for resumption (or needs not be).
    private var sessionRemembered = false
    /// An error met while a read had already produced data; thrown by the next call so no data is lost.
    private var deferredFailure: TLSError? = nil

    /// Largest plaintext one `readPlaintext` call returns, whatever `maximumCount` says (one read chunk).
    public static let maximumReadCount = 65_536

    /// A drained memory BIO that has allocated more than this is swapped for a fresh one: a memory BIO never
    /// shrinks, so one 64 KiB read (or the handshake's certificate flight) would otherwise stay allocated for the
    /// whole life of an idle session (heaptrack: ~1.9 KiB per idle upstream with a 2 KiB bound). Small enough that
    /// an idle session keeps next to nothing, large enough that a NOOP's few bytes cause no churn.
    static let retainedBIOBound = 512

    /// Starts a session on `context`.
    ///
    /// - Parameter serverName: for a client context, the name the peer's certificate must match: a DNS name
    ///   (also sent as SNI, RFC 6066 §3) or an IP literal (checked against IP SANs; no SNI, as the RFC says).
    ///   Required for clients: a client without a name to verify is refused. Ignored for server contexts.
    /// - Throws: `TLSError.configuration` for a client without a usable `serverName`.
    public init(context: TLSContext, serverName: String?) throws(TLSError) {
        self.context = context
        ERR_clear_error()
        guard let ssl = SSL_new(context.pointer) else {
            throw .configuration("OpenSSL could not create a session: " + drainOpenSSLErrors(fallback: "out of memory"))
        }
        guard let input = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .configuration(
                "OpenSSL could not create a memory BIO: " + drainOpenSSLErrors(fallback: "out of memory"))
        }
        guard let output = BIO_new(BIO_s_mem()) else {
            BIO_free(input)
            SSL_free(ssl)
            throw .configuration(
                "OpenSSL could not create a memory BIO: " + drainOpenSSLErrors(fallback: "out of memory"))
        }
        SSL_set_bio(ssl, input, output)
        self.ssl = ssl
        self.networkInput = input
        self.networkOutput = output

        if context.isClient {
            SSL_set_connect_state(ssl)
            try configureClientVerification(serverName: serverName)
            // Resumption only for the very name the session was verified for, from the same trust configuration.
            resumptionKey = serverName
            if let serverName, let cached = context.resumableSession(for: serverName) {
                SSL_set_session(ssl, cached.pointer)  // takes its own reference
            }
        } else {
            SSL_set_accept_state(ssl)
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Sets the name the certificate must match (and SNI for DNS names). Verification mode comes from the
    /// context (SSL_VERIFY_PEER); this adds the host or IP check so a mismatch fails the handshake itself.
    private func configureClientVerification(serverName: String?) throws(TLSError) {
        guard let serverName, !serverName.isEmpty else {
            throw .configuration("a TLS client needs the server's host name to verify its certificate; none was given")
        }
        guard serverName.utf8.count <= 253, !serverName.utf8.contains(0),
            serverName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else {
            throw .configuration("the server name is not a valid host name or IP address")
        }
        let parameters = SSL_get0_param(ssl)
        ERR_clear_error()
        if X509_VERIFY_PARAM_set1_ip_asc(parameters, serverName) == 1 {
            return  // an IP literal: matched against IP SANs; RFC 6066 forbids IPs in SNI
        }
        ERR_clear_error()
        X509_VERIFY_PARAM_set_hostflags(parameters, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        guard X509_VERIFY_PARAM_set1_host(parameters, serverName, 0) == 1 else {
            throw .configuration(
                "OpenSSL refused the server name for verification: " + drainOpenSSLErrors(fallback: "no reason given"))
        }
        ERR_clear_error()
        guard mailgate_SSL_set_tlsext_host_name(ssl, serverName) == 1 else {
            throw .configuration(
                "OpenSSL refused the server name for SNI: " + drainOpenSSLErrors(fallback: "no reason given"))
        }
    }

    // MARK: - Network side

    /// Hands ciphertext that arrived from the socket to OpenSSL. The caller bounds how much it reads
    /// per call (`Limits.readChunk`) and drains plaintext before feeding more.
    public func receiveFromNetwork(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let chunk = Int32(min(buffer.count - offset, Int(Int32.max)))
                let written = BIO_write(networkInput, buffer.baseAddress! + offset, chunk)
                // A memory BIO only fails to grow when malloc fails.
                precondition(written == chunk, "OpenSSL memory BIO refused \(chunk) bytes (out of memory)")
                offset += Int(written)
            }
        }
    }

    /// Ciphertext waiting to be written to the socket (empties the outbound buffer; may be empty).
    public func takeNetworkOutput() -> [UInt8] {
        let pending = Int(BIO_ctrl_pending(networkOutput))
        guard pending > 0 else { return [] }
        defer { releaseDrainedOutput() }
        return [UInt8](unsafeUninitializedCapacity: pending) { buffer, initialized in
            var offset = 0
            while offset < pending {
                let chunk = Int32(min(pending - offset, Int(Int32.max)))
                let read = BIO_read(networkOutput, buffer.baseAddress! + offset, chunk)
                guard read > 0 else { break }
                offset += Int(read)
            }
            initialized = offset
        }
    }

    /// Whether `takeNetworkOutput()` would return bytes.
    public var hasNetworkOutput: Bool {
        BIO_ctrl_pending(networkOutput) > 0
    }

    /// How many bytes both memory BIOs hold allocated now (tests: an idle session keeps none of a big read).
    public var allocatedNetworkBufferBytes: Int {
        Int(mailgate_BIO_mem_allocated(networkInput)) + Int(mailgate_BIO_mem_allocated(networkOutput))
    }

    /// Whether this client session was resumed from the context's cache (no certificate sent or parsed).
    public var isResumed: Bool { SSL_session_reused(ssl) == 1 }

    /// Clients: once a full handshake's session is resumable (TLS 1.3: after the server's ticket, read after the
    /// handshake), hands it to the context for the next connection to the same name. Resumed sessions leave the
    /// cached one in place.
    private func rememberSessionIfResumable() {
        guard !sessionRemembered, let resumptionKey, case .established = state else { return }
        if SSL_session_reused(ssl) == 1 {
            sessionRemembered = true
            return
        }
        guard let session = SSL_get_session(ssl), SSL_SESSION_is_resumable(session) == 1,
            let reference = SSL_get1_session(ssl)
        else { return }
        context.remember(reference, for: resumptionKey)
        sessionRemembered = true
    }

    /// Swaps the inbound BIO for an empty one when it is drained and grew past `retainedBIOBound`.
    private func releaseDrainedInput() {
        guard BIO_ctrl_pending(networkInput) == 0,
            Int(mailgate_BIO_mem_allocated(networkInput)) > Self.retainedBIOBound,
            let fresh = BIO_new(BIO_s_mem())
        else { return }
        SSL_set0_rbio(ssl, fresh)  // frees the old one
        networkInput = fresh
    }

    /// The same for the outbound BIO, after `takeNetworkOutput` emptied it.
    private func releaseDrainedOutput() {
        guard BIO_ctrl_pending(networkOutput) == 0,
            Int(mailgate_BIO_mem_allocated(networkOutput)) > Self.retainedBIOBound,
            let fresh = BIO_new(BIO_s_mem())
        else { return }
        SSL_set0_wbio(ssl, fresh)  // frees the old one
        networkOutput = fresh
    }

    // MARK: - Session

    /// Advances the handshake with the bytes received so far. Call until it returns `.complete`, sending
    /// `takeNetworkOutput()` after every call (also after a throw: it may hold an alert for the peer).
    ///
    /// - Throws: `TLSError.certificateVerificationFailed` (chain, expiry, host name),
    ///   `.handshakeFailed` (protocol, cipher, garbage, alert from the peer).
    public func handshake() throws(TLSError) -> TLSHandshakeResult {
        switch state {
        case .failed(let error): throw error
        case .established: return .complete
        case .handshaking: break
        }
        ERR_clear_error()
        let status = SSL_do_handshake(ssl)
        if status == 1 {
            state = .established
            releaseDrainedInput()
            rememberSessionIfResumable()
            return .complete
        }
        switch outcome(of: status) {
        case .wantsInput:
            return .needMoreInput
        case .closed:
            throw fail(.handshakeFailed("the peer closed the TLS session during the handshake"))
        case .failed(let error):
            throw fail(error)
        }
    }

    /// Decrypts up to `min(maximumCount, maximumReadCount)` bytes of application data. Completes the
    /// handshake first if it is still running. Call again until `.needMoreInput`, since OpenSSL may hold
    /// more decrypted data than one call returns.
    ///
    /// - Throws: `TLSError.protocolError` for a broken session (bad record MAC, unexpected message,
    ///   truncation without close_notify); handshake errors as in `handshake()`.
    public func readPlaintext(maximumCount: Int) throws(TLSError) -> TLSReadResult {
        precondition(maximumCount > 0, "readPlaintext needs a positive maximumCount")
        if let deferredFailure {
            self.deferredFailure = nil
            throw fail(deferredFailure)
        }
        if case .failed(let error) = state { throw error }
        let capacity = min(maximumCount, Self.maximumReadCount)
        var ending: ReadEnding = .wantsInput
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            var filled = 0
            while filled < capacity {
                var count = 0
                ERR_clear_error()
                let status = SSL_read_ex(ssl, buffer.baseAddress! + filled, capacity - filled, &count)
                if status == 1 {
                    filled += count
                    continue
                }
                switch outcome(of: status) {
                case .wantsInput: ending = .wantsInput
                case .closed: ending = .closed
                case .failed(let error): ending = .failed(error)
                }
                break
            }
            initialized = filled
        }
        if SSL_is_init_finished(ssl) == 1, case .handshaking = state { state = .established }
        if case .wantsInput = ending { releaseDrainedInput() }
        rememberSessionIfResumable()
        if !bytes.isEmpty {
            if case .failed(let error) = ending { deferredFailure = error }
            return .data(bytes)
        }
        switch ending {
        case .wantsInput: return .needMoreInput
        case .closed: return .closed
        case .failed(let error): throw fail(error)
        }
    }

    /// Encrypts `bytes` as application data into the network output (a memory BIO always takes all of it).
    ///
    /// - Throws: `TLSError.protocolError` before the handshake completes, after `shutdown()`, or after a failure.
    public func writePlaintext(_ bytes: [UInt8]) throws(TLSError) {
        switch state {
        case .failed(let error): throw error
        case .handshaking: throw .protocolError("application data was written before the TLS handshake completed")
        case .established: break
        }
        guard !bytes.isEmpty else { return }
        var failure: TLSError? = nil
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                var written = 0
                ERR_clear_error()
                let status = SSL_write_ex(ssl, buffer.baseAddress! + offset, buffer.count - offset, &written)
                guard status == 1 else {
                    switch outcome(of: status) {
                    case .failed(let error): failure = error
                    case .closed: failure = .protocolError("the TLS session is already closed for writing")
                    case .wantsInput: failure = .protocolError("OpenSSL wanted input while writing (renegotiation)")
                    }
                    return
                }
                offset += written
            }
        }
        if let failure { throw fail(failure) }
    }

    /// Queues close_notify into the network output; send it, then close the socket (or keep reading until
    /// `.closed` for a clean bidirectional close). Harmless to call more than once or before the handshake.
    public func shutdown() {
        guard case .established = state else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Whether the handshake has completed (and the peer, for a client, has been verified).
    public var isHandshakeComplete: Bool {
        if case .established = state { return true }
        return false
    }

    /// The negotiated protocol version ("TLSv1.3", "TLSv1.2") once the handshake is complete; for logs.
    public var protocolVersion: String? {
        guard isHandshakeComplete, let name = SSL_get_version(ssl) else { return nil }
        return String(cString: name)
    }

    // MARK: - Error mapping

    /// What one failed SSL call means.
    private enum Outcome {
        case wantsInput
        case closed
        case failed(TLSError)
    }

    private enum ReadEnding {
        case wantsInput
        case closed
        case failed(TLSError)
    }

    /// The single place that maps SSL_get_error (and the verify result, and the drained error stack)
    /// to what the caller must do. Call right after the failing SSL call, before any other OpenSSL call.
    private func outcome(of status: Int32) -> Outcome {
        let code = SSL_get_error(ssl, status)
        switch code {
        case SSL_ERROR_WANT_READ:
            ERR_clear_error()
            return .wantsInput
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .closed
        case SSL_ERROR_SSL:
            let stack = drainOpenSSLErrors(fallback: "no reason given")
            let verifyResult = SSL_get_verify_result(ssl)
            if context.isClient, verifyResult != X509_V_OK {
                let reason = X509_verify_cert_error_string(verifyResult).map { String(cString: $0) }
                return .failed(.certificateVerificationFailed(reason ?? "verify error \(verifyResult)"))
            }
            if hasCompletedHandshake {
                return .failed(.protocolError(stack))
            }
            return .failed(.handshakeFailed(stack))
        case SSL_ERROR_SYSCALL:
            // With memory BIOs there is no system call: this is an unexpected end of input.
            let stack = drainOpenSSLErrors(fallback: "the peer's data ended without close_notify")
            if hasCompletedHandshake {
                return .failed(.protocolError(stack))
            }
            return .failed(.handshakeFailed(stack))
        default:
            let stack = drainOpenSSLErrors(fallback: "SSL_get_error returned \(code)")
            return .failed(.protocolError(stack))
        }
    }

    /// Whether the handshake finished, by our state or OpenSSL's (a read may complete it); after a fatal
    /// error OpenSSL no longer reports it, so our state is asked first.
    private var hasCompletedHandshake: Bool {
        isHandshakeComplete || SSL_is_init_finished(ssl) == 1
    }

    /// Records a fatal error so every later call reports it, and returns it for throwing.
    private func fail(_ error: TLSError) -> TLSError {
        state = .failed(error)
        return error
    }
}
