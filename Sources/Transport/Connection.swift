// Transport: one non-blocking TCP connection driven by Dispatch sources on its session's serial queue.

#if canImport(Glibc)
    import Glibc
#endif
public import Dispatch
public import MailCore

/// How a connection frames what it reads.
public enum ReadMode: Sendable, Equatable {
    /// Lines of at most `maximumLength` bytes (line ending included), delivered without their CRLF or LF.
    case lines(maximumLength: Int)
    /// The next n bytes as `.bytes` events (an IMAP literal, say); afterwards the previous mode comes back.
    case exactly(Int)
    /// Every chunk as it arrives (relaying, TLS-agnostic byte pumps).
    case raw
}

/// What a connection tells its owner, always on the connection's queue.
public enum ConnectionEvent: Sendable, Equatable {
    /// A complete line without its line ending (`.lines` mode).
    case line([UInt8])
    /// A chunk of an `.exactly` run; `remaining == 0` means the run ended and the previous mode is back.
    case bytes([UInt8], remaining: Int)
    /// A chunk in `.raw` mode.
    case raw([UInt8])
    /// A line passed `limit`; its bytes were dropped (not buffered). Most protocols answer with an error and close.
    case lineTooLong(limit: Int)
    /// The write queue drained below the low-water mark after having passed the high-water mark.
    case writable
    /// The connection is closed, with the reason if it was not an orderly close. Always the last event.
    case closed(TransportError?)
    /// Nothing was sent or received for the idle timeout. Unless the handler closes it, the connection is then
    /// closed after flushing what the handler wrote (e.g. a "421 idle timeout" reply).
    case idleTimeout
}

