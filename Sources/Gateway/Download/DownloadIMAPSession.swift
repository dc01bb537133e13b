// Gateway/Download: the IMAP conversation of one download run, with message bodies streamed to a sink.
import IMAP
import MailCore
import SASL
import Transport

/// A sequential IMAP client for the download runner: greeting, STARTTLS, XOAUTH2, SELECT, UID SEARCH, UID FETCH
/// with `BODY[]` streamed chunk by chunk into a sink (never held whole), UID STORE / UID EXPUNGE.
///
/// `IMAPUpstreamSession` decodes whole responses (a 20 MiB literal would sit in memory), so this reads lines and
/// literals itself: a literal announced right after `BODY[]` goes to the caller's sink in chunks of
/// `chunkCount` with back-pressure (the next read waits for the sink); any other literal (a header field fetch)
/// is kept when it is at most `keptLiteralLimit` bytes. The response is then parsed with the streamed literal
/// replaced by an empty one, so the shared parser still checks its grammar.
final class DownloadIMAPSession: @unchecked Sendable {
    // @unchecked: owned by one runner task at a time; nothing is shared.
    private let connection: AsyncConnection
    private let parser: IMAPResponseParser
    private let lineLimit: Int
    private var tagCount = 0
    private(set) var capabilities: [Capability] = []

    /// Bytes read from a streamed literal at a time.
    static let chunkCount = 65_536
    /// Largest literal kept in memory (a header field, a flag list): anything larger that is not `BODY[]` is a
    /// protocol error here.
    static let keptLiteralLimit = 65_536
    /// Largest response held in memory, lines and kept literals together.
    static let responseLimit = 1_048_576

    /// One parsed response and the literals kept from it, in order.
    struct Response {
        var response: IMAPResponse
        var keptLiterals: [[UInt8]]
        /// Octets of a streamed `BODY[]` literal, nil when there was none.
        var streamedCount: Int?
    }

    /// Receives a streamed body: `begin(count)`, `bytes` chunks, `end()`. Throwing stops the run (the rest of the
    /// literal is not read; the connection must be closed).
    protocol BodySink: AnyObject {
        func begin(count: Int) throws
        func bytes(_ chunk: [UInt8]) throws
        func end() throws
    }

    private init(connection: AsyncConnection, limits: Limits) {
        self.connection = connection
        self.parser = IMAPResponseParser(limits: IMAPLimits(limits: limits))
        self.lineLimit = Self.responseLimit
    }

    /// Connects, reads the greeting, upgrades with STARTTLS when the endpoint says so, learns the capabilities.
    static func open(_ endpoint: UpstreamEndpoint, limits: Limits) async throws -> DownloadIMAPSession {
        let connection = try await endpoint.connect(timeout: limits.connectTimeoutSeconds, limits: limits)
        let session = DownloadIMAPSession(connection: connection, limits: limits)
        do {
            let greeting = try await session.readResponse(sink: nil)
            guard case .untagged(let untagged) = greeting.response else {
                throw DownloadError.protocolViolation("the server's greeting is not an untagged response")
            }
            switch untagged {
            case .ok(let text):
                if case .capability(let list)? = text.code, endpoint.security != .starttls { session.capabilities = list }
            case .preauth: break
            case .bye(let text): throw DownloadError.upstreamRefused("greeting", sanitizeForLog(text.text))
            default: throw DownloadError.protocolViolation("the server's greeting is neither OK nor PREAUTH")
            }
            if endpoint.security == .starttls {
                _ = try await session.expectOK("STARTTLS", name: "STARTTLS")
                try await connection.startTLS(context: try endpoint.tlsContext(), serverName: endpoint.serverName)
                session.capabilities = []
            }
            if session.capabilities.isEmpty {
                let (_, untagged) = try await session.expectOK("CAPABILITY", name: "CAPABILITY")
                for case .capability(let list) in untagged { session.capabilities = list }
            }
            return session
        } catch {
            connection.close()
            throw error
        }
    }

    /// AUTHENTICATE XOAUTH2 (with SASL-IR when offered); returns whether the server accepted it.
    func authenticateXOAuth2(user: String, token: Redacted<String>) async throws -> Bool {
        let raw = try XOAuth2.rawResponse(user: user, accessToken: token)
        let encoded = Base64Codec.standard.encodeString(raw.revealed, padding: .required)
        let tag = nextTag()
        let initial = capabilities.contains(.saslIR)
        try await connection.write(Array("\(tag) AUTHENTICATE XOAUTH2\(initial ? " " + encoded : "")\r\n".utf8))
        var sent = initial
        while true {
            let next = try await readResponse(sink: nil)
            switch next.response {
            case .continuation:
                // The first `+` asks for the response; a later one carries an error (RFC 7628 §3.2.3): answer empty.
                try await connection.write(Array(((sent ? "" : encoded) + "\r\n").utf8))
                sent = true
            case .tagged(let tagged) where tagged.tag == tag:
                if tagged.status == .ok {
                    if case .capability(let list)? = tagged.code { capabilities = list }
                    return true
                }
                return false
            case .tagged:
                throw DownloadError.protocolViolation("a command completed that was not in flight")
            case .untagged(.bye(let text)):
                throw DownloadError.upstreamRefused("AUTHENTICATE", sanitizeForLog(text.text))
            case .untagged(.capability(let list)):
                capabilities = list
            case .untagged:
                continue
            }
        }
    }

