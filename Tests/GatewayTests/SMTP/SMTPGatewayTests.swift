// GatewayTests: SMTPGateway end to end on loopback: real clients, a scripted upstream, the sent-mail seam.
import Crypto
import Dispatch
import Foundation
import MailCore
import MailGateTesting
import OAuth
import SMTP
import Synchronization
import Testing
import Transport

@testable import Gateway

@Suite("SMTP gateway", .serialized)
struct SMTPGatewayTests {
    static let pythonSend = """
        import smtplib, sys
        port = int(sys.argv[1])
        message = "From: alice@contoso.com\\r\\nTo: bob@example.com\\r\\nSubject: hi\\r\\n\\r\\nline one\\r\\n.leading dot\\r\\n..two dots\\r\\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("client.test")
            s.login(sys.argv[2], sys.argv[3])
            refused = s.sendmail("alice@contoso.com", ["bob@example.com", "carol@example.com"], message)
            print("refused", len(refused))
        """

    @Test("a message from Python's smtplib relays end to end, dot-stuffed on the wire, un-stuffed in the record")
    func relaysEndToEnd() async throws {
        let harness = try Harness()
        defer { harness.stop() }
        let result = try await runPythonOffPool(Self.pythonSend, [String(harness.gateway.boundAddress.port), "alice@contoso.com", "secret"])
        #expect(result.status == 0, "python: \(result.error)")
        #expect(result.output.contains("refused 0"))
        let record = harness.upstream.snapshot
        let message = try #require(record.messages.first)
        let body = "From: alice@contoso.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n"
        let stuffed = "From: alice@contoso.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nline one\r\n..leading dot\r\n...two dots\r\n"
        #expect(message.wireBytes == Array(stuffed.utf8))
        #expect(message.from == "alice@contoso.com")
        #expect(message.recipients == ["bob@example.com", "carol@example.com"])
        #expect(record.authentications.map(\.user) == ["alice@contoso.com"])
        #expect(record.authentications.map(\.token) == ["token-1"])
        #expect(record.commands.contains("STARTTLS"))
        let committed = harness.recorder.committed.withLock { $0 }
        #expect(committed.first?.bytes == Array(body.utf8))
        #expect(harness.recorder.kinds == ["begin", "finishInput", "prepareCommit", "commit"])
    }

    @Test("the client gets 250 only after the upstream's 250 (the upstream delays its verdict)")
    func finalReplyWaitsForUpstream() async throws {
        var script = FakeSMTPUpstream.Script()
        script.finalReplyDelay = 0.6
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235 2.7.0") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("RCPT TO:<bob@example.com>\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        try await client.send("DATA\r\n")
        #expect(try await client.reply()?.hasPrefix("354") == true)
        try await client.send("Subject: x\r\n\r\nbody\r\n.\r\n")
        let verdict = try #require(try await client.reply())
        let receivedAt = DispatchTime.now().uptimeNanoseconds
        #expect(verdict.hasPrefix("250 2.6.0"))
        let upstreamAt = try #require(harness.upstream.snapshot.messages.first?.finalReplyAt)
        #expect(receivedAt >= upstreamAt)
        #expect(harness.recorder.kinds.suffix(2) == ["prepareCommit", "commit"])
    }

