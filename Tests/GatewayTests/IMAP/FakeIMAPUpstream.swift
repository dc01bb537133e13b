// GatewayTests/IMAP: a scripted Exchange-like IMAP server on 127.0.0.1 (plaintext; TLS is covered end to end),
// and a harness running IMAPGateway in-process against it.
import Dispatch
import Foundation
import Logging
import MailCore
import MailGateTesting
import TLS
import Synchronization
import Testing
import Transport

@testable import Gateway

/// A fake Microsoft 365 IMAP server: Exchange's capability list (SASL-IR and LITERAL+ switchable), AUTHENTICATE
/// XOAUTH2 (with the error challenge on a bad token), SELECT, NOOP, IDLE/DONE, APPEND, FETCH, LOGOUT, and
/// `* BYE Session invalidated - AccessTokenExpired` on demand.
final class FakeIMAPUpstream: Sendable {
    struct Script: Sendable {
        var acceptedTokens: Set<String> = ["token-1"]
        var saslIR = true
        var literalPlus = true
        /// Answer a bad token with a `+ <base64 JSON>` error challenge first (Google style).
        var errorChallenge = true
        /// Commands (upper-cased names) answered with BYE AccessTokenExpired instead.
        var expireOn: Set<String> = []
        /// The mailbox's folders (wire names) with their SPECIAL-USE attribute, as Exchange lists them.
        var folders: [(name: String, use: String?)] = [
            ("INBOX", nil), ("Sent Items", "\\Sent"), ("Deleted Items", "\\Trash"), ("Junk Email", "\\Junk"),
            ("Drafts", "\\Drafts"), ("Archive", "\\Archive"),
        ]
        /// Put the SPECIAL-USE attributes on LIST lines (Exchange does, without advertising SPECIAL-USE).
        var specialUseAttributes = true
        /// Commands (upper-cased names) answered with `* BYE <byeText>` and the connection closed.
        var byeOn: Set<String> = []
        var byeText = "Server shutting down for maintenance"
        /// `UID SEARCH HEADER Message-ID "<id>"` answers: Message-ID → UIDs (in whatever mailbox is selected).
        var searchResults: [String: [UInt32]] = [:]
        /// When > 0, FETCH answers with a `BODY[]` literal of this many bytes (fault tests: a reset mid-literal).
        var fetchLiteralSize = 0
    }

    struct Record: Sendable {
        var connections = 0
        var tokens: [String] = []
        /// Whether the empty line after an error challenge came.
        var emptyLinesAfterChallenge = 0
        /// Every command line (tag included), per connection number.
        var lines: [(connection: Int, line: String)] = []
        var appended: [[UInt8]] = []
    }

    let listener: AsyncListener
    private let script: Mutex<Script>
    private let record = Mutex(Record())
    private let live = Mutex<[Int: AsyncConnection]>([:])

