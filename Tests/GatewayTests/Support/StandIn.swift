// GatewayTests/Support: the Microsoft 365 stand-in (integration/): its env file, tokens, control API, and small
// IMAP and SMTP clients the end-to-end tests use to check what landed.

import Crypto
import Foundation
import MailGateTesting
import IMAP
import MailCore
import TLS
import Testing
import Transport

@testable import Gateway

/// The running stand-in, from `integration/run/env` (or the file named by `MAILGATE_STANDIN_ENV`).
///
/// Tests call `StandIn.load()`: nil means "not running" and the test returns early with a message, unless
/// `MAILGATE_REQUIRE_INTEGRATION=1`, in which case a missing stand-in is a test failure.
struct StandIn: Sendable {
    let values: [String: String]

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }

    static var envFilePath: String {
        ProcessInfo.processInfo.environment["MAILGATE_STANDIN_ENV"] ?? packageRoot + "/integration/run/env"
    }

    /// The stand-in, or nil (after recording an issue when integration is required).
    static func load(sourceLocation: SourceLocation = #_sourceLocation) -> StandIn? {
        let path = envFilePath
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            if ProcessInfo.processInfo.environment["MAILGATE_REQUIRE_INTEGRATION"] == "1" {
                let reason =
                    "The M365 stand-in is required (MAILGATE_REQUIRE_INTEGRATION=1) but \(path) does not exist; "
                Issue.record(Comment(rawValue: reason + "run integration/up first."), sourceLocation: sourceLocation)
            } else {
                print(
                    "Skipping: the M365 stand-in is not running (no \(path)); run integration/up to include this test.")
            }
            return nil
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            var value = String(trimmed[trimmed.index(after: equals)...])
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            values[String(trimmed[..<equals])] = value
        }
        return StandIn(values: values)
    }

    subscript(_ key: String) -> String { values["MAILGATE_STANDIN_" + key] ?? "" }

    var host: String { self["HOST"] }
    var caFile: String { self["CA_FILE"] }

    func endpoint(starttls: Bool = false, port: Int? = nil) -> UpstreamEndpoint {
        let number = port ?? Int(starttls ? self["IMAP_PORT"] : self["IMAPS_PORT"])!
        return UpstreamEndpoint(
            address: HostPort(host: host, port: number)!, security: starttls ? .starttls : .tls, caFile: caFile)
    }

    // MARK: - Tokens (authorization code + PKCE with login_hint, through curl)

    /// An access token for `user` with the IMAP, POP and SMTP scopes.
    func accessToken(for user: String) throws -> String {
        let verifier = TestBase64.encode(SecureRandom.bytes(32))
        let challenge = TestBase64.encode(SHA256.hash(Array(verifier.utf8)))
        let redirect = "http://localhost:53682/callback"
        var query = URLComponents(string: self["AUTHORIZE_URL"])!
        query.queryItems = [
            URLQueryItem(name: "client_id", value: self["CLIENT_ID"]),
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "redirect_uri", value: redirect),
            URLQueryItem(name: "scope", value: self["SCOPES"]),
            URLQueryItem(name: "state", value: "sentmail-tests"),
            URLQueryItem(name: "code_challenge", value: challenge),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
            URLQueryItem(name: "login_hint", value: user),
        ]
        let location = try curl(["-o", "/dev/null", "-w", "%{redirect_url}", query.url!.absoluteString])
        guard let code = URLComponents(string: location)?.queryItems?.first(where: { $0.name == "code" })?.value else {
            throw StandInError("the stand-in's authorize endpoint gave no code for \(user): \(location.prefix(200))")
        }
        let body = try curl([
            "--data-urlencode", "client_id=\(self["CLIENT_ID"])", "--data-urlencode", "grant_type=authorization_code",
            "--data-urlencode", "code=\(code)", "--data-urlencode", "redirect_uri=\(redirect)",
            "--data-urlencode", "code_verifier=\(verifier)", self["TOKEN_URL"],
        ])
        guard let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let token = json["access_token"] as? String
        else { throw StandInError("the stand-in's token endpoint answered without an access token") }
        return token
    }

    /// POST to the control API.
    @discardableResult
    func control(_ path: String, json: String) throws -> String {
        try curl(["-H", "Content-Type: application/json", "--data", json, self["CONTROL_URL"] + "/" + path])
    }

    private func curl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "20", "--cacert", caFile] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readAllRetryingInterrupts()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw StandInError("curl exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

struct StandInError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Real tokens from the stand-in, cached per user; `xoauth2AfterRejection` fetches a new one.
final class StandInCredentials: UpstreamCredentials, @unchecked Sendable {
    // @unchecked Sendable: `tokens` is guarded by `lock`.
    let standIn: StandIn
    private let lock = NSLock()
    private var tokens: [String: String] = [:]

    init(_ standIn: StandIn) { self.standIn = standIn }

    func xoauth2(for account: String) async throws -> (user: String, token: Redacted<String>) {
        let cached = lock.withLock { tokens[account] }
        if let cached { return (account, Redacted(cached)) }
        return try await xoauth2AfterRejection(for: account, rejected: Redacted(""))
    }

    func xoauth2AfterRejection(for account: String, rejected: Redacted<String>) async throws -> (
        user: String, token: Redacted<String>
    ) {
        let token = try standIn.accessToken(for: account)
        lock.withLock { tokens[account] = token }
        return (account, Redacted(token))
    }
}

// MARK: - A checking IMAP client

/// A message found in a folder: its flags and exact bytes.
struct FetchedMessage: Equatable {
    var uid: UInt32
    var flags: String
    var bytes: [UInt8]
}

/// Logs in with XOAUTH2 (SASL-IR) over implicit TLS and reads messages back, independently of the worker's code.
final class CheckingIMAPClient {
    private let connection: AsyncConnection
    private var decoder = IMAPResponseDecoder()
    private var count = 0

    private init(connection: AsyncConnection) { self.connection = connection }

    static func open(_ standIn: StandIn, user: String, token: String) async throws -> CheckingIMAPClient {
        let context = try TLSContext.client(caFile: standIn.caFile)
        let connection = try await AsyncConnection.connect(
            to: HostPort(host: standIn.host, port: Int(standIn["IMAPS_PORT"])!)!, tls: context,
            serverName: standIn.host, timeout: 10)
        let client = CheckingIMAPClient(connection: connection)
        _ = try await client.next()  // greeting
        let sasl = TestBase64.standardBase64(Array("user=\(user)\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8))
        let (status, _) = try await client.command("AUTHENTICATE XOAUTH2 \(sasl)")
        guard status == .ok else { throw StandInError("the checking client's login as \(user) failed") }
        return client
    }

    /// The messages in `folder` whose Message-ID header contains `messageID`, with flags and bytes.
    func messages(in folder: String, messageID: String) async throws -> [FetchedMessage] {
        let encoded = String(decoding: MailboxName(decoded: folder).bytes, as: UTF8.self)
        let (examined, _) = try await command("EXAMINE \"\(encoded)\"")
        guard examined == .ok else { throw StandInError("EXAMINE \(folder) failed") }
        let (_, found) = try await command("UID SEARCH HEADER Message-ID \"\(messageID)\"")
        var uids: [UInt32] = []
        for case .untagged(.search(let numbers)) in found { uids += numbers }
        var messages: [FetchedMessage] = []
        for uid in uids {
            let (_, fetched) = try await command("UID FETCH \(uid) (FLAGS BODY.PEEK[])")
            for case .untagged(.fetch(let response)) in fetched {
                messages.append(Self.parse(response, uid: uid))
            }
        }
        return messages
    }

    func close() async {
        _ = try? await command("LOGOUT")
        connection.close()
    }

    private func command(_ text: String) async throws -> (ResponseStatus, [IMAPResponse]) {
        count += 1
        let tag = "c\(count)"
        try await connection.write(Array("\(tag) \(text)\r\n".utf8))
        var responses: [IMAPResponse] = []
        while true {
            let response = try await next()
            if case .tagged(let tagged) = response, tagged.tag == tag { return (tagged.status, responses) }
            responses.append(response)
        }
    }

    private func next() async throws -> IMAPResponse {
        while true {
            if let response = try decoder.next() { return response }
            guard let bytes = try await connection.readAvailable() else { throw StandInError("IMAP server closed") }
            decoder.append(bytes)
        }
    }

    /// Picks `FLAGS (…)` and the `BODY[] {n}` literal out of the raw attributes.
    static func parse(_ response: FetchResponse, uid: UInt32) -> FetchedMessage {
        let raw = response.rawAttributes
        let text = String(decoding: raw, as: UTF8.self)
        var flags = ""
        if let start = text.range(of: "FLAGS ("), let end = text[start.upperBound...].firstIndex(of: ")") {
            flags = String(text[start.upperBound..<end])
        }
        var bytes: [UInt8] = []
        let marker = Array("BODY[] {".utf8)
        if let index = raw.firstRange(of: marker)?.upperBound,
            let close = raw[index...].firstIndex(of: UInt8(ascii: "}")),
            let length = Int(String(decoding: raw[index..<close], as: UTF8.self))
        {
            let start = close + 3  // "}\r\n"
            bytes = Array(raw[start..<min(raw.count, start + length)])
        }
        return FetchedMessage(uid: uid, flags: flags, bytes: bytes)
    }
}

// MARK: - A submission client

/// Submits a message to the stand-in's SMTP port (STARTTLS, AUTH XOAUTH2), as a client would without MailGate.
func submitDirectly(_ standIn: StandIn, user: String, token: String, to recipient: String, message: [UInt8])
    async throws
{
    let connection = try await AsyncConnection.connect(
        to: HostPort(host: standIn.host, port: Int(standIn["SUBMISSION_PORT"])!)!, tls: nil, serverName: standIn.host,
        timeout: 10)
    defer { connection.close() }
    func reply() async throws -> String {
        while true {
            let line = String(decoding: try await connection.readLine(maximumLength: 4_096), as: UTF8.self)
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { return line }
        }
    }
    func send(_ line: String, expect: String) async throws {
        try await connection.write(Array((line + "\r\n").utf8))
        let answer = try await reply()
        guard answer.hasPrefix(expect) else { throw StandInError("SMTP \(line.prefix(20)): \(answer.prefix(120))") }
    }
    _ = try await reply()
    try await send("EHLO tests.local", expect: "250")
    try await send("STARTTLS", expect: "220")
    try await connection.startTLS(context: try TLSContext.client(caFile: standIn.caFile), serverName: standIn.host)
    try await send("EHLO tests.local", expect: "250")
    let sasl = TestBase64.standardBase64(Array("user=\(user)\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8))
    try await send("AUTH XOAUTH2 \(sasl)", expect: "235")
    try await send("MAIL FROM:<\(user)>", expect: "250")
    try await send("RCPT TO:<\(recipient)>", expect: "250")
    try await send("DATA", expect: "354")
    var stuffed: [UInt8] = []
    var atLineStart = true
    for byte in message {
        if atLineStart && byte == UInt8(ascii: ".") { stuffed.append(byte) }
        stuffed.append(byte)
        atLineStart = byte == 0x0A
    }
    if !atLineStart { stuffed += [0x0D, 0x0A] }
    try await connection.write(stuffed)
    try await send(".", expect: "250")
    try await send("QUIT", expect: "221")
}

/// Base64 helpers for the tests (standard alphabet for SASL, URL-safe without padding for PKCE).
enum TestBase64 {
    static func standardBase64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func encode(_ bytes: [UInt8]) -> String {
        standardBase64(bytes).replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
