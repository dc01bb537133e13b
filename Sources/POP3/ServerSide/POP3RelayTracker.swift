// POP3: the relayed TRANSACTION state (incoming = "pop3"): client commands go upstream, answers come back in order.

/// Sits between a logged-in client and the upstream POP3 session. Client command lines are checked (bounded,
/// parsed) and sent upstream in their canonical form; commands that make no sense after login (USER, PASS, AUTH,
/// STLS, APOP) and malformed lines are answered `-ERR` here. Upstream answers are passed through as raw bytes,
/// chunk by chunk, with multi-line bodies followed only to find their end (a RETR is never held); the body of
/// CAPA is collected and rewritten so the client is not offered what only MailGate may use (SASL, STLS, USER,
/// IMPLEMENTATION). Local answers wait for the upstream answers before them, so pipelined commands are answered
/// in order.
public struct POP3RelayTracker: Sendable {
    private enum Expected: Sendable {
        case upstream(POP3Verb, multiline: Bool)
        case local([UInt8])
    }

    private enum Reading: Sendable {
        case status
        case body(BodyPosition)
        case capa
    }

    private enum BodyPosition: Sendable {
        case lineStart, middle, dot, dotCR
    }

    public let commandLine: Int
    public let responseLine: Int
    private let parser: POP3CommandParser
    private var expected: [Expected] = []
    private var reading = Reading.status
    private var clientInput: [UInt8] = []
    private var discarding = false
    private var upstreamLine: [UInt8] = []
    private var capaBody = POP3MultilineReader(maximumSize: 65_536)
    private var capaData: [UInt8] = []
    /// The client sent QUIT; what follows is ignored.
    public private(set) var quitSent = false
    /// Errors answered here (bad lines, commands of other states).
    public private(set) var errorCount = 0
    /// Octets of RETR bodies relayed as the server sent them (stuffed), without their terminating `.` line.
    public private(set) var retrievedOctets = 0

    /// Tags withheld from the client's CAPA after login.
    public static let withheldCapabilities: Set<String> = ["SASL", "STLS", "USER", "IMPLEMENTATION", "LOGIN-DELAY"]

    public init(commandLine: Int = POP3Limits.rfcCommandLine, responseLine: Int = 16_384) {
        self.commandLine = commandLine
        self.responseLine = responseLine
        self.parser = POP3CommandParser(maximumCommandLength: commandLine)
    }

    /// Responses still owed to the client.
    public var pendingResponses: Int { expected.count }

    // MARK: - Client side