    init(script: Script = Script()) throws {
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

    /// Ends every open session the way Exchange does when the token expired.
    func expireAll() async {
        let connections = live.withLock { Array($0.values) }
        for connection in connections {
            try? await connection.write(Array("* BYE Session invalidated - AccessTokenExpired\r\n".utf8))
            connection.close()
        }
    }

    /// Pushes an untagged line to every open session (new mail during IDLE).
    func push(_ line: String) async {
        let connections = live.withLock { Array($0.values) }
        for connection in connections { try? await connection.write(Array((line + "\r\n").utf8)) }
    }

    private var capabilities: String {
        let script = self.script.withLock { $0 }
        var list = ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2"]
        if script.saslIR { list.append("SASL-IR") }
        list += ["UIDPLUS", "MOVE", "ID", "UNSELECT", "CHILDREN", "IDLE", "NAMESPACE"]
        if script.literalPlus { list.append("LITERAL+") }
        return list.joined(separator: " ")
    }

    private func send(_ connection: AsyncConnection, _ text: String) async throws {
        try await connection.write(Array((text + "\r\n").utf8))
    }

    private func serve(_ connection: AsyncConnection) async {
        let number = record.withLock { record -> Int in
            record.connections += 1
            return record.connections
        }
        live.withLock { $0[number] = connection }
        defer {
            _ = live.withLock { $0.removeValue(forKey: number) }
            connection.close()
        }
        let reader = PeerReader(connection)
        do {
            try await send(connection, "* OK The Microsoft Exchange IMAP4 service is ready.")
            while true {
                let line = try await reader.line()
                record.withLock { $0.lines.append((number, line.contains("XOAUTH2") ? "AUTHENTICATE XOAUTH2" : line)) }
                let words = line.split(separator: " ", maxSplits: 3).map(String.init)
                guard words.count >= 2 else {
                    try await send(connection, "* BAD Command Error. 10")
                    continue
                }
                let tag = words[0]
                let name = words[1].uppercased()
                if script.withLock({ $0.expireOn.contains(name) }) {
                    try await send(connection, "* BYE Session invalidated - AccessTokenExpired")
                    return
                }
                if script.withLock({ $0.byeOn.contains(name) }) {
                    try await send(connection, "* BYE \(script.withLock { $0.byeText })")
                    return
                }
                switch name {
                case "CAPABILITY":
                    try await send(connection, "* CAPABILITY \(capabilities)")
                    try await send(connection, "\(tag) OK CAPABILITY completed.")
                case "AUTHENTICATE":
                    var response = words.count >= 4 ? words[3] : ""
                    if response.isEmpty {
                        try await send(connection, "+ ")
                        response = try await reader.line()
                    }
                    let decoded = String(decoding: Data(base64Encoded: response) ?? Data(), as: UTF8.self)
                    let token = decoded.components(separatedBy: "auth=Bearer ").last?
                        .trimmingCharacters(in: CharacterSet(charactersIn: "\u{1}")) ?? ""
                    record.withLock { $0.tokens.append(token) }
                    let current = script.withLock { $0 }
                    if current.acceptedTokens.contains(token) {
                        try await send(connection, "\(tag) OK AUTHENTICATE completed.")
                    } else {
                        if current.errorChallenge {
                            try await send(connection, "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=")
                            if try await reader.line().isEmpty { record.withLock { $0.emptyLinesAfterChallenge += 1 } }
                        }
                        try await send(connection, "\(tag) NO AUTHENTICATE failed.")
                    }
                case "LIST":
                    let current = script.withLock { $0 }
                    for folder in current.folders {
                        var attributes = ["\\HasNoChildren"]
                        if current.specialUseAttributes, let use = folder.use { attributes.append(use) }
                        try await send(connection, "* LIST (\(attributes.joined(separator: " "))) \"/\" \"\(folder.name)\"")
                    }
                    try await send(connection, "\(tag) OK LIST completed.")
                case "NOOP":
                    try await send(connection, "\(tag) OK NOOP completed.")
                case "SELECT", "EXAMINE":
                    try await send(connection, "* 3 EXISTS")
                    try await send(connection, "* 0 RECENT")
                    try await send(connection, "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)")
                    try await send(connection, "* OK [UIDVALIDITY 14] UIDVALIDITY value")
                    try await send(connection, "\(tag) OK [READ-WRITE] \(name) completed.")
                case "IDLE":
                    try await send(connection, "+ IDLE accepted, awaiting DONE command.")
                    let done = try await reader.line()
                    record.withLock { $0.lines.append((number, done)) }
                    try await send(connection, "\(tag) OK IDLE completed.")
                case "APPEND":
                    guard let open = line.lastIndex(of: "{"), line.hasSuffix("}") else {
                        try await send(connection, "\(tag) BAD Command Argument Error. 11")
                        continue
                    }
                    var digits = String(line[line.index(after: open)..<line.index(before: line.endIndex)])
                    let nonSync = digits.hasSuffix("+")
                    if nonSync { digits.removeLast() }
                    let count = Int(digits) ?? 0
                    if !nonSync { try await send(connection, "+ Ready for additional command text.") }
                    let message = try await reader.bytes(count)
                    _ = try await reader.line()
                    record.withLock { $0.appended.append(message) }
                    try await send(connection, "\(tag) OK [APPENDUID 14 7] APPEND completed.")
                case "STATUS":
                    // Echoes the mailbox as it was sent (quoted or atom), like Exchange and Dovecot.
                    let rest = line.dropFirst(tag.count + " STATUS ".count)
                    let mailbox: Substring
                    if rest.hasPrefix("\""), let close = rest.dropFirst().firstIndex(of: "\"") {
                        mailbox = rest[rest.startIndex...close]
                    } else {
                        mailbox = rest.prefix { $0 != " " }
                    }
                    try await send(connection, "* STATUS \(mailbox) (MESSAGES 3)")
                    try await send(connection, "\(tag) OK STATUS completed.")
                case "UNSELECT", "CLOSE":
                    try await send(connection, "\(tag) OK \(name) completed.")
                case "ENABLE":
                    try await send(connection, "* ENABLED")
                    try await send(connection, "\(tag) OK ENABLE completed.")
                case "UID" where line.uppercased().contains(" UID SEARCH HEADER MESSAGE-ID "):
                    let id = line.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
                    let uids = script.withLock { $0.searchResults[id] ?? [] }
                    try await send(connection, "* SEARCH" + uids.map { " \($0)" }.joined())
                    try await send(connection, "\(tag) OK SEARCH completed.")
                case "FETCH" where script.withLock({ $0.fetchLiteralSize }) > 0,
                    "UID" where script.withLock({ $0.fetchLiteralSize }) > 0:
                    let size = script.withLock { $0.fetchLiteralSize }
                    var body = Array("* 1 FETCH (UID 5 BODY[] {\(size)}\r\n".utf8)
                    body += [UInt8](repeating: UInt8(ascii: "f"), count: size)
                    body += Array(")\r\n".utf8)
                    try await connection.write(body)
                    try await send(connection, "\(tag) OK FETCH completed.")
                case "FETCH", "UID":
                    try await send(connection, "* 1 FETCH (UID 5 FLAGS (\\Seen))")
                    try await send(connection, "\(tag) OK FETCH completed.")
                case "LOGOUT":
                    try await send(connection, "* BYE Microsoft Exchange Server IMAP4 server signing off.")
                    try await send(connection, "\(tag) OK LOGOUT completed.")
                    return
                default:
                    try await send(connection, "\(tag) BAD Command Error. 10")
                }
            }
        } catch {
            return
        }
    }
}

/// IMAPGateway in-process against a `FakeIMAPUpstream`, with in-memory passwords and `FakeCredentials`.
final class IMAPGatewayHarness: @unchecked Sendable {
    // @unchecked Sendable: set up once; the parts are Sendable.
    let upstream: FakeIMAPUpstream
    let gateway: IMAPGateway
    let credentials: FakeCredentials
    let cap: IMAPUpstreamSessionCap
    /// The test CA when the listener has a certificate.
    let certificates: TestCertificateSet?

