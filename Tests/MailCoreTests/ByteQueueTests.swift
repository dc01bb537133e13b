import Testing
import MailCore

@Suite struct ByteQueueTests {
    @Test func fifoOrderAcrossManySmallReads() throws {
        var queue = ByteQueue(maximumCount: 1 << 20)
        var expected: [UInt8] = []
        var got: [UInt8] = []
        for round in 0..<200 {
            let chunk = (0..<(round % 37 + 1)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ round) }
            try queue.append(contentsOf: chunk)
            expected += chunk
            got += queue.popFirst(round % 5 + 3)
        }
        got += queue.removeAll()
        #expect(got == expected)
        #expect(queue.isEmpty)
    }

    @Test func appendPastTheBoundThrowsAndKeepsContents() throws {
        var queue = ByteQueue(maximumCount: 8)
        try queue.append(contentsOf: [1, 2, 3, 4, 5])
        #expect(throws: ByteQueueOverflow(maximumCount: 8, attemptedCount: 9)) {
            try queue.append(contentsOf: [6, 7, 8, 9])
        }
        #expect(queue.count == 5)
        queue.dropFirst(2)
        try queue.append(contentsOf: [6, 7, 8, 9, 10])
        #expect(queue.removeAll() == [3, 4, 5, 6, 7, 8, 9, 10])
    }

    @Test func firstOffsetIsRelativeToTheFrontAndRespectsTheWindow() throws {
        var queue = ByteQueue(maximumCount: 100)
        try queue.append(contentsOf: Array("xxab\ncd\n".utf8))
        queue.dropFirst(2)
        #expect(queue.firstOffset(of: 0x0A) == 2)
        #expect(queue.firstOffset(of: 0x0A, from: 3) == 5)
        #expect(queue.firstOffset(of: 0x0A, from: 3, before: 5) == nil)
        #expect(queue[0] == UInt8(ascii: "a"))
    }

    @Test func readableBytesAfterCompaction() throws {
        var queue = ByteQueue(maximumCount: 1 << 20)
        try queue.append(contentsOf: [UInt8](repeating: 1, count: 10_000))
        try queue.append(contentsOf: [2, 3])
        queue.dropFirst(10_000)
        let seen = queue.withUnsafeReadableBytes { Array($0) }
        #expect(seen == [2, 3])
        #expect(queue.remainingCapacity == (1 << 20) - 2)
    }
}
