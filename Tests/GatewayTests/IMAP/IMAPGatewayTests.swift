// GatewayTests/IMAP: IMAPGateway in-process against a fake Exchange IMAP server: the upstream login forms, one
// forced refresh, AccessTokenExpired handling (between commands, in IDLE, during a command), IDLE re-issue,
// literals to an upstream without LITERAL+.
import Foundation
import MailCore
import MailGateTesting
import Synchronization
import Testing
import Transport

@testable import Gateway

@Suite("IMAP gateway against a fake Exchange IMAP server", .serialized)
struct IMAPGatewayTests {
    @Test("no SASL-IR upstream: continuation form; a refused token gets the error challenge answered, one forced refresh, then OK")
    func continuationFormAndForcedRefresh() async throws {
        let harness = try IMAPGatewayHarness(script: .init(acceptedTokens: ["token-2"], saslIR: false))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let answer = try await client.login()
        #expect(answer.last?.hasPrefix("L1 OK [CAPABILITY IMAP4rev1 ") == true, "\(answer)")
        let record = harness.upstream.snapshot
        #expect(record.tokens == ["token-1", "token-2"], "\(record.tokens)")
        #expect(record.emptyLinesAfterChallenge == 1)
        #expect(record.connections == 2)
        let rejected = harness.credentials.calls.withLock { $0.afterRejection.map(\.rejected) }
        #expect(rejected == ["token-1"])
        let login = answer.last ?? ""
        #expect(!login.contains("AUTH=") && !login.contains("SASL-IR"), "\(login)")
    }

    @Test("both tokens refused: NO [AUTHENTICATIONFAILED] with an ALERT naming `mailgate account connect`; slot released")
    func refusedTwice() async throws {
        let harness = try IMAPGatewayHarness(script: .init(acceptedTokens: []))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let answer = try await client.login()
        #expect(answer.contains { $0.hasPrefix("* OK [ALERT]") && $0.contains("mailgate account connect alice@contoso.com") }, "\(answer)")
        #expect(answer.last?.hasPrefix("L1 NO [AUTHENTICATIONFAILED]") == true, "\(answer)")
        #expect(harness.cap.inUse("alice@contoso.com") == 0)
        try await client.send("N1 NOOP\r\n")
        #expect(try await client.until("N1").last == "N1 OK NOOP completed")
    }