    @Test("pipelined MAIL, RCPT, RCPT, DATA in one write are answered in order")
    func pipelinedEnvelope() async throws {
        let harness = try Harness()
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        var codes: [String] = []
        for _ in 0..<4 { codes.append(String(try #require(try await client.reply()).prefix(3))) }
        #expect(codes == ["250", "250", "250", "354"])
        try await client.send("Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(try await client.reply()?.hasPrefix("221") == true)
        #expect(harness.upstream.snapshot.messages.first?.recipients == ["b@example.com", "c@example.com"])
    }

    @Test("pipelined envelope through a CHUNKING upstream: one write upstream, each client command its own reply, BDAT")
    func pipelinedEnvelopeWithRefusedRecipientOverBDAT() async throws {
        var script = FakeSMTPUpstream.Script()
        script.chunking = true
        script.refusedRecipients = ["nobody@example.com"]
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send(
            "MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        var replies: [String] = []
        for _ in 0..<5 { replies.append(try #require(try await client.reply())) }
        #expect(replies.map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["250 2.1.0", "250 2.1.5", "550 5.1.10", "250 2.1.5", "354 Start"])
        let body = "Subject: p\r\n\r\n..leading dot\r\nx\r\n"
        try await client.send(body + ".\r\nQUIT\r\n")
        #expect(try await client.reply()?.hasPrefix("250 2.6.0") == true)
        #expect(try await client.reply()?.hasPrefix("221") == true)
        let record = harness.upstream.snapshot
        // The envelope reached the upstream as one pipelined group, and the message as BDAT without DATA.
        #expect(record.pipelinedCommands.prefix(3) == ["MAIL FROM:<alice@contoso.com>", "RCPT TO:<b@example.com>", "RCPT TO:<nobody@example.com>"])
        #expect(!record.commands.contains("DATA"))
        #expect(record.bdatCommands.last == "BDAT 0 LAST")
        let message = try #require(record.messages.first)
        #expect(message.recipients == ["b@example.com", "c@example.com"])
        #expect(String(decoding: message.wireBytes, as: UTF8.self).hasSuffix("\r\n\r\n.leading dot\r\nx\r\n"))
    }

    @Test("a wrong local password gets 535 5.7.8 and the upstream is never contacted")
    func wrongPassword() async throws {
        let harness = try Harness()
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login(password: "wrong") == "535 5.7.8 Authentication credentials invalid")
        try await client.send("AUTH PLAIN \(Data("\u{0}nobody@contoso.com\u{0}secret".utf8).base64EncodedString())\r\n")
        #expect(try await client.reply() == "535 5.7.8 Authentication credentials invalid")
        #expect(harness.upstream.snapshot.connections == 0)
        #expect(harness.credentials.calls.withLock { $0.normal.isEmpty })
    }

    @Test("relay networks: 127.0.0.1 allowed sends without AUTH as relay_account; not allowed gets 530")
    func relayNetworks() async throws {
        let allowed = try Harness(relayFromLoopback: true)
        defer { allowed.stop() }
        let client = try await RawClient(allowed.gateway.boundAddress)
        defer { client.close() }
        _ = try await client.reply()
        try await client.send("EHLO printer\r\nMAIL FROM:<scanner@contoso.com>\r\n")
        _ = try await client.reply()
        #expect(try await client.reply()?.hasPrefix("250 2.1.0") == true)
        try await client.send("RCPT TO:<bob@example.com>\r\nDATA\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(try await client.reply()?.hasPrefix("354") == true)
        try await client.send("Subject: scan\r\n\r\npdf\r\n.\r\n")
        #expect(try await client.reply()?.hasPrefix("250 2.6.0") == true)
        #expect(allowed.upstream.snapshot.authentications.map(\.user) == ["scanner@contoso.com"])

        let refused = try Harness(relayFromLoopback: false)
        defer { refused.stop() }
        let other = try await RawClient(refused.gateway.boundAddress)
        defer { other.close() }
        _ = try await other.reply()
        try await other.send("EHLO printer\r\nMAIL FROM:<scanner@contoso.com>\r\n")
        _ = try await other.reply()
        #expect(try await other.reply() == "530 5.7.0 Authentication required")
        #expect(refused.upstream.snapshot.connections == 0)
    }

    @Test("the upstream's SendAsDenied reaches the client with its exact code and text")
    func sendAsDenied() async throws {
        var script = FakeSMTPUpstream.Script()
        script.sendAsDenied = ["boss@contoso.com"]
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<boss@contoso.com>\r\n")
        #expect(
            try await client.reply()
                == "554 5.2.252 SendAsDenied; user@contoso.com not allowed to send as boss@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
        )
        #expect(harness.recorder.kinds.isEmpty)
    }

    @Test("the upstream dropping mid-DATA gives 451 4.4.2 and the recording is abandoned, never committed")
    func upstreamDropsMidData() async throws {
        var script = FakeSMTPUpstream.Script()
        script.dropAfterDataBytes = 10_000
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in 0..<3 { _ = try await client.reply() }
        let line = String(repeating: "x", count: 78) + "\r\n"
        try await client.send("Subject: big\r\n\r\n" + String(repeating: line, count: 1_000))
        try await Task.sleep(nanoseconds: 200_000_000)
        try await client.send(".\r\n")
        #expect(try await client.reply() == "451 4.4.2 Connection to the upstream server lost; the message was not sent")
        #expect(harness.recorder.kinds.contains("abandon"))
        #expect(!harness.recorder.kinds.contains("commit"))
        // The next message reconnects transparently.
        harness.upstream.change { $0.dropAfterDataBytes = nil }
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in 0..<3 { _ = try await client.reply() }
        try await client.send("Subject: again\r\n\r\nok\r\n.\r\n")
        #expect(try await client.reply()?.hasPrefix("250 2.6.0") == true)
        #expect(harness.upstream.snapshot.connections == 2)
    }

    @Test("a token refused once is refreshed once and the login succeeds on a fresh connection")
    func tokenRefusedOnce() async throws {
        var script = FakeSMTPUpstream.Script()
        script.acceptedTokens = ["token-2"]
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login() == "235 2.7.0 Authentication successful")
        let calls = harness.credentials.calls.withLock { $0 }
        #expect(calls.normal == ["alice@contoso.com"])
        #expect(calls.afterRejection.map(\.rejected) == ["token-1"])
        #expect(harness.upstream.snapshot.authentications.map(\.token) == ["token-1", "token-2"])
        #expect(harness.upstream.snapshot.connections == 2)
    }

    @Test("a token refused twice gets 535 5.7.8 naming the command to run")
    func tokenRefusedTwice() async throws {
        var script = FakeSMTPUpstream.Script()
        script.acceptedTokens = []
        let harness = try Harness(script: script)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        let reply = try #require(try await client.login())
        #expect(reply.hasPrefix("535 5.7.8 "))
        #expect(reply.contains("mailgate account connect alice@contoso.com"))
        #expect(!reply.contains("token-"))
    }

    @Test("needs-reconnect from the credentials gives 535 5.7.8 with the sentence")
    func needsReconnect() async throws {
        let error = OAuthError.needsReconnect(account: "alice@contoso.com")
        let harness = try Harness(credentials: FakeCredentials(failure: error))
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login() == "535 5.7.8 \(error.description)")
        #expect(error.description.contains("mailgate account connect alice@contoso.com"))
        #expect(harness.upstream.snapshot.authentications.isEmpty)
    }

    @Test("an identity platform outage gives 454 4.7.0 (temporary), not 535")
    func identityPlatformDown() async throws {
        let error = OAuthError.temporarilyUnavailable(attempts: 3, lastReason: "HTTP 503")
        let harness = try Harness(credentials: FakeCredentials(failure: error))
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        let reply = try #require(try await client.login())
        #expect(reply == "454 4.7.0 Temporary authentication failure: the Microsoft sign-in service is unavailable; try again later")
    }

    @Test("a token store failure gives a fixed 535 5.7.8: no store path or state-dir hint reaches the client")
    func tokenStoreFailureDoesNotLeak() async throws {
        let vault = "the vault key /srv/secret-state/vault.key cannot be used (Permission denied); check the state directory"
        for error in [
            OAuthError.tokenStoreFailed(account: "alice@contoso.com", reason: vault) as any Error & Sendable,
            LeakyError(description: "cannot use the state directory /srv/secret-state (EACCES); pass --state-dir."),
            OAuthError.network(reason: "TLS to login.test failed; ca_file /srv/secret-state/ca.pem"),
        ] {
            let harness = try Harness(credentials: FakeCredentials(failure: error))
            defer { harness.stop() }
            let client = try await RawClient(harness.gateway.boundAddress)
            defer { client.close() }
            let reply = try #require(try await client.login())
            #expect(reply.hasPrefix("535 5.7.8 ") || reply.hasPrefix("454 4.7.0 "), "\(reply)")
            #expect(!reply.contains("/srv"), "\(reply)")
            #expect(!reply.contains("state"), "\(reply)")
            #expect(!reply.contains("ca_file"), "\(reply)")
        }
    }

    @Test("an upstream that cannot be opened gives a fixed 454 sentence, not the internal reason")
    func unreachableReasonStaysInTheLog() {
        let failure = UpstreamOpenFailure.unreachable("TLS: certificate rejected; check ca_file /srv/secret-state/ca.pem")
        let reply = failure.authReply(account: "alice@contoso.com")
        #expect(reply.description == "454 4.7.0 Temporary authentication failure: the upstream server is unavailable; try again later")
        #expect(failure.mailReply(account: "alice@contoso.com").description.hasPrefix("451 4.4.1 Temporary authentication"))
        #expect(failure.logText.contains("/srv/secret-state/ca.pem"))
    }

    @Test("an unreachable upstream gives 454 4.7.0 at AUTH")
    func upstreamUnreachable() async throws {
        let harness = try Harness()
        defer { harness.stop() }
        harness.upstream.stop()
        try await Task.sleep(nanoseconds: 100_000_000)
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        let reply = try #require(try await client.login())
        #expect(reply.hasPrefix("454 4.7.0 Temporary authentication failure"))
    }

    @Test("a 20 MiB message streams through with bounded buffers and arrives byte for byte")
    func largeMessage() async throws {
        var script = FakeSMTPUpstream.Script()
        script.keepWireBytes = false
        script.dataStall = 1.0
        script.receiveBuffer = 64 * 1024
        var limits = Limits.standard
        limits.writeBufferHighWater = 256 * 1024
        let harness = try Harness(script: script, recorder: FakeRecorder(keepBytes: false), limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        var body: [UInt8] = Array("Subject: large\r\n\r\n".utf8)
        var counter = 0
        while body.count < 20 << 20 {
            counter += 1
            body += Array(((counter % 50 == 0 ? "." : "") + "line \(counter) " + String(repeating: "abcdefgh", count: 8) + "\r\n").utf8)
        }
        var wire: [UInt8] = []
        wire.reserveCapacity(body.count + body.count / 40)
        var atLineStart = true
        for byte in body {
            if atLineStart && byte == 0x2E { wire.append(0x2E) }
            wire.append(byte)
            atLineStart = byte == 0x0A
        }
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in 0..<3 { _ = try await client.reply() }
        var offset = 0
        while offset < wire.count {
            let end = min(offset + 256 * 1024, wire.count)
            try await client.send(bytes: Array(wire[offset..<end]))
            offset = end
        }
        let peaks = harness.gateway.inspectSessions {
            ($0.peakUpstreamPendingBytes, $0.peakBufferedClientBytes, $0.upstreamBackpressurePauses)
        }
        try await client.send(bytes: Array(".\r\n".utf8))
        #expect(try await client.reply(within: 60)?.hasPrefix("250 2.6.0") == true)
        #expect(peaks.count == 1)
        let peak = try #require(peaks.first)
        // The slow upstream made the session pause the client, and its buffers stayed within the bounds.
        #expect(peak.2 > 0)
        #expect(peak.0 > limits.writeBufferHighWater)
        #expect(peak.0 <= limits.writeBufferHighWater + 4 * limits.readChunk)
        #expect(peak.1 <= limits.writeBufferHighWater)
        #expect(harness.upstream.snapshot.wireSHA256 == [SHA256.hex(wire)])
        #expect(harness.recorder.committed.withLock { $0.map(\.sha) } == [SHA256.hex(body)])
    }

    @Test("a DATA line over smtp_text_line (here 1000) gets 500 5.5.2 after the data ends; nothing is committed or delivered")
    func longLineInData() async throws {
        var limits = Limits.standard
        limits.smtpTextLine = 1_000
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in 0..<3 { _ = try await client.reply() }
        try await client.send("Subject: long\r\n\r\n" + String(repeating: "y", count: 1_200) + "\r\nmore\r\n.\r\n")
        #expect(try await client.reply() == "500 5.5.2 Line too long: message lines may have at most 1000 octets")
        try await client.send("NOOP\r\n")
        #expect(try await client.reply()?.hasPrefix("250") == true)
        #expect(!harness.recorder.kinds.contains("commit"))
        #expect(harness.recorder.kinds.contains("abandon"))
        #expect(harness.upstream.snapshot.messages.isEmpty)
    }

    @Test("an idle client gets 421 4.4.2 Idle timeout and is disconnected")
    func idleTimeout() async throws {
        var limits = Limits.standard
        limits.idleTimeoutSeconds = 0.5
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.reply()?.hasPrefix("220") == true)
        #expect(try await client.reply(within: 5) == "421 4.4.2 Idle timeout")
        #expect(try await client.reply(within: 5) == nil)
        #expect(await eventually { harness.gateway.activeSessionCount == 0 })
    }

    @Test("a failing recorder refuses the message with 451 4.3.0 before the final dot goes upstream")
    func recorderFailure() async throws {
        let harness = try Harness(recorder: FakeRecorder(failPrepare: true))
        defer { harness.stop() }
        let client = try await RawClient(harness.gateway.boundAddress)
        defer { client.close() }
        #expect(try await client.login()?.hasPrefix("235") == true)
        try await client.send("MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in 0..<3 { _ = try await client.reply() }
        try await client.send("Subject: x\r\n\r\nbody\r\n.\r\n")
        #expect(try await client.reply() == "451 4.3.0 The message could not be recorded; it was not sent")
        #expect(harness.upstream.snapshot.messages.isEmpty)
        #expect(harness.recorder.kinds.contains("abandon"))
    }

    @Test("STARTTLS on the client listener, then AUTH and a message over TLS (swaks-free: Python smtplib)")
    func clientStartTLS() async throws {
        let harness = try Harness(serverTLS: true)
        defer { harness.stop() }
        let script = """
            import smtplib, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            with smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20) as s:
                s.ehlo("client.test")
                s.starttls(context=ctx)
                s.ehlo("client.test")
                s.login("alice@contoso.com", "secret")
                s.sendmail("alice@contoso.com", ["bob@example.com"], "Subject: tls\\r\\n\\r\\nhello\\r\\n")
                print("sent")
            """
        let result = try await runPythonOffPool(script, [String(harness.gateway.boundAddress.port), harness.upstream.certificates.caFile])
        #expect(result.status == 0, "python: \(result.error)")
        #expect(result.output.contains("sent"))
        #expect(harness.upstream.snapshot.messages.count == 1)
    }
}

/// An error whose description carries internal detail, as a Store or Vault error would.
private struct LeakyError: Error, CustomStringConvertible {
    var description: String
}
