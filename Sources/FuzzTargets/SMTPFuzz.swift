// FuzzTargets: SMTP client input (the server side and the command parser) and DATA transparency.
import MailCore
import SMTP

/// A client's bytes to the SMTP server side, with an upstream that answers every step at once.
enum SMTPServerFuzz {
    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.smtpServer
        for line in input.lines { _ = try? SMTPCommand.parse(line) }

        var extensions = SMTPExtensions()
        extensions.pipelining = true
        extensions.eightBitMIME = true
        extensions.chunking = input.option(0)
        extensions.smtpUTF8 = input.option(1)
        extensions.maximumSize = 65_536
        var limits = Limits.standard
        limits.smtpBareNewline = input.option(2) ? .normalize : .reject
        var machine = SMTPServerSide(
            configuration: .init(
                hostname: "mailgate.fuzz", tlsAvailable: input.option(3), clientIsLoopback: true,
                relayAllowed: input.option(4), relayAccount: "relay@contoso.test", maximumMessageSize: 65_536,
                upstreamExtensions: extensions, maximumRecipients: 5, limits: limits,
                makeAuthExchange: { _ in nil }))
        var inMessage = false
        var chunkedMessage = false
        var messageBytes = 0
        var envelopeSteps = 0
        driveMachine(
            input, target, connected: machine.handle(.connected), received: { machine.handle(.received($0)) }
        ) { action in
            switch action {
            case .reply(let reply):
                requireWholeLines(reply.encode(), target)
                require((200..<600).contains(reply.code), target, "reply code \(reply.code)")
            case .startTLS:
                return .next(machine.handle(.tlsStarted))
            case .verifyCredentials:
                return .next(machine.handle(.authResult(ok: input.option(5), account: "alice@contoso.test")))
            case .forwardMail, .forwardRcpt:
                envelopeSteps += 1
                let refused = input.option(6) && envelopeSteps % 3 == 0
                return .next(machine.handle(
                    .upstreamReply(refused ? SMTPReply(code: 550, "5.1.1 refused") : SMTPReply(code: 250, "2.0.0 OK"))))
            case .beginData:
                (inMessage, chunkedMessage) = (true, false)
                return .next(machine.handle(.upstreamReply(SMTPReply(code: 354, "go ahead"))))
            case .beginChunkedData:
                (inMessage, chunkedMessage) = (true, true)
            case .messageBytes(let bytes):
                require(inMessage, target, "message bytes outside a message")
                messageBytes += bytes.count
                require(messageBytes <= 65_536 + 2, target, "\(messageBytes) message bytes passed the size bound")
                // DATA text never carries a NUL on (BDAT octets are the client's own, passed as they are).
                if !chunkedMessage { require(!bytes.contains(0), target, "a NUL byte of DATA passed on") }
            case .endOfMessage:
                require(inMessage, target, "an end of message without a message")
                (inMessage, messageBytes) = (false, 0)
                return .next(machine.handle(.upstreamReply(SMTPReply(code: 250, "2.0.0 queued"))))
            case .abortMessage, .resetUpstream:
                (inMessage, messageBytes) = (false, 0)
            case .close:
                return .stop
            }
            return .next([])
        }
    }
}

/// DATA transparency in both directions.
enum DotStuffingFuzz {
    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.dotStuffing
        let policy: BareNewlinePolicy = input.option(0) ? .normalize : .reject

        // Un-stuffing: the same message, end and leftover whatever the chunking.
        let whole = unstuff([input.payload], policy: policy)
        let chunked = unstuff(input.chunks, policy: policy)
        require(whole == chunked, target, "DotUnstuffer's result depends on the chunking")

        // Stuffing: the output never holds an end of data before the terminator, for any reading of line ends.
        var stuffer = DotStuffer()
        var stuffed: [UInt8] = []
        for chunk in input.chunks { stuffed += stuffer.stuff(chunk) }
        stuffed += stuffer.finish()
        requireNoEarlyEnd(stuffed)

        // Round trip: a canonical message (no NUL, CR and LF only as CRLF) comes back as it was, CRLF-terminated.
        let canonical = canonicalize(input.payload)
        var again = DotStuffer()
        let wire = again.stuff(canonical) + again.finish()
        let back = unstuff(FuzzInput([input.control] + wire).chunks, policy: .reject)
        let expected = canonical.isEmpty || canonical.suffix(2) == [0x0D, 0x0A] ? canonical : canonical + [0x0D, 0x0A]
        require(back.finished && back.problem == nil, target, "a stuffed canonical message did not end cleanly")
        require(back.message == expected, target, "unstuff(stuff(x)) is not x")
        require(back.leftover.isEmpty, target, "bytes after the terminator of a stuffed message")
    }

    struct Unstuffed: Equatable {
        var message: [UInt8] = []
        var finished = false
        var leftover: [UInt8] = []
        var problem: DotUnstuffer.Problem?
    }

    static func unstuff(_ chunks: [[UInt8]], policy: BareNewlinePolicy) -> Unstuffed {
        var unstuffer = DotUnstuffer(maximumMessageSize: 1 << 20, maximumLineLength: 1 << 20, bareNewline: policy)
        var result = Unstuffed()
        for (index, chunk) in chunks.enumerated() {
            let output = unstuffer.feed(chunk)
            result.message += output.message
            if output.finished {
                result.finished = true
                result.leftover = output.leftover + chunks[(index + 1)...].joined()
                break
            }
        }
        result.problem = unstuffer.problem
        return result
    }

    /// CR and LF only as CRLF, every line start dot doubled, and `.` CRLF only at the very end.
    static func requireNoEarlyEnd(_ wire: [UInt8]) {
        let target = FuzzTarget.dotStuffing
        require(wire.suffix(3) == Array(".\r\n".utf8), target, "the stuffed output does not end in . CRLF")
        let body = wire.dropLast(3)
        require(body.isEmpty || body.suffix(2) == [0x0D, 0x0A], target, "the terminator's dot does not start a line")
        var atLineStart = true
        var previous: UInt8 = 0
        var index = body.startIndex
        while index < body.endIndex {
            let byte = body[index]
            require(byte != 0, target, "a NUL in the stuffed output")
            if byte == 0x0A { require(previous == 0x0D, target, "a bare LF in the stuffed output") }
            if previous == 0x0D { require(byte == 0x0A, target, "a bare CR in the stuffed output") }
            if atLineStart, byte == UInt8(ascii: ".") {
                let next = body.index(after: index)
                require(next < body.endIndex && body[next] == UInt8(ascii: "."), target, "a line start dot not doubled")
                index = body.index(after: next)
                previous = UInt8(ascii: ".")
                atLineStart = false
                continue
            }
            atLineStart = byte == 0x0A
            previous = byte
            index = body.index(after: index)
        }
    }

    /// The payload with NULs dropped and every CR or LF not part of a CRLF made one.
    static func canonicalize(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D || byte == 0x0A {
                out += [0x0D, 0x0A]
                index += byte == 0x0D && index + 1 < bytes.count && bytes[index + 1] == 0x0A ? 2 : 1
                continue
            }
            if byte != 0 { out.append(byte) }
            index += 1
        }
        return out
    }
}
