// GatewayTests: a scripted Exchange-like SMTP server on 127.0.0.1 (STARTTLS, AUTH XOAUTH2 two-step), recording all.
import Crypto
import Dispatch
import Foundation
import MailCore
import MailGateTesting
import Synchronization
import TLS
@testable import Transport
#if canImport(Glibc)
    import Glibc
#endif

/// What the fake upstream saw of one message.
struct FakeReceivedMessage: Sendable {
    var from: String
    var recipients: [String]
    /// The DATA bytes as they came over the wire (dot-stuffed), final `.CRLF` excluded.
    var wireBytes: [UInt8]
    /// When the fake sent its final reply (uptime nanoseconds).
    var finalReplyAt: UInt64
}

/// A fake Microsoft 365 submission server: greeting, EHLO, STARTTLS with the test certificates, EHLO with
/// `AUTH LOGIN XOAUTH2`, two-step XOAUTH2, MAIL/RCPT/DATA/RSET/NOOP/QUIT. Scriptable failures.
final class FakeSMTPUpstream: Sendable {
    struct Script: Sendable {
        /// Tokens it accepts; any other gets `535 5.7.3`.
        var acceptedTokens: Set<String> = ["token-1"]
        /// Senders refused with SendAsDenied.
        var sendAsDenied: Set<String> = []
        /// Close the connection once this many DATA bytes arrived.
        var dropAfterDataBytes: Int?
        /// Seconds to wait before the final reply to a message.
        var finalReplyDelay: Double = 0
        /// Keep the full wire bytes of each message (off for huge messages: only the hash is kept).
        var keepWireBytes = true
        /// Seconds to sleep after each chunk of DATA read (a slow upstream, to make back-pressure engage).
        var dataReadDelay: Double = 0
        /// Seconds to read nothing right after 354 (the kernel buffers fill; the gateway must pause its client).
        var dataStall: Double = 0
        /// SO_RCVBUF for accepted sockets (small: the kernel cannot absorb a whole message on loopback).
        var receiveBuffer: Int32?
        /// Read a bare LF as a line end in DATA too (`LF . LF`, `LF . CRLF`, `CRLF . LF` end the message), like a
        /// Postfix with `smtpd_forbid_bare_newline = no`: the upstream an SMTP smuggling attack needs.
        var lenientLineEnds = false
        /// Offer CHUNKING (RFC 3030), as Exchange Online does: the gateway then sends every message as BDAT.
        var chunking = false
        /// Recipients refused with `550 5.1.10` (Exchange's RecipientNotFound).
        var refusedRecipients: Set<String> = []
    }

    struct Record: Sendable {
        var connections = 0
        var authentications: [(user: String, token: String)] = []
        var messages: [FakeReceivedMessage] = []
        var wireSHA256: [String] = []
        var commands: [String] = []
        /// Commands that arrived with more commands already behind them in the same read (pipelined, RFC 2920).
        var pipelinedCommands: [String] = []
        /// BDAT commands as received (`BDAT 10`, `BDAT 0 LAST`).
        var bdatCommands: [String] = []
    }

    let listener: AsyncListener
    let tls: TLSContext
    let certificates: TestCertificateSet
    private let script: Mutex<Script>
    private let record = Mutex(Record())

    init(script: Script = Script()) throws {
        certificates = try TestCertificates.make()
        tls = try TLSContext.server(
            certificateChainFile: certificates.leafChainFile, privateKeyFile: certificates.leafKeyFile)
        listener = try AsyncListener(address: HostPort(host: "127.0.0.1", port: 0)!, tls: nil)
        self.script = Mutex(script)
        let listener = self.listener
        Task { [self] in
            while let connection = try? await listener.accept() {
                Task { await self.serve(connection) }
            }
        }
    }

    var address: HostPort { listener.boundAddress }
    var snapshot: Record { record.withLock { $0 } }
    func change(_ body: @Sendable (inout Script) -> Void) { script.withLock { body(&$0) } }
    func stop() { listener.close() }

    // MARK: - Conversation

    private struct Dropped: Error {}

    private func send(_ connection: AsyncConnection, _ text: String) async throws {
        try await connection.write(Array((text + "\r\n").utf8))
    }