    @Test("wrong local password: NO [AUTHENTICATIONFAILED], no upstream connection")
    func wrongPassword() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let answer = try await client.login(password: "wrong")
        #expect(answer.last?.hasPrefix("L1 NO [AUTHENTICATIONFAILED]") == true, "\(answer)")
        #expect(harness.upstream.snapshot.connections == 0)
    }

    @Test("AccessTokenExpired between commands: reconnect with a forced refresh, SELECT again unseen, the session goes on")
    func expiredBetweenCommands() async throws {
        let harness = try IMAPGatewayHarness(script: .init(acceptedTokens: ["token-1", "token-2"]))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 SELECT INBOX\r\n")
        let selected = try await client.until("S1")
        #expect(selected.last?.hasPrefix("S1 OK") == true)
        await harness.upstream.expireAll()
        #expect(try await harness.wait { record in record.lines.contains { $0.connection == 2 && $0.line.contains("SELECT INBOX") } })
        try await client.send("N1 NOOP\r\n")
        let lines = try await client.until("N1")
        #expect(lines == ["N1 OK NOOP completed."], "the client sees nothing of the reconnect: \(lines)")
        let second = harness.upstream.snapshot.lines.filter { $0.connection == 2 }.map(\.line)
        #expect(second.contains { $0.hasSuffix("SELECT INBOX") && $0.hasPrefix("MGI") }, "\(second)")
        #expect(harness.credentials.calls.withLock { $0.afterRejection.count } == 1)
    }

    @Test("AccessTokenExpired in IDLE: the gateway re-selects and idles again; new mail still reaches the client")
    func expiredDuringIdle() async throws {
        let harness = try IMAPGatewayHarness(script: .init(acceptedTokens: ["token-1", "token-2"]))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("S1 SELECT INBOX\r\n")
        _ = try await client.until("S1")
        try await client.send("I1 IDLE\r\n")
        #expect(try await client.line()?.hasPrefix("+ ") == true)
        await harness.upstream.expireAll()
        #expect(try await harness.wait { record in record.lines.contains { $0.connection == 2 && $0.line.hasSuffix(" IDLE") } })
        try await Task.sleep(nanoseconds: 100_000_000)
        await harness.upstream.push("* 4 EXISTS")
        #expect(try await client.line() == "* 4 EXISTS")
        try await client.send("DONE\r\n")
        #expect(try await client.line() == "I1 OK IDLE completed")
        try await client.send("N1 NOOP\r\n")
        #expect(try await client.until("N1").last == "N1 OK NOOP completed.")
    }

    @Test("AccessTokenExpired as the answer to a command: the client gets a BYE that says why and the connection ends")
    func expiredDuringCommand() async throws {
        let harness = try IMAPGatewayHarness(script: .init(expireOn: ["FETCH"]))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("F1 FETCH 1 FLAGS\r\n")
        let bye = try await client.line()
        #expect(bye?.hasPrefix("* BYE Session invalidated - AccessTokenExpired") == true, "\(bye ?? "nil")")
        #expect(try await client.line(within: 5) == nil, "the connection ends")
    }

    @Test("IDLE is re-issued upstream under the gateway's tag; the client's DONE gets its own tag back")
    func idleReissue() async throws {
        let harness = try IMAPGatewayHarness(idleReissueSeconds: 0.3)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("I1 IDLE\r\n")
        #expect(try await client.line()?.hasPrefix("+ ") == true)
        #expect(try await harness.wait { record in record.lines.contains { $0.line.hasPrefix("MGI") && $0.line.hasSuffix(" IDLE") } })
        try await client.send("DONE\r\n")
        #expect(try await client.line() == "I1 OK IDLE completed")
        let lines = harness.upstream.snapshot.lines.map(\.line)
        #expect(lines.filter { $0 == "DONE" }.count >= 2, "\(lines)")
    }

    @Test("an upstream without LITERAL+: the gateway answers the client's {n}, then waits for the upstream's +")
    func literalWithoutLiteralPlus() async throws {
        let harness = try IMAPGatewayHarness(script: .init(literalPlus: false))
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let login = try await client.login()
        #expect(login.last?.contains("LITERAL+") == false, "\(login)")
        let message = Array("Subject: x\r\n\r\nbody line\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 100_000) + [13, 10]
        try await client.send("A1 APPEND INBOX {\(message.count)}\r\n")
        #expect(try await client.line()?.hasPrefix("+ ") == true)
        try await client.send(bytes: message + [13, 10])
        let answer = try await client.until("A1")
        #expect(answer.last?.hasPrefix("A1 OK [APPENDUID 14 7]") == true, "\(answer)")
        #expect(harness.upstream.snapshot.appended == [message])
        // A small non-synchronizing literal is still fine without LITERAL+ (≤ 4096, LITERAL-).
        try await client.send("A2 APPEND INBOX {5+}\r\nhello\r\n")
        #expect(try await client.until("A2").last?.hasPrefix("A2 OK") == true)
        #expect(harness.upstream.snapshot.appended.last == Array("hello".utf8))
    }

    @Test("no SPECIAL-USE attributes upstream (German Exchange names): folders found by name, mapped both ways")
    func foldersByName() async throws {
        var script = FakeIMAPUpstream.Script()
        script.specialUseAttributes = false
        script.folders = [
            ("INBOX", nil), ("Gesendete Elemente", nil), ("Gel&APY-schte Elemente", nil), ("Junk-E-Mail", nil),
            ("Entw&APw-rfe", nil),
        ]
        let harness = try IMAPGatewayHarness(script: script)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.login()
        try await client.send("L2 LIST \"\" \"*\"\r\n")
        let lines = try await client.until("L2")
        #expect(lines.contains("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\""), "\(lines)")
        #expect(lines.contains("* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\""), "\(lines)")
        #expect(lines.contains("* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\""), "\(lines)")
        #expect(lines.contains("* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\""), "unmapped names pass: \(lines)")
        #expect(!lines.contains { $0.contains("Gesendete") || $0.contains("Gel&APY-schte") }, "\(lines)")
        #expect(lines.last?.hasPrefix("L2 OK") == true)
        try await client.send("L3 LIST (SPECIAL-USE) \"\" \"*\"\r\nL4 LIST \"\" \"%\" RETURN (SPECIAL-USE)\r\n")
        let special = try await client.until("L3")
        #expect(special.filter { $0.hasPrefix("* LIST") }.count == 3, "only the special-use folders: \(special)")
        let returned = try await client.until("L4")
        #expect(returned.filter { $0.hasPrefix("* LIST") }.count == 5, "\(returned)")
        #expect(harness.upstream.snapshot.lines.contains { $0.line == "L3 LIST \"\" \"*\"" }, "plain LIST upstream")
        try await client.send("S1 SELECT Trash\r\n")
        _ = try await client.until("S1")
        try await client.send("C1 UID COPY 5 \"Junk\"\r\n")
        _ = try await client.until("C1")
        let sent = harness.upstream.snapshot.lines.map(\.line)
        #expect(sent.contains("S1 SELECT \"Gel&APY-schte Elemente\""), "\(sent)")
        #expect(sent.contains("C1 UID COPY 5 \"Junk-E-Mail\""), "\(sent)")
    }

    @Test("before login: CAPABILITY, NOOP, ID answered by the gateway; other commands BAD; AUTHENTICATE PLAIN both forms, * cancels")
    func preLogin() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let greeting = try await client.line()
        #expect(greeting?.hasPrefix("* OK [CAPABILITY IMAP4rev1 ") == true && greeting?.contains("AUTH=PLAIN") == true)
        #expect(greeting?.contains("STARTTLS") == false, "no certificate, no STARTTLS: \(greeting ?? "")")
        try await client.send("C1 CAPABILITY\r\nN1 NOOP\r\nI1 ID (\"name\" \"test\")\r\nS1 SELECT INBOX\r\nX1 FROB\r\n")
        #expect(try await client.until("C1").first?.hasPrefix("* CAPABILITY IMAP4rev1") == true)
        #expect(try await client.until("N1").last == "N1 OK NOOP completed")
        #expect(try await client.until("I1").first?.hasPrefix("* ID (") == true)
        #expect(try await client.until("S1").last?.hasPrefix("S1 BAD") == true)
        #expect(try await client.until("X1").last?.hasPrefix("X1 BAD") == true)
        try await client.send("A1 AUTHENTICATE PLAIN\r\n")
        #expect(try await client.line()?.hasPrefix("+") == true)
        try await client.send("*\r\n")
        #expect(try await client.until("A1").last?.hasPrefix("A1 BAD") == true)
        try await client.send("A2 AUTHENTICATE PLAIN\r\n")
        #expect(try await client.line()?.hasPrefix("+") == true)
        let wrong = Data("\u{0}alice@contoso.com\u{0}wrong".utf8).base64EncodedString()
        try await client.send("\(wrong)\r\n")
        let a2 = try await client.until("A2")
        #expect(a2.last?.hasPrefix("A2 NO [AUTHENTICATIONFAILED]") == true, "\(a2)")
        let right = Data("\u{0}alice@contoso.com\u{0}secret".utf8).base64EncodedString()
        try await client.send("A3 AUTHENTICATE PLAIN \(right)\r\n")
        #expect(try await client.until("A3").last?.hasPrefix("A3 OK [CAPABILITY IMAP4rev1") == true)
    }

    @Test("login with a LOGIN literal {n} (the gateway sends +) and {n+}")
    func loginLiterals() async throws {
        let harness = try IMAPGatewayHarness()
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.line()
        try await client.send("L1 LOGIN {17}\r\n")
        #expect(try await client.line()?.hasPrefix("+") == true)
        try await client.send("alice@contoso.com {6+}\r\nsecret\r\n")
        #expect(try await client.until("L1").last?.hasPrefix("L1 OK") == true)
    }

    @Test("STARTTLS on the plain listener, then LOGIN over TLS; implicit TLS on the imaps listener")
    func tls() async throws {
        let plain = try IMAPGatewayHarness(certificate: true)
        defer { plain.stop() }
        let ca = try #require(plain.certificates?.caFile)
        let client = try await RawIMAPClient(plain.gateway.boundAddress)
        defer { client.close() }
        let greeting = try await client.line()
        #expect(greeting?.contains("STARTTLS") == true, "\(greeting ?? "")")
        try await client.send("T1 STARTTLS\r\n")
        #expect(try await client.line()?.hasPrefix("T1 OK") == true)
        try await client.startTLS(caFile: ca)
        try await client.send("C1 CAPABILITY\r\n")
        let capability = try await client.until("C1")
        #expect(capability.first?.contains("STARTTLS") == false, "\(capability)")
        try await client.send("L1 LOGIN alice@contoso.com secret\r\n")
        #expect(try await client.until("L1").last?.hasPrefix("L1 OK") == true)

        let implicit = try IMAPGatewayHarness(implicitTLS: true)
        defer { implicit.stop() }
        let secure = try await RawIMAPClient(implicit.gateway.boundAddress, tlsCA: try #require(implicit.certificates?.caFile))
        defer { secure.close() }
        let answer = try await secure.login()
        #expect(answer.last?.hasPrefix("L1 OK") == true, "\(answer)")
    }

    @Test("pipelined commands keep their order and every answer reaches the client, also past imap_commands_in_flight")
    func pipelined() async throws {
        var limits = Limits.standard
        limits.imapCommandsInFlight = 2
        let harness = try IMAPGatewayHarness(limits: limits)
        defer { harness.stop() }
        let client = try await RawIMAPClient(harness.gateway.boundAddress)
        defer { client.close() }
        let login = try await client.login()
        #expect(login.last?.contains("SPECIAL-USE") == true, "the gateway adds SPECIAL-USE: \(login)")
        var batch = ""
        for index in 1...50 { batch += "P\(index) NOOP\r\n" }
        try await client.send(batch)
        let lines = try await client.until("P50")
        #expect(lines == (1...50).map { "P\($0) OK NOOP completed." })
    }
}
