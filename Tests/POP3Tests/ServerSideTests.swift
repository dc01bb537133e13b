import MailCore
import Testing
@testable import POP3

/// Drives a `POP3ServerSide` and records what it did.
struct Driver {
    var machine: POP3ServerSide
    var sent: [UInt8] = []
    var others: [POP3ServerSide.Action] = []

    init(_ configuration: POP3ServerSide.Configuration = .init()) {
        machine = POP3ServerSide(configuration: configuration)
        feed(.connected)
    }

    mutating func feed(_ input: POP3ServerSide.Input) {
        for action in machine.handle(input) {
            if case .send(let bytes) = action { sent += bytes } else { others.append(action) }
        }
    }

    mutating func line(_ text: String) { feed(.received(Array((text + "\r\n").utf8))) }

    /// Text sent since the last call, and the non-send actions since then.
    mutating func take() -> (text: String, actions: [POP3ServerSide.Action]) {
        defer { sent = []; others = [] }
        return (String(decoding: sent, as: UTF8.self), others)
    }

    static let list: [POP3ServerSide.MaildropEntry] = [
        .init(uidl: "17.1", size: 120), .init(uidl: "17.2", size: 30), .init(uidl: "17.5", size: 4000),
    ]

    /// Logged in with the three messages of `list`.
    static func inTransaction(_ configuration: POP3ServerSide.Configuration = .init()) -> Driver {
        var driver = Driver(configuration)
        driver.line("USER alice@contoso.com")
        driver.line("PASS secret")
        driver.feed(.loginSucceeded(.maildrop(list)))
        _ = driver.take()
        return driver
    }
}

@Suite struct POP3ServerSideTests {
    enum Start: String, CaseIterable, CustomStringConvertible {
        case authorization, afterUser, remotePlaintext, transaction
        var description: String { rawValue }

        func driver() -> Driver {
            switch self {
            case .authorization: var d = Driver(); _ = d.take(); return d
            case .afterUser: var d = Driver(); d.line("USER alice"); _ = d.take(); return d
            case .remotePlaintext:
                var d = Driver(.init(tlsAvailable: true, clientIsLoopback: false)); _ = d.take(); return d
            case .transaction: return Driver.inTransaction()
            }
        }
    }

