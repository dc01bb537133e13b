// MailCore: a bounded first-in-first-out byte buffer that consumes from the front without shifting on every read.

/// A bounded FIFO of bytes: appends at the back, reads and drops at the front in amortised O(1) per byte.
///
/// Socket readers and writers consume a little from the front at a time; `Array.removeFirst(n)` would move the
/// whole rest every time. This queue keeps a read offset instead and compacts only once at least half of the
/// storage is consumed. Every queue has a `maximumCount`: an append that would pass it throws and changes nothing.
public struct ByteQueue: Sendable {
    /// The most bytes the queue may hold at once (STYLE.md rule 3: nothing is buffered without a bound).
    public let maximumCount: Int

    private var storage: [UInt8] = []
    private var head: Int = 0

    /// Creates an empty queue that refuses to grow past `maximumCount` bytes.
    public init(maximumCount: Int) {
        precondition(maximumCount >= 0, "a ByteQueue bound cannot be negative")
        self.maximumCount = maximumCount
    }

    /// Bytes currently queued.
    public var count: Int { storage.count - head }

    /// True when no byte is queued.
    public var isEmpty: Bool { head == storage.count }

    /// Room left before the bound.
    public var remainingCapacity: Int { maximumCount - count }

    /// Appends `bytes` at the back, or throws without appending anything if the bound would be passed.
    public mutating func append(contentsOf bytes: some Collection<UInt8>) throws(ByteQueueOverflow) {
        let incoming = bytes.count
        guard incoming <= maximumCount - count else {
            throw ByteQueueOverflow(maximumCount: maximumCount, attemptedCount: count + incoming)
        }
        if head == storage.count && head > 0 {
            storage.removeAll(keepingCapacity: true)
            head = 0
        }
        storage.append(contentsOf: bytes)
    }

    /// The byte `offset` places from the front.
    public subscript(offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < count, "ByteQueue offset out of range")
        return storage[head + offset]
    }

    /// The offset (from the front) of the first `byte` at or after `start` and before `end`, or nil.
    ///
    /// `end` defaults to the queue's count; both are clamped to the queued bytes. Callers remember where they
    /// stopped scanning, so a line dripped in one byte at a time is still scanned once.
    public func firstOffset(of byte: UInt8, from start: Int = 0, before end: Int? = nil) -> Int? {
        let upper = min(end ?? count, count)
        let lower = max(start, 0)
        guard lower < upper else { return nil }
        return storage.withUnsafeBufferPointer { buffer -> Int? in
            var index = head + lower
            let stop = head + upper
            while index < stop {
                if buffer[index] == byte { return index - head }
                index += 1
            }
            return nil
        }
    }

    /// Removes and returns up to `maximum` bytes from the front.
    public mutating func popFirst(_ maximum: Int) -> [UInt8] {
        let n = min(max(maximum, 0), count)
        let out = Array(storage[head..<(head + n)])
        advance(n)
        return out
    }

    /// Removes up to `n` bytes from the front without copying them.
    public mutating func dropFirst(_ n: Int) {
        advance(min(max(n, 0), count))
    }

    /// Removes and returns everything queued.
    public mutating func removeAll() -> [UInt8] {
        popFirst(count)
    }

    /// Calls `body` with the queued bytes as one contiguous region (for `send(2)` without a copy).
    public func withUnsafeReadableBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        try storage.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[head..<raw.count]))
        }
    }

    private mutating func advance(_ n: Int) {
        head += n
        if head == storage.count {
            // Idle connections should cost little: keep only a small allocation once drained.
            storage.removeAll(keepingCapacity: storage.capacity <= 4_096)
            head = 0
        } else if head >= 4_096 && head * 2 >= storage.count {
            storage.removeSubrange(0..<head)
            head = 0
        }
    }
}

/// An append that would have passed a `ByteQueue` bound; nothing was appended.
public struct ByteQueueOverflow: MailGateError, Equatable {
    /// The queue's bound.
    public let maximumCount: Int
    /// The count the append would have reached.
    public let attemptedCount: Int

    public init(maximumCount: Int, attemptedCount: Int) {
        self.maximumCount = maximumCount
        self.attemptedCount = attemptedCount
    }

    public var description: String {
        "A buffer would have grown to \(attemptedCount) bytes, over its bound of \(maximumCount) bytes; "
            + "the peer sent more than allowed, so close the connection or raise the limit."
    }
}
