// GatewayTests/IMAP: what an idle session keeps (issue 8: ≤ 32 KiB per idle pair): the stream scanner drops the
// reader's 64 KiB chunk once drained, and serve's heap trimmer gives ended sessions' memory back.
import Dispatch
import Synchronization
import Testing

@testable import Gateway

@Suite("IMAP idle memory: scanner buffers, heap trimmer")
struct IMAPIdleMemoryTests {
    /// A chunk as Transport's reader hands it over: a few bytes in an array with 64 KiB of capacity.
    static func readerChunk(_ text: String) -> [UInt8] {
        var chunk = [UInt8]()
        chunk.reserveCapacity(65_536)
        chunk += Array(text.utf8)
        return chunk
    }

    @Test("a drained scanner keeps no 64 KiB chunk (the IDLE continuation, a line split across reads, a literal)")
    func drainedScannerKeepsNoChunk() throws {
        var scanner = IMAPStreamScanner(maximumLine: 8_192)
        scanner.append(Self.readerChunk("+ idling\r\n"))
        #expect(try scanner.next() == .line(Array("+ idling\r\n".utf8), first: true, literal: nil))
        #expect(try scanner.next() == nil)
        #expect(scanner.bufferCapacity <= IMAPStreamScanner.retainedCapacity, "\(scanner.bufferCapacity)")

        scanner.append(Self.readerChunk("* 3 EXI"))
        #expect(try scanner.next() == nil)
        scanner.append(Self.readerChunk("STS\r\n"))
        #expect(try scanner.next() == .line(Array("* 3 EXISTS\r\n".utf8), first: true, literal: nil))
        #expect(scanner.bufferCapacity <= IMAPStreamScanner.retainedCapacity, "\(scanner.bufferCapacity)")

        scanner.append(Self.readerChunk("* 1 FETCH (BODY[] {5}\r\nhello)\r\n"))
        var events: [IMAPStreamScanner.Event] = []
        while let event = try scanner.next() { events.append(event) }
        #expect(events.count == 4, "\(events)")
        #expect(events.last == .line(Array(")\r\n".utf8), first: false, literal: nil))
        #expect(scanner.bufferCapacity <= IMAPStreamScanner.retainedCapacity, "\(scanner.bufferCapacity)")
        #expect(scanner.isAtBoundary)
    }

    /// Runs `counts` through a trimmer's checks; returns which checks trimmed.
    static func trims(_ counts: [Int], minimumDrop: Int = 8) -> [Bool] {
        let queue = DispatchQueue(label: "test.heap-trim")
        let current = Mutex(0)
        let calls = Mutex(0)
        let trimmer = HeapTrimmer(
            queue: queue, minimumDrop: minimumDrop, openSessions: { current.withLock { $0 } },
            trim: { calls.withLock { $0 += 1 } })
        var out: [Bool] = []
        for count in counts {
            current.withLock { $0 = count }
            out.append(queue.sync { trimmer.check() })
        }
        #expect(calls.withLock { $0 } == out.filter { $0 }.count)
        #expect(queue.sync { trimmer.trims } == out.filter { $0 }.count)
        return out
    }

    @Test("the heap trimmer trims once sessions ended (a drop of 8 or more, or to none), never while they only grow")
    func heapTrimmerDecisions() {
        #expect(Self.trims([0, 0, 0]) == [false, false, false])
        #expect(Self.trims([10, 500, 1_000, 1_000]) == [false, false, false, false], "growing or steady: in use")
        #expect(Self.trims([1_000, 0, 0]) == [false, true, false], "all ended: one trim")
        #expect(Self.trims([1_000, 995, 990, 980]) == [false, false, true, true], "a slow drain adds up")
        #expect(Self.trims([3, 2]) == [false, false], "one of three ended: not worth it")
        #expect(Self.trims([3, 0]) == [false, true], "the last ones ended")
        #expect(Self.trims([100, 50, 80, 40]) == [false, true, false, true])
    }
}