    /// Every command in every state that reads commands: the reply's first line and what the session is asked to do.
    static let table: [(Start, String, String, String)] = [
        // state, command, first reply line (prefix), action
        (.authorization, "CAPA", "+OK Capability list follows", ""),
        (.authorization, "USER alice", "+OK Send the password", ""),
        (.authorization, "PASS secret", "-ERR Send USER first", ""),
        (.authorization, "AUTH", "+OK Mechanisms follow", ""),
        (.authorization, "AUTH PLAIN", "+ ", ""),
        (.authorization, "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "", "verify alice AUTH PLAIN"),
        (.authorization, "AUTH XOAUTH2", "-ERR Unsupported authentication mechanism", ""),
        (.authorization, "APOP a b", "-ERR APOP is not supported", ""),
        (.authorization, "STLS", "-ERR STLS is not available here", ""),
        (.authorization, "STAT", "-ERR Log in first", ""),
        (.authorization, "LIST", "-ERR Log in first", ""),
        (.authorization, "LIST 1", "-ERR Log in first", ""),
        (.authorization, "UIDL", "-ERR Log in first", ""),
        (.authorization, "RETR 1", "-ERR Log in first", ""),
        (.authorization, "TOP 1 0", "-ERR Log in first", ""),
        (.authorization, "DELE 1", "-ERR Log in first", ""),
        (.authorization, "RSET", "-ERR Log in first", ""),
        (.authorization, "NOOP", "-ERR Log in first", ""),
        (.authorization, "QUIT", "+OK MailGate POP3 signing off", "close"),
        (.authorization, "XYZZY", "-ERR Unknown command \"XYZZY\"", ""),
        (.authorization, "RETR x", "-ERR RETR: \"x\" is not a valid number", ""),
        (.afterUser, "PASS secret", "", "verify alice USER/PASS"),
        (.afterUser, "USER bob", "+OK Send the password", ""),
        (.afterUser, "QUIT", "+OK", "close"),
        (.afterUser, "STAT", "-ERR Log in first", ""),
        (.remotePlaintext, "CAPA", "+OK Capability list follows", ""),
        (.remotePlaintext, "USER alice", "-ERR [AUTH] Log in only over TLS", ""),
        (.remotePlaintext, "PASS secret", "-ERR [AUTH] Log in only over TLS", ""),
        (.remotePlaintext, "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "-ERR [AUTH] Log in only over TLS", ""),
        (.remotePlaintext, "STLS", "+OK Begin TLS negotiation", "startTLS"),
        (.remotePlaintext, "AUTH", "+OK Mechanisms follow", ""),
        (.transaction, "CAPA", "+OK Capability list follows", ""),
        (.transaction, "STAT", "+OK 3 4150", ""),
        (.transaction, "LIST", "+OK 3 messages (4150 octets)", ""),
        (.transaction, "LIST 2", "+OK 2 30", ""),
        (.transaction, "LIST 4", "-ERR No such message", ""),
        (.transaction, "UIDL", "+OK Unique-id listing follows", ""),
        (.transaction, "UIDL 3", "+OK 3 17.5", ""),
        (.transaction, "UIDL 9", "-ERR No such message", ""),
        (.transaction, "RETR 1", "", "retrieve 0 nil"),
        (.transaction, "RETR 4", "-ERR No such message", ""),
        (.transaction, "TOP 3 5", "", "retrieve 2 5"),
        (.transaction, "TOP 3", "-ERR TOP: it takes 2 argument(s)", ""),
        (.transaction, "DELE 2", "+OK Message 2 deleted", ""),
        (.transaction, "DELE 0", "-ERR DELE: \"0\" is not a valid number", ""),
        (.transaction, "RSET", "+OK Maildrop has 3 messages (4150 octets)", ""),
        (.transaction, "NOOP", "+OK", ""),
        (.transaction, "QUIT", "+OK MailGate POP3 signing off", "close"),
        (.transaction, "USER bob", "-ERR Already logged in", ""),
        (.transaction, "PASS x", "-ERR Already logged in", ""),
        (.transaction, "AUTH PLAIN", "-ERR Already logged in", ""),
        (.transaction, "STLS", "-ERR Already logged in", ""),
        (.transaction, "APOP a b", "-ERR APOP is not supported", ""),
        (.transaction, "HELO", "-ERR Unknown command", ""),
    ]

    static func describe(_ actions: [POP3ServerSide.Action]) -> String {
        actions.map { action -> String in
            switch action {
            case .send: "send"
            case .startTLS: "startTLS"
            case .verify(let user, _, let mechanism): "verify \(user) \(mechanism.rawValue)"
            case .retrieve(let index, let lines): "retrieve \(index) \(lines.map(String.init) ?? "nil")"
            case .commit(let indices): "commit \(indices)"
            case .relay: "relay"
            case .close: "close"
            }
        }.joined(separator: ",")
    }

    @Test(arguments: 0..<table.count)
    func everyCommandInEveryState(row: Int) {
        let (start, command, reply, action) = Self.table[row]
        var driver = start.driver()
        driver.line(command)
        let (text, actions) = driver.take()
        #expect(text.hasPrefix(reply), "\(start) \(command): got \(text.debugDescription)")
        if reply.isEmpty { #expect(text.isEmpty, "\(start) \(command): got \(text.debugDescription)") }
        #expect(Self.describe(actions) == action, "\(start) \(command)")
        #expect(text.isEmpty || text.hasSuffix("\r\n"))
    }

    @Test func greetingAndCapabilitiesPerState() {
        var plain = Driver(.init(tlsAvailable: true, clientIsLoopback: false))
        #expect(plain.take().text == "+OK MailGate POP3 ready\r\n")
        plain.line("CAPA")
        #expect(plain.take().text == "+OK Capability list follows\r\nSTLS\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n")
        plain.line("STLS")
        #expect(plain.take().actions == [.startTLS])
        plain.feed(.tlsStarted)
        plain.line("CAPA")
        #expect(plain.take().text == "+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n")
        var loggedIn = Driver.inTransaction()
        loggedIn.line("CAPA")
        #expect(loggedIn.take().text == "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n")
    }

    @Test func bytesPipelinedBehindSTLSAreDiscarded() {
        var driver = Driver(.init(tlsAvailable: true, clientIsLoopback: false))
        _ = driver.take()
        driver.feed(.received(Array("STLS\r\nUSER injected\r\n".utf8)))
        #expect(driver.take().actions == [.startTLS])
        driver.feed(.received(Array("PASS injected\r\n".utf8)))  // still plaintext: ignored
        driver.feed(.tlsStarted)
        #expect(driver.machine.username == nil)
        driver.line("PASS x")
        #expect(driver.take().text.hasPrefix("-ERR Send USER first"))
    }

    @Test func implicitTLSListsNoSTLS() {
        var driver = Driver(.init(tlsAvailable: true, implicitTLS: true, clientIsLoopback: false))
        _ = driver.take()
        driver.line("CAPA")
        let text = driver.take().text
        #expect(!text.contains("STLS") && text.contains("USER\r\n"))
        driver.line("STLS")
        #expect(driver.take().text.hasPrefix("-ERR TLS is already active"))
    }

    @Test func listingsAndDeletion() {
        var driver = Driver.inTransaction()
        driver.line("LIST")
        #expect(driver.take().text == "+OK 3 messages (4150 octets)\r\n1 120\r\n2 30\r\n3 4000\r\n.\r\n")
        driver.line("UIDL")
        #expect(driver.take().text == "+OK Unique-id listing follows\r\n1 17.1\r\n2 17.2\r\n3 17.5\r\n.\r\n")
        driver.line("DELE 2")
        driver.line("DELE 2")
        #expect(driver.take().text == "+OK Message 2 deleted\r\n-ERR Message 2 is deleted\r\n")
        for command in ["LIST 2", "UIDL 2", "RETR 2", "TOP 2 1"] {
            driver.line(command)
            #expect(driver.take().text == "-ERR Message 2 is deleted\r\n", "\(command)")
        }
        driver.line("STAT")
        driver.line("LIST")
        #expect(driver.take().text == "+OK 2 4120\r\n+OK 2 messages (4120 octets)\r\n1 120\r\n3 4000\r\n.\r\n")
        driver.line("RSET")
        driver.line("STAT")
        #expect(driver.take().text == "+OK Maildrop has 3 messages (4150 octets)\r\n+OK 3 4150\r\n")
    }

    @Test func quitWithDeletionsCommitsThenSignsOff() {
        var driver = Driver.inTransaction()
        driver.line("DELE 3")
        driver.line("DELE 1")
        _ = driver.take()
        driver.line("QUIT")
        #expect(driver.take() == ("", [.commit(deleting: [0, 2])]))
        #expect(driver.machine.state == .update)
        driver.line("NOOP")  // after QUIT: buffered, never answered
        driver.feed(.commitFinished(nil))
        #expect(driver.take() == ("+OK MailGate POP3 signing off (2 messages deleted)\r\n", [.close]))
        #expect(driver.machine.state == .closed)
    }

    @Test func failedCommitSaysSo() {
        var driver = Driver.inTransaction()
        driver.line("DELE 1")
        driver.line("QUIT")
        _ = driver.take()
        driver.feed(.commitFinished(.temporary("the upstream went away")))
        let (text, actions) = driver.take()
        #expect(text.hasPrefix("-ERR [SYS/TEMP] Some deleted messages were not removed (the upstream went away)"))
        #expect(actions == [.close])
    }

    @Test func retrievalStreamsStuffedAndAnnouncesSize() {
        var driver = Driver.inTransaction()
        driver.line("RETR 1")
        #expect(driver.take().actions == [.retrieve(index: 0, bodyLines: nil)])
        driver.line("STAT")  // pipelined: waits for the retrieval
        #expect(driver.take().text.isEmpty)
        driver.feed(.messageData(Array("Subject: x\r\n\r\n.".utf8)))
        driver.feed(.messageData(Array("hidden\r\n.\r\nend".utf8)))
        driver.feed(.retrieveFinished(nil))
        #expect(driver.take().text == "+OK 120 octets\r\nSubject: x\r\n\r\n..hidden\r\n..\r\nend\r\n.\r\n+OK 3 4150\r\n")
        #expect(driver.machine.state == .transaction)
    }

    @Test func retrievalFailureBeforeDataIsAnErrAfterDataACLose() {
        var driver = Driver.inTransaction()
        driver.line("TOP 2 0")
        _ = driver.take()
        driver.feed(.retrieveFinished(.temporary("upstream timeout")))
        #expect(driver.take().text == "-ERR [SYS/TEMP] upstream timeout\r\n")
        driver.line("RETR 2")
        driver.feed(.messageData(Array("partial".utf8)))
        driver.feed(.retrieveFinished(.permanent("gone")))
        let (text, actions) = driver.take()
        #expect(text == "+OK 30 octets\r\npartial")
        #expect(actions == [.retrieve(index: 1, bodyLines: nil), .close])
    }

    @Test func emptyMessageIsJustTheTerminator() {
        var driver = Driver.inTransaction()
        driver.line("RETR 2")
        driver.feed(.retrieveFinished(nil))
        #expect(driver.take().text == "+OK 30 octets\r\n.\r\n")
    }

    @Test func authPlainContinuationAndCancel() {
        var driver = Driver()
        _ = driver.take()
        driver.line("AUTH PLAIN")
        #expect(driver.take().text == "+ \r\n")
        driver.line("*")
        #expect(driver.take().text == "-ERR Authentication cancelled\r\n")
        driver.line("AUTH PLAIN")
        driver.line("AGFsaWNlAHNlY3JldA==")
        let (_, actions) = driver.take()
        #expect(actions == [.verify(username: "alice", password: Redacted("secret"), mechanism: .plain)])
    }

    @Test func authPlainLongResponseOnItsOwnLineFits() {
        // A 1000-character password does not fit an initial response (255 octets) but fits the continuation.
        let password = String(repeating: "p", count: 1000)
        let response = Base64Codec.standard.encode(Array("\u{0}alice\u{0}\(password)".utf8), padding: .required)
        var driver = Driver()
        _ = driver.take()
        driver.line("AUTH PLAIN")
        driver.feed(.received(response + [13, 10]))
        #expect(driver.take().actions == [.verify(username: "alice", password: Redacted(password), mechanism: .plain)])
    }

    @Test(arguments: [
        ("AUTH PLAIN =", "-ERR Malformed PLAIN response"),
        ("AUTH PLAIN !!!!", "-ERR AUTH: the initial response is not base64"),
        ("AUTH PLAIN YWxpY2U=", "-ERR Malformed PLAIN response"),  // "alice": no NULs
        ("AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==", "-ERR [AUTH] Acting as another user is not allowed"),  // bob\0alice\0secret
        ("AUTH PLAIN AGFsaWNlAA==", "-ERR Malformed PLAIN response"),  // empty password
        ("AUTH PLAIN YWxpY2UAYWxpY2UAc2VjcmV0", "verify"),  // alice\0alice\0secret
    ])
    func authPlainInitialResponses(line: String, expected: String) {
        var driver = Driver()
        _ = driver.take()
        driver.line(line)
        let (text, actions) = driver.take()
        if expected == "verify" {
            #expect(actions == [.verify(username: "alice", password: Redacted("secret"), mechanism: .plain)])
        } else {
            #expect(text.hasPrefix(expected), "\(text)")
        }
    }

    @Test func loginFailuresCarryTheirCodes() {
        let cases: [(POP3ServerSide.LoginFailure, String)] = [
            (.authenticationFailed, "-ERR [AUTH] Authentication failed\r\n"),
            (.mustReconnect(email: "a@b.c"), "-ERR [AUTH] The Microsoft 365 sign-in of a@b.c must be renewed: run mailgate account connect a@b.c on the MailGate host\r\n"),
            (.temporary("Microsoft 365 is not reachable"), "-ERR [SYS/TEMP] Microsoft 365 is not reachable; try again later\r\n"),
            (.permanent("No POP3 or IMAP server is configured"), "-ERR [SYS/PERM] No POP3 or IMAP server is configured\r\n"),
            (.inUse("Another POP3 session uses this maildrop"), "-ERR [IN-USE] Another POP3 session uses this maildrop\r\n"),
        ]
        for (failure, expected) in cases {
            var driver = Driver()
            driver.line("USER a@b.c")
            driver.line("PASS x")
            _ = driver.take()
            driver.feed(.loginFailed(failure))
            #expect(driver.take().text == expected)
            #expect(driver.machine.state == .authorization)
            driver.line("USER a@b.c")  // may try again
            #expect(driver.take().text == "+OK Send the password\r\n")
        }
    }

    @Test func relayHandsOverPipelinedBytes() {
        var driver = Driver()
        driver.feed(.received(Array("USER a\r\nPASS b\r\nSTAT\r\nLIST".utf8)))
        _ = driver.take()
        driver.feed(.received(Array(" 1\r\n".utf8)))
        driver.feed(.loginSucceeded(.relay))
        let (text, actions) = driver.take()
        #expect(text == "+OK Logged in\r\n")
        #expect(actions == [.relay(leftover: Array("STAT\r\nLIST 1\r\n".utf8))])
        driver.line("NOOP")
        #expect(driver.take().text.isEmpty)
    }

    @Test func overlongLinesAreRefusedAndTheSessionGoesOn() {
        var driver = Driver()
        _ = driver.take()
        driver.feed(.received(Array(("USER " + String(repeating: "a", count: 300)).utf8)))
        #expect(driver.take().text == "-ERR Command line too long (at most 255 octets with CRLF)\r\n")
        driver.feed(.received(Array((String(repeating: "b", count: 5000) + "\r\nNOOP\r\n").utf8)))
        #expect(driver.take().text == "-ERR Log in first\r\n")  // the rest of the long line was skipped
        // A 256-octet line that arrives whole.
        driver.feed(.received(Array(("USER " + String(repeating: "c", count: 249) + "\r\n").utf8)))
        #expect(driver.take().text.hasPrefix("-ERR Command line too long"))
        // 255 octets fit.
        driver.feed(.received(Array(("USER " + String(repeating: "c", count: 248) + "\r\n").utf8)))
        #expect(driver.take().text == "+OK Send the password\r\n")
    }

    @Test func repeatedAbuseClosesTheConnection() {
        var driver = Driver(.init(errorBudget: 3))
        _ = driver.take()
        driver.feed(.received(Array("XYZZY\r\nBAD\r\nWORSE\r\nNOOP\r\n".utf8)))
        let (text, actions) = driver.take()
        #expect(text.split(separator: "\r\n").filter { $0.hasPrefix("-ERR") }.count == 4)
        #expect(text.hasSuffix("-ERR Too many errors; closing the connection\r\n"))
        #expect(actions == [.close])
        #expect(driver.machine.state == .closed)
        driver.line("QUIT")
        #expect(driver.take().text.isEmpty)
    }

    @Test func controlCharactersAndBinaryAreErrorsNotCrashes() {
        var driver = Driver()
        _ = driver.take()
        driver.feed(.received([0x55, 0x53, 0x45, 0x52, 0x20, 0x00, 0xFF, 0x0D, 0x0A]))
        #expect(driver.take().text.hasPrefix("-ERR Invalid command: the line contains control characters"))
        driver.feed(.received([0xC3, 0x28, 0x0D, 0x0A]))
        #expect(driver.take().text.hasPrefix("-ERR Unknown command"))
        driver.feed(.received(Array("\r\n".utf8)))
        #expect(driver.take().text.hasPrefix("-ERR"))
    }

    @Test func tooMuchPipelinedInputWhileWaitingCloses() {
        var driver = Driver(.init(maximumBufferedInput: 100))
        driver.line("USER a")
        driver.line("PASS b")
        _ = driver.take()
        driver.feed(.received([UInt8](repeating: UInt8(ascii: "N"), count: 101)))
        let (text, actions) = driver.take()
        #expect(text == "-ERR Too much pipelined input\r\n")
        #expect(actions == [.close])
    }

    /// The whole conversation, fed one byte at a time and in every two-piece split, answers the same.
    @Test func splitAtEveryByteAnswersTheSame() {
        let script = "CAPA\r\nUSER alice\r\nPASS secret\r\n"
        let after = "STAT\r\nLIST\r\nUIDL 2\r\nDELE 2\r\nRETR 1\r\n"
        func run(_ pieces: [[UInt8]], _ afterPieces: [[UInt8]]) -> String {
            var driver = Driver()
            for piece in pieces { driver.feed(.received(piece)) }
            driver.feed(.loginSucceeded(.maildrop(Driver.list)))
            for piece in afterPieces { driver.feed(.received(piece)) }
            driver.feed(.messageData(Array("a\r\n.b".utf8)))
            driver.feed(.retrieveFinished(nil))
            return driver.take().text
        }
        let whole = run([Array(script.utf8)], [Array(after.utf8)])
        #expect(whole.hasSuffix("+OK 120 octets\r\na\r\n..b\r\n.\r\n"))
        let bytes = Array(script.utf8)
        let afterBytes = Array(after.utf8)
        #expect(run(bytes.map { [$0] }, afterBytes.map { [$0] }) == whole)
        for cut in 0...bytes.count {
            #expect(run([Array(bytes[..<cut]), Array(bytes[cut...])], [afterBytes]) == whole)
        }
        for cut in 0...afterBytes.count {
            #expect(run([bytes], [Array(afterBytes[..<cut]), Array(afterBytes[cut...])]) == whole)
        }
    }
}

@Suite struct POP3DotStufferTests {
    static func stuffWhole(_ text: [UInt8]) -> [UInt8] {
        var stuffer = POP3DotStuffer()
        return stuffer.stuff(text) + stuffer.finish()
    }

    @Test(arguments: [
        ("", ".\r\n"),
        ("a\r\n", "a\r\n.\r\n"),
        ("a", "a\r\n.\r\n"),
        ("a\r", "a\r\n.\r\n"),
        (".", "..\r\n.\r\n"),
        (".\r\n", "..\r\n.\r\n"),
        ("a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"),
        ("..x\r\n.y\r\n", "...x\r\n..y\r\n.\r\n"),
        ("a.b\r\n", "a.b\r\n.\r\n"),
        ("a\n.b\n", "a\n..b\n.\r\n"),
        ("a\r.b", "a\r.b\r\n.\r\n"),
    ])
    func stuffs(input: String, expected: String) {
        #expect(String(decoding: Self.stuffWhole(Array(input.utf8)), as: UTF8.self) == expected)
    }

    /// Every split of a dotty message in two, and one byte at a time, stuffs the same; un-stuffing gives it back.
    @Test func splitAtEveryByte() throws {
        let message = Array(".start\r\nline\r\n.\r\n..two\r\nmid.dle\r\n.\r\n.end".utf8)
        let whole = Self.stuffWhole(message)
        for cut in 0...message.count {
            var stuffer = POP3DotStuffer()
            let out = stuffer.stuff(message[..<cut]) + stuffer.stuff(message[cut...]) + stuffer.finish()
            #expect(out == whole, "cut at \(cut)")
        }
        var single = POP3DotStuffer()
        var out: [UInt8] = []
        for byte in message { out += single.stuff([byte]) }
        out += single.finish()
        #expect(out == whole)
        var reader = POP3MultilineReader(maximumSize: 1 << 20)
        let read = try reader.read(whole)
        #expect(read.isComplete && read.consumedCount == whole.count)
        #expect(read.data == message + Array("\r\n".utf8))
    }
}

@Suite struct POP3MultilineSplitTests {
    /// The multi-line reader un-stuffs the same whatever the split, and stops exactly at the terminator.
    @Test func readerSplitAtEveryByte() throws {
        let wire = Array("..a\r\nb\r\n...\r\n.\r\n+OK next\r\n".utf8)
        let expected = Array(".a\r\nb\r\n..\r\n".utf8)
        for cut in 0...wire.count {
            var reader = POP3MultilineReader(maximumSize: 1000)
            let first = try reader.read(wire[..<cut])
            var data = first.data
            var consumed = first.consumedCount
            if !first.isComplete {
                let second = try reader.read(wire[cut...])
                data += second.data
                consumed += second.consumedCount
                #expect(second.isComplete)
            }
            #expect(data == expected, "cut at \(cut)")
            #expect(consumed == wire.count - "+OK next\r\n".utf8.count, "cut at \(cut)")
        }
    }
}