    /// SELECT INBOX (read-write: retention may delete); returns its UIDVALIDITY and message count.
    func selectInbox() async throws -> (uidValidity: UInt32, exists: UInt32) {
        let (tagged, untagged) = try await expectOK("SELECT INBOX", name: "SELECT INBOX")
        var validity: UInt32?
        var exists: UInt32 = 0
        for response in untagged {
            switch response {
            case .ok(let text): if case .uidValidity(let value)? = text.code { validity = value }
            case .exists(let count): exists = count
            default: break
            }
        }
        if case .uidValidity(let value)? = tagged.code { validity = value }
        guard let validity else { throw DownloadError.protocolViolation("SELECT INBOX reported no UIDVALIDITY") }
        return (validity, exists)
    }

    /// `UID SEARCH UID first:*` (or `ALL` when first is nil), UIDs ascending. `first:*` always matches the highest
    /// UID even below `first` (RFC 3501 §6.4.8), so the caller filters.
    func searchUIDs(from first: UInt32?) async throws -> [UInt32] {
        let criteria = first.map { "UID \($0):*" } ?? "ALL"
        let (_, untagged) = try await expectOK("UID SEARCH \(criteria)", name: "UID SEARCH")
        var uids: [UInt32] = []
        for case .search(let numbers) in untagged { uids += numbers }
        return Array(Set(uids)).sorted()
    }

    /// UID, RFC822.SIZE and Message-ID of every message (for re-identifying after a UIDVALIDITY change).
    func identities() async throws -> [(uid: UInt32, size: Int, messageID: String)] {
        let tag = nextTag()
        try await connection.write(
            Array("\(tag) UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n".utf8))
        var found: [(uid: UInt32, size: Int, messageID: String)] = []
        while true {
            let next = try await readResponse(sink: nil)
            switch next.response {
            case .tagged(let tagged) where tagged.tag == tag:
                guard tagged.status == .ok else {
                    throw DownloadError.upstreamRefused("UID FETCH", sanitizeForLog(tagged.text))
                }
                return found
            case .tagged: throw DownloadError.protocolViolation("a command completed that was not in flight")
            case .untagged(.fetch(let fetch)):
                guard let uid = fetch.uid else { continue }
                let header = next.keptLiterals.first ?? []
                found.append(
                    (uid, Int(fetch.rfc822Size ?? 0), MessageID.extract(fromHeaderOf: header + [13, 10, 13, 10]) ?? ""))
            case .untagged(.bye(let text)): throw DownloadError.upstreamRefused("UID FETCH", sanitizeForLog(text.text))
            default: continue
            }
        }
    }

    /// `UID FETCH uid (UID BODY.PEEK[])` with the body streamed into `sink`; returns the body's octet count, or
    /// nil when the server no longer has the message (answered without a body).
    func fetchBody(uid: UInt32, into sink: any BodySink) async throws -> Int? {
        let tag = nextTag()
        try await connection.write(Array("\(tag) UID FETCH \(uid) (UID BODY.PEEK[])\r\n".utf8))
        var count: Int?
        while true {
            let next = try await readResponse(sink: sink)
            switch next.response {
            case .tagged(let tagged) where tagged.tag == tag:
                guard tagged.status == .ok else {
                    throw DownloadError.upstreamRefused("UID FETCH", sanitizeForLog(tagged.text))
                }
                return count
            case .tagged: throw DownloadError.protocolViolation("a command completed that was not in flight")
            case .untagged(.fetch(let fetch)):
                if let streamed = next.streamedCount {
                    guard fetch.uid == nil || fetch.uid == uid else {
                        throw DownloadError.protocolViolation("UID FETCH \(uid) returned the body of another message")
                    }
                    count = streamed
                }
            case .untagged(.bye(let text)): throw DownloadError.upstreamRefused("UID FETCH", sanitizeForLog(text.text))
            default: continue
            }
        }
    }