    init(
        script: FakeIMAPUpstream.Script = .init(), idleReissueSeconds: Double = 540, limits: Limits = .standard,
        certificate: Bool = false, implicitTLS: Bool = false,
        settings adjust: @escaping @Sendable (inout IMAPAccountSettings) -> Void = { _ in },
        journal: (any IMAPSentJournal)? = nil, sentCopyCanceller: (any SentCopyCancelling)? = nil
    ) throws {
        let upstream = try FakeIMAPUpstream(script: script)
        self.upstream = upstream
        credentials = FakeCredentials()
        let passwords = InMemoryPasswords(["alice@contoso.com": InMemoryPasswords.secretHash])
        var authSettings = LocalAuthenticator.Settings()
        authSettings.initialFailureDelay = 0.05
        let address = upstream.address
        cap = IMAPUpstreamSessionCap(maximum: limits.imapUpstreamSessions)
        var tls: TLSContext?
        if certificate || implicitTLS {
            let made = try TestCertificates.make()
            certificates = made
            tls = try TLSContext.server(certificateChainFile: made.leafChainFile, privateKeyFile: made.leafKeyFile)
        } else {
            certificates = nil
        }
        gateway = try IMAPGateway(
            listen: HostPort(host: "127.0.0.1", port: 0)!, implicitTLS: implicitTLS, tls: tls,
            configuration: IMAPGatewayConfiguration(
                listenerName: "imap", limits: limits, idleReissueSeconds: idleReissueSeconds),
            authenticator: LocalAuthenticator(lookup: passwords, settings: authSettings), credentials: credentials,
            resolver: { _ in
                var settings = IMAPAccountSettings(
                    endpoint: UpstreamEndpoint(address: address, security: .none, caFile: nil),
                    allowInsecureUpstream: true)
                adjust(&settings)
                return settings
            }, sessionCap: cap, journal: journal, logger: Logger(label: "mailgate.test.imap"),
            sentCopyCanceller: sentCopyCanceller)
    }

    func stop() {
        gateway.stop()
        upstream.stop()
    }

    /// Waits (bounded) until `condition` holds on the fake's record.
    func wait(_ seconds: Double = 5, until condition: (FakeIMAPUpstream.Record) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(upstream.snapshot) { return true }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        return condition(upstream.snapshot)
    }
}

/// A raw IMAP client for the in-process tests: lines with a timeout.
final class RawIMAPClient: @unchecked Sendable {
    // @unchecked Sendable: used by one test task at a time.
    let connection: AsyncConnection
    private var buffer: [UInt8] = []

    init(_ address: HostPort, tlsCA: String? = nil) async throws {
        let tls = try tlsCA.map { try TLSContext.client(caFile: $0) }
        connection = try await AsyncConnection.connect(to: address, tls: tls, serverName: "localhost", timeout: 5)
    }

    func send(_ text: String) async throws { try await connection.write(Array(text.utf8)) }
    func send(bytes: [UInt8]) async throws { try await connection.write(bytes) }

    /// STARTTLS's go-ahead was read: handshake as a client.
    func startTLS(caFile: String) async throws {
        buffer = []
        try await connection.startTLS(context: try TLSContext.client(caFile: caFile), serverName: "localhost")
    }

    /// One line without CRLF, or nil when the connection ended or nothing came within `seconds`.
    func line(within seconds: Double = 30) async throws -> String? {
        while true {
            if let lf = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<lf])
                buffer.removeFirst(lf + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            let more: [UInt8]?
            do {
                more = try await withTimeout(seconds) { [connection] in try? await connection.readAvailable() }
            } catch is TimedOut {
                return nil
            }
            guard let chunk = more else { return nil }
            buffer += chunk
        }
    }

    /// Lines up to and including the one starting with `tag ` (all returned).
    func until(_ tag: String, within seconds: Double = 30) async throws -> [String] {
        var lines: [String] = []
        while let line = try await line(within: seconds) {
            lines.append(line)
            if line.hasPrefix(tag + " ") { return lines }
        }
        return lines
    }

    /// Greeting + LOGIN alice@contoso.com secret; returns the lines of the LOGIN answer.
    func login(password: String = "secret") async throws -> [String] {
        _ = try await line()
        try await send("L1 LOGIN alice@contoso.com \(password)\r\n")
        return try await until("L1")
    }

    func close() { connection.close() }
}