    /// Bytes from the client: what goes upstream now, and what the client gets now.
    public mutating func client(_ bytes: some Collection<UInt8>) -> (toUpstream: [UInt8], toClient: [UInt8]) {
        guard !quitSent else { return ([], []) }
        clientInput.append(contentsOf: bytes)
        var up: [UInt8] = []
        while !quitSent {
            guard let lineFeed = clientInput.firstIndex(of: UInt8(ascii: "\n")) else {
                if !discarding && clientInput.count > commandLine {
                    discarding = true
                    local(Self.err("Command line too long (at most \(commandLine) octets with CRLF)"))
                }
                if discarding { clientInput.removeAll(keepingCapacity: true) }
                break
            }
            var line = Array(clientInput[..<lineFeed])
            clientInput.removeFirst(lineFeed + 1)
            if discarding {
                discarding = false
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            guard line.count + 2 <= commandLine else {
                local(Self.err("Command line too long (at most \(commandLine) octets with CRLF)"))
                continue
            }
            let command: POP3Command
            do throws(POP3Error) {
                command = try parser.parse(line: line)
            } catch {
                switch error {
                case .unknownCommand(let keyword): local(Self.err("Unknown command \"\(keyword.prefix(20))\""))
                case .unsupportedCommand: local(Self.err("APOP is not supported"))
                case .invalidArgument(let command, let reason): local(Self.err("\(command.isEmpty ? "Invalid command" : command): \(reason)"))
                default: local(Self.err("Invalid command"))
                }
                continue
            }
            switch command.verb {
            case .user, .pass, .auth, .stls, .apop:
                local(Self.err("Already logged in"))
                continue
            case .quit:
                quitSent = true
                clientInput = []
            default:
                break
            }
            expected.append(.upstream(command.verb, multiline: command.hasMultilineResponse))
            up += POP3CommandEncoder.encode(command)
        }
        return (up, flushLocals())
    }

    private mutating func local(_ bytes: [UInt8]) {
        errorCount += 1
        expected.append(.local(bytes))
    }

    private static func err(_ text: String) -> [UInt8] {
        POP3Reply(status: .err, text: POP3ServerSide.printable(text, maximumLength: 200)).encoded
    }

    private mutating func flushLocals() -> [UInt8] {
        var out: [UInt8] = []
        while case .local(let bytes)? = expected.first {
            out += bytes
            expected.removeFirst()
        }
        return out
    }

    // MARK: - Upstream side

    /// A protocol violation by the upstream: close both sides.
    public struct Violation: Error, Sendable, Equatable {
        public let reason: String
    }

    /// Bytes from upstream: what the client gets now.
    public mutating func upstream(_ bytes: some Collection<UInt8>) throws(Violation) -> [UInt8] {
        var out: [UInt8] = []
        var rest = ArraySlice(bytes)
        while !rest.isEmpty {
            guard case .upstream(let verb, let multiline)? = expected.first else {
                throw Violation(reason: "the server sent data no command asked for")
            }
            switch reading {
            case .status:
                guard let lineFeed = rest.firstIndex(of: UInt8(ascii: "\n")) else {
                    upstreamLine += rest
                    rest = []
                    if upstreamLine.count > responseLine { throw Violation(reason: "the server sent a status line over \(responseLine) octets") }
                    continue
                }
                upstreamLine += rest[...lineFeed]
                rest = rest[(lineFeed + 1)...]
                guard upstreamLine.count <= responseLine else { throw Violation(reason: "the server sent a status line over \(responseLine) octets") }
                let line = upstreamLine
                upstreamLine = []
                let reply: POP3Reply
                do throws(POP3Error) {
                    reply = try POP3Reply.parse(line: line.dropLast())
                } catch {
                    throw Violation(reason: error.description)
                }
                guard reply.status != .continuation else { throw Violation(reason: "the server sent a continuation") }
                out += line
                if reply.status == .ok && multiline {
                    if verb == .capa {
                        reading = .capa
                        capaBody = POP3MultilineReader(maximumSize: 65_536)
                        capaData = []
                    } else {
                        reading = .body(.lineStart)
                    }
                } else {
                    expected.removeFirst()
                    out += flushLocals()
                }
            case .capa:
                let result: (data: [UInt8], consumedCount: Int, isComplete: Bool)
                do throws(POP3Error) {
                    result = try capaBody.read(rest)
                } catch {
                    throw Violation(reason: error.description)
                }
                capaData += result.data
                rest = rest.dropFirst(result.consumedCount)
                if result.isComplete {
                    out += Self.rewrittenCapabilities(capaData)
                    reading = .status
                    expected.removeFirst()
                    out += flushLocals()
                }
            case .body(var position):
                var index = rest.startIndex
                var ended = false
                while index < rest.endIndex {
                    let byte = rest[index]
                    switch position {
                    case .middle:
                        if let lineFeed = rest[index...].firstIndex(of: UInt8(ascii: "\n")) {
                            index = lineFeed + 1
                            position = .lineStart
                        } else {
                            index = rest.endIndex
                        }
                        continue
                    case .lineStart:
                        position = byte == UInt8(ascii: ".") ? .dot : byte == UInt8(ascii: "\n") ? .lineStart : .middle
                    case .dot:
                        if byte == UInt8(ascii: "\r") {
                            position = .dotCR
                        } else if byte == UInt8(ascii: "\n") {
                            ended = true
                        } else {
                            position = .middle
                        }
                    case .dotCR:
                        if byte == UInt8(ascii: "\n") { ended = true } else { position = .middle }
                    }
                    index += 1
                    if ended { break }
                }
                out += rest[rest.startIndex..<index]
                if verb == .retr { retrievedOctets += index - rest.startIndex - (ended ? (position == .dotCR ? 3 : 2) : 0) }
                rest = rest[index...]
                if ended {
                    reading = .status
                    expected.removeFirst()
                    out += flushLocals()
                } else {
                    reading = .body(position)
                }
            }
        }
        return out
    }

    /// The upstream's CAPA body minus what the client must not use, as a stuffed body with its terminator.
    static func rewrittenCapabilities(_ body: [UInt8]) -> [UInt8] {
        let capabilities = POP3Capabilities.parse(body)
        var out: [UInt8] = []
        for (line, entry) in zip(capabilities.lines, capabilities.entries) where !withheldCapabilities.contains(entry.tag) {
            if line.hasPrefix(".") { out.append(UInt8(ascii: ".")) }
            out += Array(line.utf8) + [0x0D, 0x0A]
        }
        return out + Array(".\r\n".utf8)
    }
}
