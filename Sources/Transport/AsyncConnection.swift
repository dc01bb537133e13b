// Transport: an async/await facade over Connection for sequential client code (HTTPS, account tests, tests).

import Dispatch
public import MailCore
public import TLS

/// A connection read and written with `await`, one step at a time: `readLine`, `readExactly`, `readAvailable`,
/// `write`. Built on `Connection` with checked continuations; no thread blocks while waiting.
///
/// Meant for sequential code: at most one read and one write may be waiting at a time. Reads are bounded by
/// their arguments and by an internal buffer (reading pauses while it is full). Task cancellation is not
/// observed; call `close()` to end waits early (they then throw).
public final class AsyncConnection: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is touched only on `connection.queue`; public methods hop onto it.

    /// The underlying connection (its `onEvent` belongs to this facade; use it for its queue and addresses).
    public let connection: Connection

    private enum Input { case open, ended, failed(TransportError) }
    private enum Output { case open, shut, failed(TransportError) }
    private enum ReadWaiter {
        case line(CheckedContinuation<Result<[UInt8], TransportError>, Never>)
        case exactly(collected: [UInt8], CheckedContinuation<Result<[UInt8], TransportError>, Never>)
        case available(CheckedContinuation<Result<[UInt8]?, TransportError>, Never>)
    }

    private var framer: LineFramer
    private var input = Input.open
    private var output = Output.open
    private var readWaiter: ReadWaiter?
    private var writeWaiter: CheckedContinuation<Result<Void, TransportError>, Never>?
    /// Received bytes beyond this make the connection pause reading until the caller catches up.
    private let pauseThreshold: Int

    /// Wraps an accepted (or otherwise unstarted) connection and starts it. Call from any thread.
    public convenience init(_ connection: Connection) {
        self.init(connection, installOnQueue: false)
    }

    init(_ connection: Connection, installOnQueue: Bool) {
        self.connection = connection
        self.pauseThreshold = connection.limits.readChunk * 4
        self.framer = LineFramer(
            mode: .raw,
            maximumBufferedCount: pauseThreshold + connection.limits.readChunk * 2 + Connection.maximumLineLength)
        if installOnQueue {
            install()
        } else {
            connection.queue.async { [self] in install() }
        }
    }

    private func install() {
        dispatchPrecondition(condition: .onQueue(connection.queue))
        connection.readMode = .raw
        // Strong captures: the connection clears both handlers after `.closed`, which ends the cycle.
        connection.onInputClosed = { [self] in
            if case .open = input { input = .ended }
            serviceRead()
        }
        connection.onEvent = { [self] event in
            switch event {
            case .raw(let bytes), .bytes(let bytes, _), .line(let bytes):
                do {
                    try framer.append(bytes)
                } catch {
                    connection.close()
                    return
                }
                if framer.bufferedCount > pauseThreshold { connection.pauseReading() }
                serviceRead()
            case .writable:
                resumeWriter(.success(()))
            case .closed(let error):
                if case .open = input { input = error.map(Input.failed) ?? .ended }
                if case .open = output { output = .failed(error ?? .connectionClosed) }
                resumeWriter(.failure(error ?? .connectionClosed))
                serviceRead()
            case .lineTooLong, .idleTimeout:
                break
            }
        }
        connection.start()
    }

    /// Opens a connection (TLS from the first byte when `tls` is given) on a new serial queue.
    public static func connect(
        to target: HostPort, tls: TLSContext?, serverName: String?, timeout: Double, limits: Limits = .standard
    ) async throws(TransportError) -> AsyncConnection {
        let queue = DispatchQueue(label: "mailgate.async-connection", target: .global())
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<AsyncConnection, TransportError>, Never>) in
            Connection.connect(
                to: target, on: queue, timeout: timeout, tls: tls, serverName: serverName, limits: limits
            ) { result in
                continuation.resume(returning: result.map { AsyncConnection($0, installOnQueue: true) })
            }
        }
        return try result.get()
    }

    // MARK: - Reading

    /// The next line without its CRLF or LF. Throws `.lineTooLong` past `maximumLength` (line ending included;
    /// the line is skipped), `.closedByPeer` if the stream ends first.
    public func readLine(maximumLength: Int) async throws(TransportError) -> [UInt8] {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[UInt8], TransportError>, Never>) in
            connection.queue.async { [self] in
                guard readWaiter == nil else {
                    continuation.resume(returning: .failure(.io("a read is already waiting on this connection")))
                    return
                }
                if framer.mode != .lines(maximumLength: maximumLength) {
                    framer.mode = .lines(maximumLength: maximumLength)
                }
                readWaiter = .line(continuation)
                serviceRead()
            }
        }
        return try result.get()
    }

    /// Exactly `count` bytes. Throws `.closedByPeer` if the stream ends first.
    public func readExactly(_ count: Int) async throws(TransportError) -> [UInt8] {
        precondition(count >= 0, "readExactly needs a non-negative count")
        if count == 0 { return [] }
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[UInt8], TransportError>, Never>) in
            connection.queue.async { [self] in
                guard readWaiter == nil else {
                    continuation.resume(returning: .failure(.io("a read is already waiting on this connection")))
                    return
                }
                framer.mode = .raw
                framer.mode = .exactly(count)
                readWaiter = .exactly(collected: [], continuation)
                serviceRead()
            }
        }
        return try result.get()
    }

    /// Whatever has arrived (waiting for at least one byte), or nil once the peer has finished sending.
    public func readAvailable() async throws(TransportError) -> [UInt8]? {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[UInt8]?, TransportError>, Never>) in
            connection.queue.async { [self] in
                guard readWaiter == nil else {
                    continuation.resume(returning: .failure(.io("a read is already waiting on this connection")))
                    return
                }
                if framer.mode != .raw { framer.mode = .raw }
                readWaiter = .available(continuation)
                serviceRead()
            }
        }
        return try result.get()
    }

    /// Completes the waiting read if the buffer (or the end of input) allows.
    private func serviceRead() {
        guard let waiter = readWaiter else { return }
        let ending: TransportError?
        switch input {
        case .open: ending = nil
        case .ended: ending = .closedByPeer
        case .failed(let error): ending = error
        }
        switch waiter {
        case .line(let continuation):
            switch framer.next() {
            case .line(let line):
                readWaiter = nil
                continuation.resume(returning: .success(line))
            case .lineTooLong(let limit):
                readWaiter = nil
                continuation.resume(returning: .failure(.lineTooLong(limit: limit)))
            case .bytes, .raw, nil:
                if let ending {
                    readWaiter = nil
                    continuation.resume(returning: .failure(ending))
                }
            }
        case .exactly(var collected, let continuation):
            while case .bytes(let chunk, let remaining) = framer.next() {
                collected += chunk
                if remaining == 0 {
                    readWaiter = nil
                    continuation.resume(returning: .success(collected))
                    resumeReadingIfDrained()
                    return
                }
            }
            if let ending {
                readWaiter = nil
                framer.mode = .raw
                continuation.resume(returning: .failure(ending))
            } else {
                readWaiter = .exactly(collected: collected, continuation)
            }
        case .available(let continuation):
            if case .raw(let bytes) = framer.next() {
                readWaiter = nil
                continuation.resume(returning: .success(bytes))
            } else if case .failed(let error) = input {
                readWaiter = nil
                continuation.resume(returning: .failure(error))
            } else if case .ended = input {
                readWaiter = nil
                continuation.resume(returning: .success(nil))
            }
        }
        resumeReadingIfDrained()
    }

    private func resumeReadingIfDrained() {
        if framer.bufferedCount <= pauseThreshold / 2, connection.isReadingPaused { connection.resumeReading() }
    }

    // MARK: - Writing

    /// Queues `bytes`; returns at once while the write queue is under the high-water mark, otherwise once it has
    /// drained below the low-water mark. Throws if the connection is closed or was shut for writing.
    public func write(_ bytes: [UInt8]) async throws(TransportError) {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, TransportError>, Never>) in
            connection.queue.async { [self] in
                switch output {
                case .shut:
                    continuation.resume(returning: .failure(.io("the connection was shut down for writing")))
                    return
                case .failed(let error):
                    continuation.resume(returning: .failure(error))
                    return
                case .open:
                    break
                }
                connection.write(bytes)
                if case .failed(let error) = output {
                    continuation.resume(returning: .failure(error))
                } else if connection.isClosed {
                    continuation.resume(returning: .failure(.connectionClosed))
                } else if connection.pendingWriteBytes <= connection.limits.writeBufferHighWater {
                    continuation.resume(returning: .success(()))
                } else {
                    writeWaiter = continuation
                }
            }
        }
        try result.get()
    }

    private func resumeWriter(_ result: Result<Void, TransportError>) {
        let waiter = writeWaiter
        writeWaiter = nil
        waiter?.resume(returning: result)
    }

    /// Sends what is queued, then FIN (half-close); reading goes on until the peer finishes.
    public func shutdownWrite() {
        connection.queue.async { [self] in
            if case .open = output { output = .shut }
            connection.shutdownWrite()
        }
    }

    // MARK: - TLS and closing

    /// Upgrades to TLS as the client after the peer's go-ahead. Unread plaintext is discarded (RFC 3207 §4).
    public func startTLS(context: TLSContext, serverName: String?) async throws(TransportError) {
        try await upgrade { [self] done in
            connection.startTLS(context: context, serverName: serverName, completion: done)
        }
    }

    /// Sends the go-ahead reply (e.g. "220 2.0.0 Ready to start TLS\r\n") and switches to TLS as the server in
    /// one step on the connection's queue, so the client's ClientHello can never land in the plaintext buffer.
    /// Plaintext the client pipelined after its STARTTLS command is discarded (RFC 3207 §4).
    public func startServerTLS(context: TLSContext, goAhead: [UInt8]) async throws(TransportError) {
        try await upgrade { [self] done in
            connection.write(goAhead)
            connection.startServerTLS(context: context, completion: done)
        }
    }

    private func upgrade(
        _ begin: @escaping @Sendable (@escaping (TransportError?) -> Void) -> Void
    ) async throws(TransportError) {
        let error = await withCheckedContinuation { (continuation: CheckedContinuation<TransportError?, Never>) in
            connection.queue.async { [self] in
                framer.discardBuffered()
                begin { continuation.resume(returning: $0) }
            }
        }
        if let error { throw error }
    }

    /// The negotiated TLS version, or nil for plaintext.
    public var tlsProtocolVersion: String? {
        get async { await onQueue { $0.tlsProtocolVersion } }
    }

    /// The peer's address.
    public var remoteAddress: HostPort? {
        get async { await onQueue { $0.remoteAddress } }
    }

    /// The local address.
    public var localAddress: HostPort? {
        get async { await onQueue { $0.localAddress } }
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (Connection) -> T) async -> T {
        await withCheckedContinuation { continuation in
            connection.queue.async { [connection] in continuation.resume(returning: body(connection)) }
        }
    }

    /// Closes now; waiting reads and writes then fail. Safe to call more than once.
    public func close() {
        connection.queue.async { [connection] in connection.close() }
    }
}