    private func serve(_ connection: AsyncConnection) async {
        record.withLock { $0.connections += 1 }
        if var size = script.withLock({ $0.receiveBuffer }) {
            _ = setsockopt(
                connection.connection.descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let reader = PeerReader(connection)
        var tlsActive = false
        var from = ""
        var recipients: [String] = []
        var chunked: [UInt8] = []
        do {
            try await send(connection, "220 fake.outlook.test Microsoft ESMTP MAIL Service ready")
            while true {
                let line = try await reader.line()
                let upper = line.uppercased()
                let behind = !reader.buffer.isEmpty
                record.withLock {
                    $0.commands.append(upper.hasPrefix("AUTH") ? "AUTH" : line)
                    if behind, !upper.hasPrefix("BDAT") { $0.pipelinedCommands.append(line) }
                }
                if upper.hasPrefix("EHLO") {
                    var lines = ["fake.outlook.test Hello [127.0.0.1]", "SIZE 157286400", "PIPELINING", "DSN",
                        "ENHANCEDSTATUSCODES"]
                    lines.append(tlsActive ? "AUTH LOGIN XOAUTH2" : "STARTTLS")
                    lines += ["8BITMIME", "SMTPUTF8"]
                    if script.withLock({ $0.chunking }) { lines.insert("CHUNKING", at: lines.count - 1) }
                    for (index, text) in lines.enumerated() {
                        try await send(connection, "250\(index == lines.count - 1 ? " " : "-")\(text)")
                    }
                } else if upper == "STARTTLS" {
                    reader.buffer = []
                    try await connection.startServerTLS(context: tls, goAhead: Array("220 2.0.0 SMTP server ready\r\n".utf8))
                    tlsActive = true
                } else if upper == "AUTH XOAUTH2" {
                    try await send(connection, "334 ")
                    let response = try await reader.line()
                    let decoded = String(decoding: Data(base64Encoded: response) ?? Data(), as: UTF8.self)
                    let fields = decoded.split(separator: "\u{1}", omittingEmptySubsequences: true)
                    let user = fields.first.map { String($0.dropFirst("user=".count)) } ?? ""
                    let token = fields.dropFirst().first.map { String($0.dropFirst("auth=Bearer ".count)) } ?? ""
                    record.withLock { $0.authentications.append((user, token)) }
                    if script.withLock({ $0.acceptedTokens.contains(token) }) {
                        try await send(connection, "235 2.7.0 Authentication successful")
                    } else {
                        try await send(connection, "535 5.7.3 Authentication unsuccessful [fake.prod.outlook.com]")
                    }
                } else if upper.hasPrefix("MAIL FROM:") {
                    from = String(line.dropFirst(10).prefix { $0 != " " }).trimmingCharacters(in: ["<", ">"])
                    recipients = []
                    if script.withLock({ $0.sendAsDenied.contains(from) }) {
                        try await send(
                            connection,
                            "554 5.2.252 SendAsDenied; user@contoso.com not allowed to send as \(from); STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
                        )
                    } else {
                        try await send(connection, "250 2.1.0 Sender OK")
                    }
                } else if upper.hasPrefix("RCPT TO:") {
                    let recipient = String(line.dropFirst(8).prefix { $0 != " " }).trimmingCharacters(in: ["<", ">"])
                    if script.withLock({ $0.refusedRecipients.contains(recipient) }) {
                        try await send(connection, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")
                    } else {
                        recipients.append(recipient)
                        try await send(connection, "250 2.1.5 Recipient OK")
                    }
                } else if upper.hasPrefix("BDAT ") {
                    let words = upper.split(separator: " ")
                    let size = words.count > 1 ? Int(words[1]) ?? -1 : -1
                    let last = words.count > 2 && words[2] == "LAST"
                    record.withLock { $0.bdatCommands.append(line) }
                    guard size >= 0 else {
                        try await send(connection, "501 5.5.4 Invalid BDAT size")
                        continue
                    }
                    chunked += try await reader.bytes(size)
                    guard last else {
                        try await send(connection, "250 2.0.0 \(size) octets received")
                        continue
                    }
                    let at = DispatchTime.now().uptimeNanoseconds
                    let keep = script.withLock { $0.keepWireBytes }
                    let message = FakeReceivedMessage(
                        from: from, recipients: recipients, wireBytes: keep ? chunked : [], finalReplyAt: at)
                    let hash = SHA256.hex(chunked)
                    chunked = []
                    record.withLock {
                        $0.messages.append(message)
                        $0.wireSHA256.append(hash)
                    }
                    try await send(connection, "250 2.6.0 <fake-\(at)@fake.outlook.test> [InternalId=1] Queued mail for delivery")
                } else if upper == "DATA" {
                    try await send(connection, "354 Start mail input; end with <CRLF>.<CRLF>")
                    let script = self.script.withLock { $0 }
                    if script.dataStall > 0 { try await Task.sleep(nanoseconds: UInt64(script.dataStall * 1e9)) }
                    let wire =
                        script.lenientLineEnds
                        ? try await reader.lenientData()
                        : try await reader.data(readDelay: script.dataReadDelay) { count in
                            if let limit = script.dropAfterDataBytes, count >= limit { throw Dropped() }
                        }
                    if script.finalReplyDelay > 0 {
                        try await Task.sleep(nanoseconds: UInt64(script.finalReplyDelay * 1e9))
                    }
                    let at = DispatchTime.now().uptimeNanoseconds
                    let message = FakeReceivedMessage(
                        from: from, recipients: recipients, wireBytes: script.keepWireBytes ? wire : [], finalReplyAt: at)
                    let hash = SHA256.hex(wire)
                    record.withLock {
                        $0.messages.append(message)
                        $0.wireSHA256.append(hash)
                    }
                    try await send(connection, "250 2.6.0 <fake-\(at)@fake.outlook.test> [InternalId=1] Queued mail for delivery")
                } else if upper == "RSET" {
                    chunked = []
                    try await send(connection, "250 2.0.0 Resetting")
                } else if upper == "NOOP" {
                    try await send(connection, "250 2.0.0 OK")
                } else if upper == "QUIT" {
                    try await send(connection, "221 2.0.0 Service closing transmission channel")
                    connection.shutdownWrite()
                    connection.close()
                    return
                } else {
                    try await send(connection, "500 5.3.3 Unrecognized command '\(line.prefix(20))'")
                }
            }
        } catch {
            connection.close()
        }
    }
}

/// The SMTP fake's own reads: DATA content, strict (`CRLF.CRLF`) or lenient about line ends.
extension PeerReader {
    /// DATA content up to a line holding only `.` that ends with LF, CR optional (returned without it).
    func lenientData() async throws -> [UInt8] {
        var collected = buffer
        buffer = []
        while true {
            var index = 0
            while index < collected.count {
                if collected[index] == 0x2E, index == 0 || collected[index - 1] == 0x0A {
                    var end = index + 1
                    if end < collected.count, collected[end] == 0x0D { end += 1 }
                    if end < collected.count, collected[end] == 0x0A {
                        buffer = Array(collected[(end + 1)...])
                        return Array(collected[..<index])
                    }
                }
                index += 1
            }
            guard let more = try await connection.readAvailable() else { throw TransportError.closedByPeer }
            collected += more
        }
    }

    /// DATA content up to `CRLF.CRLF` (returned without it), through `onChunk` for counting.
    func data(readDelay: Double, onChunk: (Int) throws -> Void) async throws -> [UInt8] {
        var collected: [UInt8] = []
        var searchFrom = 0
        let end: [UInt8] = [0x0D, 0x0A, 0x2E, 0x0D, 0x0A]
        collected = buffer
        buffer = []
        // A message may be just ".\r\n" right after 354.
        while true {
            if collected.starts(with: [0x2E, 0x0D, 0x0A]) {
                buffer = Array(collected[3...])
                return []
            }
            if collected.count >= end.count {
                var index = max(0, searchFrom - end.count)
                while index + end.count <= collected.count {
                    if collected[index] == 0x0D, collected[index..<(index + end.count)].elementsEqual(end) {
                        buffer = Array(collected[(index + end.count)...])
                        return Array(collected[..<(index + 2)])
                    }
                    index += 1
                }
                searchFrom = collected.count
            }
            if readDelay > 0 { try await Task.sleep(nanoseconds: UInt64(readDelay * 1e9)) }
            guard let more = try await connection.readAvailable() else { throw TransportError.closedByPeer }
            collected += more
            try onChunk(collected.count)
        }
    }
}
