// FuzzTargets: POP3 client input (the server side and the command parser).
import POP3

/// A client's bytes to the POP3 server side, with a three-message maildrop that answers at once.
enum POP3ServerFuzz {
    /// Canonical message text (CRLF lines, one starting with a dot, so the stuffing is exercised).
    static let message: [UInt8] = Array("Subject: fuzz\r\n\r\n.hidden dot\r\nbody\r\n".utf8)

    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.pop3Server
        let parser = POP3CommandParser()
        for line in input.lines { _ = try? parser.parse(line: line) }

        var machine = POP3ServerSide(
            configuration: .init(
                tlsAvailable: input.option(0), clientIsLoopback: !input.option(1), allowPlaintext: input.option(2)))
        let maildrop = (0..<3).map { POP3ServerSide.MaildropEntry(uidl: "1.\($0 + 1)", size: message.count) }
        driveMachine(
            input, target, connected: machine.handle(.connected), received: { machine.handle(.received($0)) }
        ) { action in
            switch action {
            case .send(let bytes):
                requireWholeLines(bytes, target)
                return .next([])
            case .startTLS:
                return .next(machine.handle(.tlsStarted))
            case .verify:
                return .next(machine.handle(
                    input.option(3) ? .loginSucceeded(.maildrop(maildrop)) : .loginFailed(.authenticationFailed)))
            case .retrieve(let index, _):
                require(maildrop.indices.contains(index), target, "RETR/TOP of message \(index) that does not exist")
                require(!machine.deleted.contains(index), target, "RETR/TOP of a message marked deleted")
                if input.option(4) { return .next(machine.handle(.retrieveFinished(.temporary("fuzz: upstream gone")))) }
                return .next(machine.handle(.messageData(message)) + machine.handle(.retrieveFinished(nil)))
            case .commit(let deleting):
                require(deleting.allSatisfy(maildrop.indices.contains), target, "DELE of messages that do not exist")
                return .next(machine.handle(.commitFinished(input.option(5) ? .permanent("fuzz") : nil)))
            case .relay, .close:
                return .stop
            }
        }
    }
}