    /// Flags `uids` `\Deleted` and expunges exactly them (UID EXPUNGE with UIDPLUS; plain EXPUNGE otherwise).
    func delete(uids: [UInt32]) async throws {
        guard !uids.isEmpty else { return }
        let set = uids.map(String.init).joined(separator: ",")
        _ = try await expectOK("UID STORE \(set) +FLAGS.SILENT (\\Deleted)", name: "UID STORE")
        if capabilities.contains(.uidPlus) {
            _ = try await expectOK("UID EXPUNGE \(set)", name: "UID EXPUNGE")
        } else {
            _ = try await expectOK("EXPUNGE", name: "EXPUNGE")
        }
    }

    /// LOGOUT, politely; the connection is closed either way.
    func logout() async {
        defer { close() }
        _ = try? await expectOK("LOGOUT", name: "LOGOUT")
    }

    func close() { connection.close() }

    // MARK: - Commands and responses

    private func nextTag() -> String {
        tagCount += 1
        return "D\(tagCount)"
    }

    /// Sends `command` with a new tag and insists on a tagged OK.
    private func expectOK(_ command: String, name: String) async throws -> (TaggedResponse, [UntaggedResponse]) {
        let tag = nextTag()
        try await connection.write(Array("\(tag) \(command)\r\n".utf8))
        var untagged: [UntaggedResponse] = []
        while true {
            let next = try await readResponse(sink: nil)
            switch next.response {
            case .tagged(let tagged) where tagged.tag == tag:
                guard tagged.status == .ok else {
                    throw DownloadError.upstreamRefused(name, sanitizeForLog(tagged.text))
                }
                return (tagged, untagged)
            case .tagged: throw DownloadError.protocolViolation("a command completed that was not in flight")
            case .continuation:
                throw DownloadError.protocolViolation("the server asked for a continuation during \(name)")
            case .untagged(.bye(let text)) where name != "LOGOUT":
                throw DownloadError.upstreamRefused(name, sanitizeForLog(text.text))
            case .untagged(let response):
                untagged.append(response)
            }
        }
    }

    /// Reads one whole response. A literal right after `BODY[]` streams into `sink` (and is an error without one).
    private func readResponse(sink: (any BodySink)?) async throws -> Response {
        var bytes: [UInt8] = []
        var kept: [[UInt8]] = []
        var streamed: Int?
        while true {
            let line = try await connection.readLine(maximumLength: lineLimit)
            guard bytes.count + line.count + 2 <= Self.responseLimit else {
                throw DownloadError.protocolViolation("a response is larger than \(Self.responseLimit) bytes")
            }
            guard let (prefixEnd, count) = Self.literalAnnouncement(line) else {
                bytes += line
                bytes += [13, 10]
                break
            }
            let prefix = line[..<prefixEnd]
            if Self.endsWithBodySection(prefix), let sink {
                guard streamed == nil else {
                    throw DownloadError.protocolViolation("a FETCH response carried two message bodies")
                }
                bytes += prefix
                bytes += Array("{0}\r\n".utf8)
                try sink.begin(count: count)
                var remaining = count
                while remaining > 0 {
                    let chunk = try await connection.readExactly(min(remaining, Self.chunkCount))
                    try sink.bytes(chunk)
                    remaining -= chunk.count
                }
                try sink.end()
                streamed = count
            } else {
                guard count <= Self.keptLiteralLimit, bytes.count + line.count + count <= Self.responseLimit else {
                    throw DownloadError.protocolViolation(
                        "the server sent a literal of \(count) bytes where at most \(Self.keptLiteralLimit) fit")
                }
                let literal = try await connection.readExactly(count)
                bytes += line
                bytes += [13, 10]
                bytes += literal
                kept.append(literal)
            }
        }
        guard let (response, consumed) = try parser.parseResponse(bytes), consumed == bytes.count else {
            throw DownloadError.protocolViolation(
                "a response does not parse: \(sanitizeForLog(bytes.prefix(80), maximumLength: 80))")
        }
        return Response(response: response, keptLiterals: kept, streamedCount: streamed)
    }

    /// Where `{n}` starts at the end of `line` and n, or nil when the line announces no literal.
    static func literalAnnouncement(_ line: [UInt8]) -> (prefixEnd: Int, count: Int)? {
        guard line.last == UInt8(ascii: "}"), let open = line.lastIndex(of: UInt8(ascii: "{")) else { return nil }
        var digits = line[(open + 1)..<(line.count - 1)]
        if digits.last == UInt8(ascii: "+") { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let count = Int(String(decoding: digits, as: UTF8.self))
        else { return nil }
        return (open, count)
    }

    /// Whether the bytes before a literal end with `BODY[]` and a space: the message body itself.
    static func endsWithBodySection(_ prefix: ArraySlice<UInt8>) -> Bool {
        let marker = Array("BODY[] ".utf8)
        guard prefix.count >= marker.count else { return false }
        return zip(prefix.suffix(marker.count), marker).allSatisfy { a, b in
            (a >= 0x61 && a <= 0x7A ? a - 0x20 : a) == b
        }
    }
}
