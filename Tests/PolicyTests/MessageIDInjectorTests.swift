// Tests for Policy.MessageIDInjector: header hold-back and Message-ID injection, whatever the chunking.

import MailCore
import Policy
import Testing

@Suite("MessageIDInjector")
struct MessageIDInjectorTests {
    static let generated = "<generated-1@contoso.test>"

    /// Feeds `message` in chunks of `chunk` bytes; returns everything forwarded and the injector.
    static func run(_ message: [UInt8], chunk: Int, bound: Int = MessageID.headerScanLimit)
        -> (out: [UInt8], injector: MessageIDInjector)
    {
        var injector = MessageIDInjector(generatedID: generated, maximumHeaderCount: bound)
        var out: [UInt8] = []
        var index = 0
        while index < message.count {
            let end = min(message.count, index + chunk)
            out += injector.append(Array(message[index..<end]))
            index = end
        }
        out += injector.finish()
        return (out, injector)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func keepsAnExistingMessageID() {
        let message = Self.bytes("From: a@b.c\r\nMessage-ID: <abc@b.c>\r\nSubject: x\r\n\r\nbody\r\n")
        let (out, injector) = Self.run(message, chunk: 1 << 20)
        #expect(out == message)
        #expect(injector.messageID == "<abc@b.c>")
        #expect(injector.state == .keptOwnID)
    }

    @Test func injectsAtTheTopWhenMissing() {
        let message = Self.bytes("From: a@b.c\r\nSubject: x\r\n\r\nMessage-ID: <in-body@b.c>\r\n")
        let (out, injector) = Self.run(message, chunk: 7)
        #expect(out == Self.bytes("Message-ID: \(Self.generated)\r\n") + message)
        #expect(injector.messageID == Self.generated)
        #expect(injector.state == .injectedID)
    }

    @Test func readsAFoldedMessageID() {
        let message = Self.bytes("Subject: x\r\nMessage-ID:\r\n  <folded@b.c>\r\nTo: y@z\r\n\r\nbody")
        let (out, injector) = Self.run(message, chunk: 3)
        #expect(out == message)
        #expect(injector.messageID == "<folded@b.c>")
    }

    @Test func acceptsBareLineFeeds() {
        let message = Self.bytes("message-id: <lf@b.c>\nSubject: x\n\nbody\n")
        let (out, injector) = Self.run(message, chunk: 1)
        #expect(out == message)
        #expect(injector.messageID == "<lf@b.c>")
    }

    @Test func malformedMessageIDCountsAsMissing() {
        for value in ["no-brackets@b.c", "<no-at-sign>", "<>", "<a b@c>", ""] {
            let message = Self.bytes("Message-ID: \(value)\r\n\r\nbody")
            let (out, injector) = Self.run(message, chunk: 5)
            #expect(injector.state == .injectedID, "value \(value)")
            #expect(out == Self.bytes("Message-ID: \(Self.generated)\r\n") + message)
        }
    }

    @Test func headerLongerThanTheBoundGetsAnIDAtTheTopAnyway() {
        // A Message-ID inside the bound, but the header block does not end before it.
        var message = Self.bytes("Message-ID: <early@b.c>\r\n")
        for index in 0..<200 {
            message += Self.bytes("X-Filler-\(index): " + String(repeating: "a", count: 60) + "\r\n")
        }
        message += Self.bytes("\r\nbody\r\n")
        let bound = 4_096
        var injector = MessageIDInjector(generatedID: Self.generated, maximumHeaderCount: bound)
        var out: [UInt8] = []
        var maximumHeld = 0
        for byte in message {
            out += injector.append([byte])
            maximumHeld = max(maximumHeld, injector.heldCount)
        }
        out += injector.finish()
        #expect(out == Self.bytes("Message-ID: \(Self.generated)\r\n") + message)
        #expect(injector.messageID == Self.generated)
        #expect(maximumHeld <= bound + 1)
    }

    @Test func messageWithoutBody() {
        let withID = Self.bytes("Message-ID: <nobody@b.c>\r\nSubject: x\r\n")
        let (out1, injector1) = Self.run(withID, chunk: 4)
        #expect(out1 == withID)
        #expect(injector1.messageID == "<nobody@b.c>")

        let withoutID = Self.bytes("Subject: only a header")
        let (out2, injector2) = Self.run(withoutID, chunk: 4)
        #expect(out2 == Self.bytes("Message-ID: \(Self.generated)\r\n") + withoutID)
        #expect(injector2.messageID == Self.generated)
    }

    @Test func emptyMessageAndEmptyHeader() {
        let (out1, injector1) = Self.run([], chunk: 1)
        #expect(out1 == Self.bytes("Message-ID: \(Self.generated)\r\n"))
        #expect(injector1.state == .injectedID)

        let bodyOnly = Self.bytes("\r\nMessage-ID: <body@b.c>\r\n")
        let (out2, injector2) = Self.run(bodyOnly, chunk: 1)
        #expect(injector2.state == .injectedID)
        #expect(out2 == Self.bytes("Message-ID: \(Self.generated)\r\n") + bodyOnly)
    }

    @Test func oneByteChunksGiveTheSameOutputAsOneShot() {
        let messages = [
            "From: a@b.c\r\nMessage-ID: <x@y>\r\n\r\nline\r\n.\r\n",
            "From: a@b.c\r\nSubject: none\r\n\r\nline\r\n",
            "Subject: mixed\n\r\nbody",
            "Subject: tricky\r\nX: \r\n \r\n\r\nbody",
            "\n",
            "Message-ID: <x@y>",
        ]
        for text in messages {
            let message = Self.bytes(text)
            let oneShot = Self.run(message, chunk: message.count + 1)
            for size in [1, 2, 3, 13] {
                let chunked = Self.run(message, chunk: size)
                #expect(chunked.out == oneShot.out, "chunk \(size) of \(text.debugDescription)")
                #expect(chunked.injector.messageID == oneShot.injector.messageID)
            }
        }
    }

    @Test func bodyBytesPassStraightThroughAfterTheDecision() {
        var injector = MessageIDInjector(generatedID: Self.generated)
        #expect(injector.append(Self.bytes("Subject: a\r\n")) == [])
        let afterHeader = injector.append(Self.bytes("\r\nfirst"))
        #expect(afterHeader == Self.bytes("Message-ID: \(Self.generated)\r\nSubject: a\r\n\r\nfirst"))
        #expect(injector.append(Self.bytes("second")) == Self.bytes("second"))
        #expect(injector.heldCount == 0)
        #expect(injector.finish() == [])
    }

    @Test func hostileHeaderBytesDoNotConfuseTheScanner() {
        let message: [UInt8] = [0x00, 0xFF, 0x0D, 0x0D, 0x0A, 0x4D, 0x3A, 0x0D, 0x0A, 0x0D, 0x0A, 0x01]
        let (out, injector) = Self.run(message, chunk: 1)
        #expect(injector.state == .injectedID)
        #expect(out == Self.bytes("Message-ID: \(Self.generated)\r\n") + message)
    }
}

@Suite("SentCopyDecision")
struct SentCopyDecisionTests {
    @Test func modes() {
        #expect(SentCopyDecision.needsJob(mode: .auto, hasIMAPEndpoint: true))
        #expect(SentCopyDecision.needsJob(mode: .always, hasIMAPEndpoint: true))
        #expect(!SentCopyDecision.needsJob(mode: .never, hasIMAPEndpoint: true))
        #expect(!SentCopyDecision.needsJob(mode: .always, hasIMAPEndpoint: false))
        #expect(SentCopyDecision.firstStep(mode: .auto) == .searchFolder)
        #expect(SentCopyDecision.firstStep(mode: .always) == .append)
        #expect(SentCopyDecision.firstStep(mode: .never) == .finished(.disabled))
    }

    @Test func searchResult() {
        #expect(SentCopyDecision.afterSearch(foundUIDs: []) == .append)
        #expect(SentCopyDecision.afterSearch(foundUIDs: [7]) == .finished(.skipped))
        #expect(SentCopyDecision.afterSearch(foundUIDs: [7, 9]) == .finished(.skipped))
    }

    @Test func retries() {
        let delays: [Double] = [5, 30, 120]
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 1, delays: delays) == 5)
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 3, delays: delays) == 120)
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 4, delays: delays) == nil)
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 0, delays: delays) == nil)
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 1, delays: []) == nil)
        #expect(SentCopyDecision.retryDelay(afterFailedAttempts: 1, delays: [-3]) == 0)
    }
}