/// One TCP connection: non-blocking socket, Dispatch read/write sources, bounded framing and write queue,
/// optional TLS, idle timeout.
///
/// Threading: every method and property must be used on `queue`. A session's client connection and its upstream
/// connection share one serial queue, so a session's state needs no locks. No thread ever blocks on the socket;
/// an idle connection costs its buffers and two Dispatch sources, not a thread.
///
/// Lifetime: the connection keeps itself alive until it is closed (its Dispatch sources hold it), and it closes
/// its descriptor in the read source's cancel handler only. Every connection delivers exactly one `.closed`.
public final class Connection: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is touched only on `queue` (dispatchPrecondition in debug builds);
    // the instance may be handed to another thread only to be used through `queue`.

    /// The serial queue every callback runs on and every call must be made on.
    public let queue: DispatchQueue

    /// Receives events; set it before `start()`. Cleared after `.closed` is delivered to break reference cycles.
    public var onEvent: ((ConnectionEvent) -> Void)?

    /// When set, a FIN from the peer calls this and leaves the connection open for writing (half-close, used by
    /// `Relay`). When nil, a FIN closes the connection after the pending writes are flushed.
    public var onInputClosed: (() -> Void)?

    /// The bounds this connection enforces (write high water, read chunk, line lengths).
    public let limits: Limits

    /// The local end of the connection.
    public private(set) var localAddress: HostPort?
    /// The peer's end of the connection.
    public private(set) var remoteAddress: HostPort?
    /// The peer's IP address, IPv4-mapped addresses unmapped, for `relay_networks` CIDR checks.
    public private(set) var remoteIPAddress: IPAddress?

    /// The life of a connection as one value (no flag soup).
    enum Lifecycle: Equatable {
        /// Outbound connect in progress.
        case connecting
        /// Connected; `start()` not called yet (a TLS handshake may already be running).
        case idle
        /// Reading and writing.
        case open
        /// The peer sent FIN and `onInputClosed` is set: still writing.
        case inputClosed
        /// `shutdownWrite()`: flushing, then FIN; still reading.
        case outputClosing
        /// Our FIN is sent; still reading.
        case outputClosed
        /// Flushing, then closing both directions.
        case closing
        /// Closed; the sources are cancelled and the descriptor is closed by the read source's cancel handler.
        case closed
    }

    /// Whether the bytes on the wire are plaintext or TLS records.
    enum Security {
        case plain
        case handshaking(any TLSEngine, completion: ((TransportError?) -> Void)?)
        case secured(any TLSEngine)
    }

    /// Dispatch sources start inactive and must be resumed as often as suspended; this tracks which it is.
    enum SourceState { case inactive, running, suspended }

    let descriptor: Int32
    var lifecycle: Lifecycle
    var security: Security = .plain
    private var framer: LineFramer
    private var writeQueue: ByteQueue
    /// Plaintext written while a TLS handshake runs; encrypted once it completes.
    private var handshakeBacklog: ByteQueue
    private let readSource: any DispatchSourceRead
    private let writeSource: any DispatchSourceWrite
    private var readSourceState = SourceState.inactive
    private var writeSourceState = SourceState.inactive
    private var readingPaused = false
    private var delivering = false
    private var waitingForWritable = false
    private var closeReason: TransportError?
    private var idleTimer: (any DispatchSourceTimer)?
    private var idleTimeout: Double?
    private var lastActivity = DispatchTime.now()
    private var deadlineTimer: (any DispatchSourceTimer)?
    /// Called once the outbound connect finishes (success or failure).
    var onConnected: ((TransportError?) -> Void)?

    /// Wraps a connected or connecting non-blocking socket. The connection owns `descriptor` from now on.
    init(descriptor: Int32, queue: DispatchQueue, lifecycle: Lifecycle, limits: Limits) {
        self.descriptor = descriptor
        self.queue = queue
        self.lifecycle = lifecycle
        self.limits = limits
        self.framer = LineFramer(
            mode: .lines(maximumLength: limits.imapLine),
            maximumBufferedCount: limits.readChunk + Connection.maximumLineLength)
        self.writeQueue = ByteQueue(maximumCount: Connection.writeBufferBound(limits))
        self.handshakeBacklog = ByteQueue(maximumCount: Connection.writeBufferBound(limits))
        self.readSource = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        self.writeSource = DispatchSource.makeWriteSource(fileDescriptor: descriptor, queue: queue)
        readSource.setEventHandler { [self] in readableEvent() }
        readSource.setCancelHandler { [descriptor] in
            // The one place the descriptor is closed: after both sources are done with it.
            _ = Glibc.close(descriptor)
        }
        writeSource.setEventHandler { [self] in writableEvent() }
        writeSource.setCancelHandler { [self] in
            readSource.cancel()
            resumeForCancel(readSource, state: readSourceState)
            readSourceState = .running
        }
        if lifecycle != .connecting { learnAddresses() }
    }

    /// The longest line any read mode may ask for; bounds the framer's buffer together with the read chunk.
    public static let maximumLineLength = 1 << 20

    /// Bytes a connection may queue for writing before it fails with `.writeBufferFull`: well above the high-water
    /// mark, so writers that honour back-pressure never reach it.
    public static func writeBufferBound(_ limits: Limits) -> Int {
        max(limits.writeBufferHighWater * 16, 16 << 20)
    }

    func learnAddresses() {
        localAddress = Socket.localAddress(descriptor)?.hostPort
        let remote = Socket.remoteAddress(descriptor)
        remoteAddress = remote?.hostPort
        remoteIPAddress = remote?.ipAddress?.unmapped
    }

    // MARK: - Public controls

    /// How incoming bytes are framed. Setting `.exactly(n)` inside an event handler frames the very next bytes,
    /// even those already received in the same chunk, and returns to the current mode after n bytes.
    public var readMode: ReadMode {
        get {
            dispatchPrecondition(condition: .onQueue(queue))
            switch framer.mode {
            case .lines(let maximumLength): return .lines(maximumLength: maximumLength)
            case .exactly(let n): return .exactly(n)
            case .raw: return .raw
            }
        }
        set {
            dispatchPrecondition(condition: .onQueue(queue))
            switch newValue {
            case .lines(let maximumLength):
                precondition(maximumLength > 0 && maximumLength <= Connection.maximumLineLength, "bad line bound")
                framer.mode = .lines(maximumLength: maximumLength)
            case .exactly(let n):
                precondition(n >= 0, "a negative byte count")
                framer.mode = .exactly(n)
            case .raw:
                framer.mode = .raw
            }
            scheduleDelivery()
        }
    }

    /// Begins reading and delivering events. Set `onEvent` (and `readMode`) first.
    public func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard lifecycle == .idle else { return }
        lifecycle = .open
        updateReadSource()
        scheduleDelivery()
    }

    /// Bytes queued for the socket (plus plaintext waiting for a TLS handshake). Compare with
    /// `limits.writeBufferHighWater` for back-pressure, or wait for `.writable`.
    public var pendingWriteBytes: Int {
        dispatchPrecondition(condition: .onQueue(queue))
        return writeQueue.count + handshakeBacklog.count
    }

    /// Bytes received but not yet delivered as events (bounded by the read chunk plus the line bound).
    public var bufferedReadBytes: Int {
        dispatchPrecondition(condition: .onQueue(queue))
        return framer.bufferedCount
    }

    /// True while `pauseReading()` is in effect.
    public var isReadingPaused: Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        return readingPaused
    }

    /// True once the connection is closed (`.closed` may still be on its way).
    public var isClosed: Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        return lifecycle == .closed
    }

    /// True while bytes on the wire are TLS (handshaking or established).
    public var isTLS: Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        if case .plain = security { return false }
        return true
    }

    /// The negotiated TLS version ("TLSv1.3"), nil for plaintext or before the handshake completes.
    public var tlsProtocolVersion: String? {
        dispatchPrecondition(condition: .onQueue(queue))
        if case .secured(let engine) = security { return engine.protocolVersion }
        return nil
    }

    /// Queues `bytes` for sending. Never blocks; check `pendingWriteBytes` or wait for `.writable` to apply
    /// back-pressure. Writes after `shutdownWrite()` or `close()` are dropped.
    public func write(_ bytes: [UInt8]) {
        dispatchPrecondition(condition: .onQueue(queue))
        switch lifecycle {
        case .connecting, .idle, .open, .inputClosed: break
        case .outputClosing, .outputClosed, .closing, .closed: return
        }
        guard !bytes.isEmpty else { return }
        switch security {
        case .plain:
            enqueue(bytes)
        case .handshaking:
            do {
                try handshakeBacklog.append(contentsOf: bytes)
            } catch {
                fail(.writeBufferFull(limit: handshakeBacklog.maximumCount))
                return
            }
        case .secured(let engine):
            do throws(TransportError) {
                try engine.writePlaintext(bytes)
            } catch {
                fail(error)
                return
            }
            moveEngineOutput(engine)
        }
        flush()
        if lifecycle != .closed && pendingWriteBytes > limits.writeBufferHighWater {
            waitingForWritable = true
        }
    }

    /// Stops reading from the socket and delivering events until `resumeReading()`. Already-received bytes stay
    /// buffered (bounded) and are delivered after resuming, in order.
    public func pauseReading() {
        dispatchPrecondition(condition: .onQueue(queue))
        readingPaused = true
        updateReadSource()
    }

    /// Undoes `pauseReading()`; buffered events are delivered asynchronously, never from inside this call.
    public func resumeReading() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard readingPaused else { return }
        readingPaused = false
        updateReadSource()
        scheduleDelivery()
    }

    /// Closes the connection if nothing is sent or received for `seconds`; nil turns the timeout off.
    /// `.idleTimeout` is delivered first so the owner can say goodbye.
    public func setIdleTimeout(seconds: Double?) {
        dispatchPrecondition(condition: .onQueue(queue))
        idleTimer?.cancel()
        idleTimer = nil
        idleTimeout = seconds
        guard let seconds, lifecycle != .closed else { return }
        lastActivity = .now()
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in self?.idleTimerFired() }
        timer.schedule(deadline: .now() + seconds)
        timer.activate()
        idleTimer = timer
    }

    /// Half-closes: flushes what is queued, sends TLS close_notify if TLS is on, then FIN. Reading goes on.
    public func shutdownWrite() {
        dispatchPrecondition(condition: .onQueue(queue))
        switch lifecycle {
        case .idle, .open: lifecycle = .outputClosing
        case .inputClosed: lifecycle = .closing
        case .connecting: close()
        case .outputClosing, .outputClosed, .closing, .closed: return
        }
        endTLSOutput()
        flush()
    }

    /// Flushes what is queued (and TLS close_notify), then closes; for a last reply such as "221 Bye".
    public func closeAfterFlushing() {
        dispatchPrecondition(condition: .onQueue(queue))
        switch lifecycle {
        case .connecting: close()
        case .idle, .open, .inputClosed, .outputClosing:
            lifecycle = .closing
            endTLSOutput()
            flush()
        case .outputClosed: close()
        case .closing, .closed: return
        }
    }

    /// Closes at once, dropping unsent bytes. Safe to call more than once; `.closed(nil)` follows asynchronously
    /// unless the connection already failed.
    public func close() {
        dispatchPrecondition(condition: .onQueue(queue))
        finishClose(nil)
    }

    // MARK: - Reading

    private func readableEvent() {
        readOnce()
        catchLostHangup()
    }

    /// A hangup or reset that arrived while a handler ran may never be reported (see `Socket.peerHungUp`): while
    /// reading is wanted and the peer has hung up, read on here until the end or the error is seen. Bounded:
    /// every round consumes input or ends the connection's reading.
    private func catchLostHangup() {
        var rounds = 0
        while lifecycle != .closed, readSourceState == .running, rounds < 64, Socket.peerHungUp(descriptor) {
            rounds += 1
            readOnce()
        }
    }

    private func readOnce() {
        guard lifecycle != .closed else { return }
        let chunkSize = limits.readChunk
        var failure: Int32 = 0
        let chunk = [UInt8](unsafeUninitializedCapacity: chunkSize) { buffer, count in
            let n = recv(descriptor, buffer.baseAddress, chunkSize, 0)
            if n < 0 { failure = errno }
            count = max(n, 0)
            if n == 0 { failure = -1 }
        }
        if failure == EAGAIN || failure == EWOULDBLOCK || failure == EINTR { return }
        if failure == -1 {
            inputEnded()
            return
        }
        if failure != 0 {
            fail(failure == ECONNRESET ? .closedByPeer : .io("recv: \(Socket.reason(failure))"))
            return
        }
        Socket.acknowledgeQuickly(descriptor)
        lastActivity = .now()
        switch security {
        case .plain:
            if framer.mode == .raw && framer.bufferedCount == 0 && mayDeliver {
                onEvent?(.raw(chunk))  // raw fast path (relays): no copy through the framer
                updateReadSource()
                return
            }
            do {
                try framer.append(chunk)
            } catch {
                fail(.io("read buffer over its bound"))
                return
            }
        case .handshaking(let engine, _):
            engine.receiveFromNetwork(chunk)
            advanceHandshake()
        case .secured(let engine):
            engine.receiveFromNetwork(chunk)
        }
        deliver()
        updateReadSource()
    }

    /// The peer finished sending (FIN, or TLS close_notify).
    func inputEnded() {
        if case .handshaking = security {
            fail(.closedByPeer)
            return
        }
        switch lifecycle {
        case .connecting, .idle:
            closeAfterFlushing()
            return
        case .open:
            if let onInputClosed {
                lifecycle = .inputClosed
                updateReadSource()
                onInputClosed()
            } else {
                closeAfterFlushing()
            }
        case .outputClosing:
            lifecycle = .closing
            onInputClosed?()
            flush()
        case .outputClosed:
            onInputClosed?()
            finishClose(nil)
        case .inputClosed, .closing, .closed:
            return
        }
        updateReadSource()
    }

    private var mayDeliver: Bool {
        switch lifecycle {
        case .open, .outputClosing, .outputClosed: return !readingPaused
        case .connecting, .idle, .inputClosed, .closing, .closed: return false
        }
    }

    /// Delivers buffered frames, pulling TLS plaintext as the framer empties, until paused or out of input.
    private func deliver() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while mayDeliver {
            if let frame = framer.next() {
                emit(frame)
                continue
            }
            guard case .secured(let engine) = security else { break }
            let result: TLSReadOutcome
            do throws(TransportError) {
                result = try engine.readPlaintext(maximumCount: limits.readChunk)
            } catch {
                fail(error)
                return
            }
            moveEngineOutput(engine)
            flush()
            switch result {
            case .data(let bytes):
                do {
                    try framer.append(bytes)
                } catch {
                    fail(.io("read buffer over its bound"))
                    return
                }
            case .needMoreInput:
                return
            case .closed:
                inputEnded()
                return
            }
        }
    }

    private func emit(_ frame: LineFramer.Frame) {
        switch frame {
        case .line(let line): onEvent?(.line(line))
        case .bytes(let bytes, let remaining): onEvent?(.bytes(bytes, remaining: remaining))
        case .raw(let bytes): onEvent?(.raw(bytes))
        case .lineTooLong(let limit): onEvent?(.lineTooLong(limit: limit))
        }
    }

    /// Delivery after a mode change or resume happens on a fresh queue turn, never inside the caller's handler.
    private func scheduleDelivery() {
        queue.async { [self] in
            guard lifecycle != .closed else { return }
            deliver()
            updateReadSource()
            catchLostHangup()  // a resumed source may have lost its registration to a hangup (Socket.peerHungUp)
        }
    }

    /// Runs the read source exactly when input is wanted: during a handshake, or when delivering and not paused.
    func updateReadSource() {
        guard lifecycle != .closed else { return }
        var wanted: Bool
        switch lifecycle {
        case .open, .outputClosing, .outputClosed: wanted = !readingPaused
        case .connecting, .inputClosed, .closing, .closed, .idle: wanted = false
        }
        if case .handshaking = security, lifecycle != .connecting, lifecycle != .closing { wanted = true }
        switch (wanted, readSourceState) {
        case (true, .inactive): readSource.activate(); readSourceState = .running
        case (true, .suspended): readSource.resume(); readSourceState = .running
        case (false, .running): readSource.suspend(); readSourceState = .suspended
        default: break
        }
    }

    // MARK: - Writing

    private func enqueue(_ bytes: [UInt8]) {
        do {
            try writeQueue.append(contentsOf: bytes)
        } catch {
            fail(.writeBufferFull(limit: writeQueue.maximumCount))
        }
    }

    private func writableEvent() {
        if lifecycle == .connecting {
            connectFinished()
            return
        }
        flush()
        // Bytes still queued and the peer gone: the next write event may never come (Socket.peerHungUp), so
        // let send() report the reset now.
        if lifecycle != .closed, lifecycle != .connecting, !writeQueue.isEmpty, Socket.peerHungUp(descriptor) { flush() }
    }

    /// Sends as much as the socket takes; arms the write source only while bytes remain.
    func flush() {
        guard lifecycle != .closed, lifecycle != .connecting else { return }
        while !writeQueue.isEmpty {
            var failure: Int32 = 0
            let sent = writeQueue.withUnsafeReadableBytes { raw -> Int in
                let n = send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                if n < 0 { failure = errno }
                return n
            }
            if sent > 0 {
                writeQueue.dropFirst(sent)
                lastActivity = .now()
                continue
            }
            if failure == EINTR { continue }
            if failure == EAGAIN || failure == EWOULDBLOCK {
                setWriteSource(running: true)
                return
            }
            fail(failure == EPIPE || failure == ECONNRESET ? .closedByPeer : .io("send: \(Socket.reason(failure))"))
            return
        }
        setWriteSource(running: false)
        if waitingForWritable && pendingWriteBytes <= limits.writeBufferHighWater / 2 {
            waitingForWritable = false
            queue.async { [self] in
                guard lifecycle != .closed else { return }
                onEvent?(.writable)
            }
        }
        guard handshakeBacklog.isEmpty else { return }
        switch lifecycle {
        case .outputClosing:
            _ = shutdown(descriptor, Int32(SHUT_WR))
            lifecycle = .outputClosed
            updateReadSource()
        case .closing:
            finishClose(nil)
        default:
            break
        }
    }

    func setWriteSource(running: Bool) {
        switch (running, writeSourceState) {
        case (true, .inactive): writeSource.activate(); writeSourceState = .running
        case (true, .suspended): writeSource.resume(); writeSourceState = .running
        case (false, .running): writeSource.suspend(); writeSourceState = .suspended
        default: break
        }
    }

    // MARK: - Closing

    /// Closes with an error unless the connection is already closed.
    func fail(_ error: TransportError) {
        finishClose(error)
    }

    func finishClose(_ error: TransportError?) {
        guard lifecycle != .closed else { return }
        lifecycle = .closed
        closeReason = error ?? closeReason
        idleTimer?.cancel()
        idleTimer = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
        var pendingHandshake: ((TransportError?) -> Void)?
        if case .handshaking(_, let completion) = security { pendingHandshake = completion }
        if case .secured = security { security = .plain }
        if case .handshaking = security { security = .plain }
        let connected = onConnected
        onConnected = nil
        // The write source's cancel handler cancels the read source, whose cancel handler closes the descriptor,
        // so the descriptor outlives both sources.
        writeSource.cancel()
        resumeForCancel(writeSource, state: writeSourceState)
        writeSourceState = .running
        connected?(closeReason ?? .connectionClosed)
        pendingHandshake?(closeReason ?? .connectionClosed)
        queue.async { [self] in
            let handler = onEvent
            onEvent = nil
            onInputClosed = nil
            handler?(.closed(closeReason))
        }
    }

    private func resumeForCancel(_ source: any DispatchSourceProtocol, state: SourceState) {
        switch state {
        case .inactive: source.activate()
        case .suspended: source.resume()
        case .running: break
        }
    }

    // MARK: - Timers

    private func idleTimerFired() {
        guard let timeout = idleTimeout, let timer = idleTimer, lifecycle != .closed else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - lastActivity.uptimeNanoseconds) / 1e9
        if elapsed < timeout {
            timer.schedule(deadline: .now() + (timeout - elapsed))
            return
        }
        idleTimer = nil
        timer.cancel()
        let reason = TransportError.timedOut("waiting for the peer (idle for \(timeout) seconds)")
        if lifecycle == .closing {
            // Already saying goodbye and the peer does not even take that: give up.
            fail(reason)
            return
        }
        onEvent?(.idleTimeout)
        guard lifecycle != .closed else { return }
        closeReason = reason
        closeAfterFlushing()
        if lifecycle != .closed { setIdleTimeout(seconds: timeout) }  // bounds the goodbye flush as well
    }

    /// Arms a one-shot deadline (connect or handshake timeout) that fails the connection with `.timedOut(what)`.
    func armDeadline(seconds: Double, what: String) {
        deadlineTimer?.cancel()
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in
            guard let self, lifecycle != .closed else { return }
            fail(.timedOut(what))
        }
        timer.schedule(deadline: .now() + seconds)
        timer.activate()
        deadlineTimer = timer
    }

    func disarmDeadline() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
    }

    // MARK: - Connect

    private func connectFinished() {
        let code = Socket.pendingError(descriptor)
        guard code == 0 else {
            let callback = onConnected
            onConnected = nil
            callback?(.io(Socket.reason(code)))
            finishClose(.io(Socket.reason(code)))
            return
        }
        lifecycle = .idle
        setWriteSource(running: false)
        learnAddresses()
        let callback = onConnected
        onConnected = nil
        callback?(nil)
        flush()  // anything written while connecting
    }

    /// Starts waiting for a non-blocking connect to finish.
    func awaitConnect() {
        setWriteSource(running: true)
    }

    // MARK: - TLS plumbing (engine-agnostic)

    /// Moves ciphertext produced by the engine into the write queue.
    func moveEngineOutput(_ engine: any TLSEngine) {
        while engine.hasNetworkOutput {
            let output = engine.takeNetworkOutput()
            if output.isEmpty { break }
            enqueue(output)
        }
    }

    /// Switches the wire to TLS. Plaintext that was received but not yet delivered is discarded (RFC 3207 §4:
    /// it could be a command injected before the handshake); bytes already written go out first, in plaintext.
    func beginTLS(engine: any TLSEngine, timeout: Double?, completion: ((TransportError?) -> Void)?) {
        switch lifecycle {
        case .closed, .closing, .outputClosing, .outputClosed, .inputClosed:
            completion?(.connectionClosed)
            return
        case .connecting, .idle, .open:
            break
        }
        guard case .plain = security else {
            completion?(.io("TLS is already active on this connection"))
            return
        }
        framer.discardBuffered()
        security = .handshaking(engine, completion: completion)
        if let timeout { armDeadline(seconds: timeout, what: "waiting for the TLS handshake") }
        advanceHandshake()
        updateReadSource()
    }

    /// Runs the handshake as far as the input allows; on completion flushes the plaintext backlog and reports.
    private func advanceHandshake() {
        guard case .handshaking(let engine, let completion) = security else { return }
        let complete: Bool
        do throws(TransportError) {
            complete = try engine.handshakeStep()
        } catch {
            moveEngineOutput(engine)
            flush()
            security = .plain
            completion?(error)
            fail(error)
            return
        }
        moveEngineOutput(engine)
        guard complete else {
            flush()
            return
        }
        security = .secured(engine)
        disarmDeadline()
        if !handshakeBacklog.isEmpty {
            let backlog = handshakeBacklog.removeAll()
            do throws(TransportError) {
                try engine.writePlaintext(backlog)
            } catch {
                completion?(error)
                fail(error)
                return
            }
            moveEngineOutput(engine)
        }
        flush()
        completion?(nil)
        updateReadSource()
        scheduleDelivery()
    }

    /// Queues TLS close_notify before our FIN.
    private func endTLSOutput() {
        if case .secured(let engine) = security {
            engine.shutdown()
            moveEngineOutput(engine)
        }
    }
}

/// What reading plaintext from a TLS engine produced.
enum TLSReadOutcome {
    case data([UInt8])
    case needMoreInput
    case closed
}

/// The sans-I/O TLS connection as Transport drives it; `TLS.TLSConnection` conforms in Connection+TLS.swift.
protocol TLSEngine: AnyObject {
    func receiveFromNetwork(_ bytes: [UInt8])
    /// True when the handshake is complete.
    func handshakeStep() throws(TransportError) -> Bool
    func readPlaintext(maximumCount: Int) throws(TransportError) -> TLSReadOutcome
    func writePlaintext(_ bytes: [UInt8]) throws(TransportError)
    func takeNetworkOutput() -> [UInt8]
    var hasNetworkOutput: Bool { get }
    func shutdown()
    var protocolVersion: String? { get }
}
