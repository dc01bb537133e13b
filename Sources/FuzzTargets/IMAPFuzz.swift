// FuzzTargets: IMAP client input (before and after login) and upstream responses.
import IMAP
import MailCore

/// A client's bytes to the pre-login machine; once it hands over, the rest goes to the proxy's framer.
enum IMAPServerFuzz {
    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.imapServer
        var machine = IMAPServerSide(
            configuration: .init(
                tlsAvailable: input.option(0), clientIsLoopback: !input.option(1), allowPlaintext: input.option(2)))
        var handedOver: [UInt8]?
        let rest = driveMachine(
            input, target, connected: machine.handle(.connected), received: { machine.handle(.received($0)) }
        ) { action in
            switch action {
            case .send(let bytes):
                requireWholeLines(bytes, target)
                return .next([])
            case .startTLS:
                return .next(machine.handle(.tlsStarted))
            case .verify(let username, _, _):
                require(!username.isEmpty, target, "a login to verify without a user name")
                let result: IMAPServerSide.Input =
                    input.option(3)
                    ? .loginSucceeded(capabilities: [.imap4rev1, .literalPlus])
                    : .loginFailed(input.option(4) ? .authenticationFailed : .unavailable(reason: "fuzz\r\n\u{0}"))
                return .next(machine.handle(result))
            case .authenticated(_, let leftover):
                handedOver = leftover
                return .stop
            case .close:
                return .stop
            }
        }
        guard let handedOver else { return }
        var progress = ProgressGuard(target, inputSize: input.payload.count)
        // After login the proxy frames commands with the full limits and LITERAL+ (as Exchange offers it).
        var framer = IMAPCommandFramer(limits: .standard, literalPlusAdvertised: true)
        framer.append(handedOver)
        drain(&framer, input: input, progress: &progress)
        for chunk in rest {
            framer.append(chunk)
            drain(&framer, input: input, progress: &progress)
        }
    }

    /// Takes every event the framer has, deciding literal requests by the control byte as a proxy would.
    private static func drain(_ framer: inout IMAPCommandFramer, input: FuzzInput, progress: inout ProgressGuard) {
        let target = FuzzTarget.imapServer
        var streaming = 0
        while true {
            progress.tick()
            let event: IMAPCommandFramer.Event?
            do throws(IMAPError) {
                event = try framer.next()
            } catch {
                return  // the session answers BYE and closes
            }
            guard let event else { return }
            switch event {
            case .literalRequest:
                if input.option(5) { framer.refuseLiteral() } else { framer.acceptLiteral() }
            case .streamBegin:
                streaming += 1
            case .streamBytes(let bytes):
                require(streaming > 0, target, "literal octets outside a streamed literal")
                require(!bytes.isEmpty, target, "an empty run of literal octets")
            case .streamEnd:
                require(streaming > 0, target, "the end of a streamed literal that never began")
                streaming -= 1
            case .command(let command):
                require(!command.tag.isEmpty, target, "a command without a tag")
                if input.option(6), command.name.uppercased() == "AUTHENTICATE" || command.name.uppercased() == "IDLE" {
                    framer.expectRawLine()
                }
            case .rawLine(let line):
                require(!line.contains(0x0A), target, "a raw line holding a line end")
            case .literalTooLarge, .streamTail, .malformed:
                break
            }
        }
    }
}

/// The upstream's responses: the decoder (whole parsed responses) and the stream framer (what the proxy
/// relays) must each give the same result whatever the chunking.
enum IMAPResponsesFuzz {
    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.imapResponses
        var limits = IMAPLimits.standard
        if input.option(0) { limits.responseLiteral = 4_096 }
        let whole = decode([input.payload], limits: limits, input: input)
        let chunked = decode(input.chunks, limits: limits, input: input)
        require(whole.responses == chunked.responses, target,
            "the decoder's responses depend on the chunking: \(whole.responses.count) whole, \(chunked.responses.count) chunked")
        require(whole.failed == chunked.failed, target, "the decoder fails for one chunking only")

        let wholeFrames = frame([input.payload], limits: limits, input: input)
        let chunkedFrames = frame(input.chunks, limits: limits, input: input)
        require(wholeFrames.bytes == chunkedFrames.bytes, target, "the stream framer's bytes depend on the chunking")
        require(wholeFrames.failed == chunkedFrames.failed, target, "the stream framer fails for one chunking only")

        if let first = try? IMAPResponseParser(limits: limits).parseResponse(input.payload) {
            require(first.consumedCount > 0 && first.consumedCount <= input.payload.count, target,
                "the parser consumed \(first.consumedCount) of \(input.payload.count) bytes")
        }
    }

    private static func decode(_ chunks: [[UInt8]], limits: IMAPLimits, input: FuzzInput)
        -> (responses: [IMAPResponse], failed: Bool)
    {
        var decoder = IMAPResponseDecoder(limits: limits)
        var progress = ProgressGuard(.imapResponses, inputSize: input.payload.count)
        var responses: [IMAPResponse] = []
        for chunk in chunks {
            decoder.append(chunk)
            while true {
                progress.tick()
                do throws(IMAPError) {
                    guard let response = try decoder.next() else { break }
                    responses.append(response)
                } catch {
                    return (responses, true)
                }
            }
        }
        return (responses, false)
    }

    /// The framer's events flattened to the bytes it hands on, so two chunkings compare whatever the run sizes.
    private static func frame(_ chunks: [[UInt8]], limits: IMAPLimits, input: FuzzInput) -> (bytes: [UInt8], failed: Bool) {
        var framer = IMAPResponseStreamFramer(limits: limits)
        var progress = ProgressGuard(.imapResponses, inputSize: input.payload.count)
        var bytes: [UInt8] = []
        for chunk in chunks {
            framer.append(chunk)
            while true {
                progress.tick()
                do throws(IMAPError) {
                    guard let event = try framer.next() else { break }
                    bytes += FuzzEventBytes.of(event)
                } catch {
                    return (bytes, true)
                }
            }
        }
        return (bytes, false)
    }
}

/// The bytes a stream framer event hands on, in order.
enum FuzzEventBytes {
    static func of(_ event: IMAPResponseStreamFramer.Event) -> [UInt8] {
        switch event {
        case .response(let bytes), .streamBytes(let bytes), .streamTail(let bytes): bytes
        case .streamBegin(let prefix, _): prefix
        case .streamEnd: []
        }
    }
}
