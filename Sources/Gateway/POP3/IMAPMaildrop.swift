// Gateway: a POP3 maildrop served from the account's INBOX over one upstream IMAP connection (incoming = "imap").
import Dispatch
import Foundation
import IMAP
import Logging
import MailCore
import POP3
import SASL

/// The server's INBOX as a POP3 maildrop: `IMAPUpstreamLink` logs in (TLS or STARTTLS, XOAUTH2, one forced token
/// refresh when the first token is refused), then `SELECT INBOX` and `FETCH 1:* (UID RFC822.SIZE)` give the list:
/// UIDL is `UIDVALIDITY.UID` (stable while the mailbox keeps its UIDVALIDITY, RFC 1939 §7), sizes are RFC822.SIZE.
/// RETR streams `UID FETCH u BODY.PEEK[]` chunk by chunk as the literal arrives (never held whole; reading from
/// upstream pauses until the POP3 client has taken the previous chunk); TOP 0 fetches `BODY.PEEK[HEADER]`, TOP n
/// 64 KiB partial windows of the message through `POP3TopFilter` until n lines passed. DELE changes nothing
/// upstream; `commit` (QUIT in UPDATE) sends `UID STORE … +FLAGS.SILENT (\Deleted)` and `UID EXPUNGE …` (plain
/// `EXPUNGE` without UIDPLUS). A session that ends without commit logs out and deletes nothing. PEEK keeps `\Seen`.
///
/// Sizes: Dovecot's RFC822.SIZE is the exact CRLF size RETR sends; Exchange Online's is an estimate (m365-protocol.md
/// §3.6), so there a client may see a LIST size that differs from what RETR sends.
final class IMAPMaildrop: POP3Maildrop, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is used only on `queue` (the POP3 session's); callbacks hop onto it.

    private enum Running {
        case none
        case select(tag: String)
        case listing(tag: String)
        case fetching(tag: String, Fetch)
        case committing(tag: String)
    }

    private struct Fetch {
        var uid: UInt64
        var filter: POP3TopFilter?
        /// TOP n > 0: the message is fetched in partial windows (`BODY.PEEK[]<offset.window>`) until n lines passed.
        var partialOffset: Int?
        var literalCount = 0
        var literalSeen = false
        var inLiteral = false
        var chunk: @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void
        var done: @Sendable (Result<Void, MaildropError>) -> Void
    }

    let account: String
    private let settings: IMAPUpstreamSettings
    private let queue: DispatchQueue
    private let limits: Limits
    private let tlsContexts: UpstreamTLSContexts
    private let credentials: any UpstreamCredentials
    private let logger: Logger
    private var link: IMAPUpstreamLink?
    private var attempt = 1
    private var lastAccessToken: Redacted<String>?
    private var running = Running.none
    private var tagCount = 0
    private var uidValidity: UInt64 = 0
    private var exists = 0
    private var found: [Int: (uid: UInt64, size: Int)] = [:]
    private var uids: [UInt64] = []
    private var openDone: (@Sendable (Result<[MaildropMessage], MaildropError>) -> Void)?
    private var commitDone: (@Sendable (Result<Void, MaildropError>) -> Void)?
    private var commitSteps: [String] = []
    private var closed = false
    /// Chunks handed to the client side whose `resume` has not come yet; upstream reading pauses meanwhile.
    private var outstanding = 0
    /// The Microsoft 365 sign-in must be renewed (the open failed for that reason).
    private(set) var mustReconnect = false

    /// UIDs per `UID STORE` / `UID EXPUNGE`: Exchange refuses commands over about 10 KB (m365-protocol.md §3.6).
    static let uidsPerCommand = 500

    init(
        account: String, settings: IMAPUpstreamSettings, queue: DispatchQueue, limits: Limits,
        tlsContexts: UpstreamTLSContexts, credentials: any UpstreamCredentials, logger: Logger
    ) {
        self.account = account
        self.settings = settings
        self.queue = queue
        self.limits = limits
        self.tlsContexts = tlsContexts
        self.credentials = credentials
        self.logger = logger
    }

    // MARK: - POP3Maildrop

    func open(_ done: @escaping @Sendable (Result<[MaildropMessage], MaildropError>) -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        openDone = done
        startLink()
    }

    func retrieve(
        _ index: Int, bodyLines: Int?,
        chunk: @escaping @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void,
        done: @escaping @Sendable (Result<Void, MaildropError>) -> Void
    ) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard case .none = running, let link, !link.isEnded, uids.indices.contains(index) else {
            return done(.failure(.temporary("The connection to the mail server was lost")))
        }
        var fetch = Fetch(uid: uids[index], filter: bodyLines.map { POP3TopFilter(bodyLines: $0) }, chunk: chunk, done: done)
        if let bodyLines, bodyLines > 0 { fetch.partialOffset = 0 }
        send(fetch)
    }

    /// Bytes per partial FETCH for TOP n > 0: a header and a few lines fit one; the rest of a big message is never read.
    static let topWindow = 65_536

    private func send(_ fetch: Fetch) {
        let item: String
        if let offset = fetch.partialOffset {
            item = "BODY.PEEK[]<\(offset).\(Self.topWindow)>"
        } else {
            item = fetch.filter?.bodyLines == 0 ? "BODY.PEEK[HEADER]" : "BODY.PEEK[]"
        }
        let tag = nextTag()
        running = .fetching(tag: tag, fetch)
        link?.write(Array("\(tag) UID FETCH \(fetch.uid) (\(item))\r\n".utf8))
    }

    func commit(deleting indices: [Int], _ done: @escaping @Sendable (Result<Void, MaildropError>) -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard case .none = running, let link, !link.isEnded else {
            return done(.failure(.temporary("The connection to the mail server was lost; nothing was deleted")))
        }
        let selected = indices.filter { uids.indices.contains($0) }.map { uids[$0] }
        guard !selected.isEmpty else { return done(.success(())) }
        var steps: [String] = []
        var sets: [String] = []
        var start = 0
        while start < selected.count {
            let slice = selected[start..<min(start + Self.uidsPerCommand, selected.count)]
            sets.append(slice.map(String.init).joined(separator: ","))
            start += Self.uidsPerCommand
        }
        for set in sets { steps.append("UID STORE \(set) +FLAGS.SILENT (\\Deleted)") }
        if link.capabilities.contains(.uidPlus) {
            for set in sets { steps.append("UID EXPUNGE \(set)") }
        } else {
            steps.append("EXPUNGE")
        }
        commitSteps = steps
        commitDone = done
        nextCommitStep()
    }

    func close() {
        guard !closed else { return }
        closed = true
        if let link {
            link.onEvent = nil
            link.logout()
        }
        link = nil
    }

    // MARK: - Login

    private func startLink() {
        let link = IMAPUpstreamLink(
            account: account, settings: settings, queue: queue, limits: limits, tlsContexts: tlsContexts)
        self.link = link
        link.onEvent = { [weak self, weak link] event in
            guard let self, let link, self.link === link else { return }
            self.event(event, link)
        }
        link.open()
    }

    private func event(_ event: IMAPUpstreamLink.Event, _ link: IMAPUpstreamLink) {
        switch event {
        case .needToken:
            fetchToken(link, forceRefresh: attempt > 1)
        case .ready:
            link.setIdleTimeout(seconds: limits.imapIdleTimeoutSeconds)
            let tag = nextTag()
            running = .select(tag: tag)
            link.write(Array("\(tag) SELECT INBOX\r\n".utf8))
        case .authenticationFailed(let text):
            logger.info("POP3 (IMAP upstream) token refused", metadata: ["reply": "\(text)"])
            link.onEvent = nil
            if attempt == 1 && openDone != nil {
                attempt = 2
                startLink()
            } else {
                mustReconnect = true
                failOpen(.permanent("The Microsoft 365 sign-in of \(account) must be renewed"))
            }
        case .stream(let scanned):
            stream(scanned)
        case .writable, .burstEnd:
            break
        case .ended(let reason):
            self.link = nil
            lost(reason ?? "the upstream IMAP server closed the connection")
        }
    }

    private func fetchToken(_ link: IMAPUpstreamLink, forceRefresh: Bool) {
        let credentials = credentials
        let account = account
        let rejected = lastAccessToken
        let queue = queue
        Task {
            let result: Result<(user: String, token: Redacted<String>), any Error>
            do {
                if forceRefresh, let rejected {
                    result = .success(try await credentials.xoauth2AfterRejection(for: account, rejected: rejected))
                } else {
                    result = .success(try await credentials.xoauth2(for: account))
                }
            } catch {
                result = .failure(error)
            }
            let delivered = UncheckedBox(result)
            queue.async { [self] in tokenArrived(link, delivered.value) }
        }
    }

    private func tokenArrived(_ link: IMAPUpstreamLink, _ result: Result<(user: String, token: Redacted<String>), any Error>) {
        guard self.link === link, !closed else { return }
        switch result {
        case .failure(let error):
            link.onEvent = nil
            link.close()
            self.link = nil
            logger.warning("POP3 (IMAP upstream) token unavailable", metadata: ["error": "\(String(describing: error))"])
            if UpstreamOpenFailure.isTemporary(error) {
                failOpen(.temporary("Getting a Microsoft 365 token failed"))
            } else {
                mustReconnect = true
                failOpen(.permanent("The Microsoft 365 sign-in of \(account) must be renewed"))
            }
        case .success(let identity):
            lastAccessToken = identity.token
            do {
                link.supplyToken(try XOAuth2.rawResponse(user: identity.user, accessToken: identity.token))
            } catch {
                link.onEvent = nil
                link.close()
                self.link = nil
                failOpen(.temporary("The XOAUTH2 response could not be built"))
            }
        }
    }

    private func failOpen(_ error: MaildropError) {
        running = .none
        let done = openDone
        openDone = nil
        done?(.failure(error))
    }

    /// The upstream went away: whatever runs fails; later operations fail at once.
    private func lost(_ reason: String) {
        logger.info("POP3 (IMAP upstream) connection ended", metadata: ["reason": "\(sanitizeForLog(reason))"])
        let current = running
        running = .none
        switch current {
        case .none:
            if openDone != nil { failOpen(.temporary("The mail server could not be reached")) }
        case .select, .listing:
            failOpen(.temporary("The mail server closed the connection while the maildrop was opened"))
        case .fetching(_, let fetch):
            fetch.done(.failure(.temporary("The mail server closed the connection during the transfer")))
        case .committing:
            finishCommit(.failure(.temporary("The mail server closed the connection before the deletions were done")))
        }
    }

    // MARK: - Responses

    private func nextTag() -> String {
        tagCount += 1
        return "MGP\(tagCount)"
    }

    private func stream(_ event: IMAPStreamScanner.Event) {
        switch event {
        case .line(let line, let first, let literal):
            if case .fetching(let tag, var fetch) = running {
                if fetch.inLiteral {
                    fetch.inLiteral = false
                    running = .fetching(tag: tag, fetch)
                }
                if let literal, !fetch.literalSeen, Self.isBodyFetch(line) {
                    fetch.literalSeen = true
                    fetch.inLiteral = true
                    fetch.literalCount = literal.count
                    running = .fetching(tag: tag, fetch)
                    return
                }
            }
            if first { response(line) }
        case .literalBytes(let bytes):
            guard case .fetching(let tag, var fetch) = running, fetch.inLiteral else { return }
            var out = bytes
            if fetch.filter != nil {
                out = fetch.filter!.filter(bytes)
                running = .fetching(tag: tag, fetch)
            }
            guard !out.isEmpty else { return }
            handOut(out, fetch.chunk)
        case .literalEnd:
            break
        }
    }

    /// Hands a chunk to the POP3 side; upstream reading waits until it says `resume`.
    private func handOut(_ bytes: [UInt8], _ chunk: @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void) {
        outstanding += 1
        let once = ResumeOnce()
        chunk(bytes) { [self] in
            // Called on `queue` (the POP3Maildrop contract): mostly inside `chunk` itself, so reading never pauses
            // while the client keeps up; later (the client's `.writable`) only when it fell behind.
            dispatchPrecondition(condition: .onQueue(queue))
            guard once.take() else { return }
            outstanding -= 1
            if outstanding == 0 { link?.resumeReading() }
        }
        if outstanding > 0 { link?.pauseReading() }
    }

    /// `* n FETCH (… BODY[] {…` or `BODY[HEADER] {…`: the line that announces the message's literal.
    static func isBodyFetch(_ line: [UInt8]) -> Bool {
        let text = String(decoding: line.prefix(512), as: UTF8.self).uppercased()
        return text.hasPrefix("* ") && text.contains(" FETCH ") && (text.contains("BODY[]") || text.contains("BODY[HEADER]"))
    }

    private func response(_ line: [UInt8]) {
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .newlines)
        let words = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard words.count >= 2 else { return }
        if words[0] == "*" {
            untagged(words, text)
            return
        }
        let ok = words[1].uppercased() == "OK"
        let detail = sanitizeForLog(text, maximumLength: 200)
        switch running {
        case .select(let tag) where tag == words[0]:
            guard ok else {
                running = .none
                logger.warning("POP3 (IMAP upstream) SELECT INBOX refused", metadata: ["reply": "\(detail)"])
                return failOpen(.temporary("The mail server refused to open the INBOX"))
            }
            if exists == 0 { return finishListing() }
            let next = nextTag()
            running = .listing(tag: next)
            link?.write(Array("\(next) FETCH 1:* (UID RFC822.SIZE)\r\n".utf8))
        case .listing(let tag) where tag == words[0]:
            guard ok else {
                running = .none
                logger.warning("POP3 (IMAP upstream) FETCH of the list refused", metadata: ["reply": "\(detail)"])
                return failOpen(.temporary("The mail server refused to list the INBOX"))
            }
            finishListing()
        case .fetching(let tag, var fetch) where tag == words[0]:
            running = .none
            if ok, fetch.literalSeen, let offset = fetch.partialOffset, fetch.filter?.isDone == false,
                fetch.literalCount == Self.topWindow
            {
                // The window was full and TOP wants more lines: the next window.
                fetch.partialOffset = offset + Self.topWindow
                fetch.literalSeen = false
                fetch.inLiteral = false
                fetch.literalCount = 0
                return send(fetch)
            }
            if ok, fetch.partialOffset.map({ $0 > 0 }) == true, !fetch.literalSeen {
                // A later window past the end: Dovecot answers with an empty literal, others with nothing.
                return fetch.done(.success(()))
            }
            if !ok {
                logger.warning("POP3 (IMAP upstream) FETCH refused", metadata: ["reply": "\(detail)"])
                fetch.done(.failure(.temporary("The mail server refused to send the message")))
            } else if !fetch.literalSeen {
                fetch.done(.failure(.permanent("The message is no longer on the server")))
            } else {
                fetch.done(.success(()))
            }
        case .committing(let tag) where tag == words[0]:
            running = .none
            guard ok else {
                logger.warning("POP3 (IMAP upstream) deletion refused", metadata: ["reply": "\(detail)"])
                return finishCommit(.failure(.temporary("The mail server refused the deletion")))
            }
            nextCommitStep()
        default:
            break
        }
    }

    private func untagged(_ words: [String], _ text: String) {
        switch running {
        case .select:
            if words.count == 3, words[2].uppercased() == "EXISTS", let count = Int(words[1]) { exists = count }
            let upper = text.uppercased()
            if let range = upper.range(of: "[UIDVALIDITY ") {
                let digits = upper[range.upperBound...].prefix { $0.isNumber }
                uidValidity = UInt64(digits) ?? 0
            }
        case .listing:
            guard words.count == 3, let sequence = Int(words[1]), words[2].uppercased().hasPrefix("FETCH") else { return }
            let upper = words[2].uppercased()
            guard let uid = Self.number(after: "UID ", in: upper), let size = Self.number(after: "RFC822.SIZE ", in: upper)
            else { return }
            found[sequence] = (uid, Int(clamping: size))
        default:
            break
        }
    }

    static func number(after key: String, in text: String) -> UInt64? {
        var searchFrom = text.startIndex
        while let range = text.range(of: key, range: searchFrom..<text.endIndex) {
            // The key must start an item: after "(" or " ".
            if range.lowerBound == text.startIndex || [" ", "("].contains(text[text.index(before: range.lowerBound)]) {
                let digits = text[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
                return UInt64(digits.prefix(19))
            }
            searchFrom = range.upperBound
        }
        return nil
    }

    private func finishListing() {
        running = .none
        let ordered = found.keys.sorted().compactMap { found[$0] }
        uids = ordered.map(\.uid)
        found = [:]
        let list = ordered.map { MaildropMessage(uidl: "\(uidValidity).\($0.uid)", size: $0.size) }
        let done = openDone
        openDone = nil
        done?(.success(list))
    }

    private func nextCommitStep() {
        guard !commitSteps.isEmpty else { return finishCommit(.success(())) }
        guard let link, !link.isEnded else {
            return finishCommit(.failure(.temporary("The connection to the mail server was lost")))
        }
        let step = commitSteps.removeFirst()
        let tag = nextTag()
        running = .committing(tag: tag)
        link.write(Array("\(tag) \(step)\r\n".utf8))
    }

    private func finishCommit(_ result: Result<Void, MaildropError>) {
        commitSteps = []
        let done = commitDone
        commitDone = nil
        done?(result)
    }
}

/// A `resume` that counts once however often it is called.
private final class ResumeOnce: @unchecked Sendable {
    // @unchecked Sendable: `take` runs on the session queue only.
    private var taken = false
    func take() -> Bool {
        if taken { return false }
        taken = true
        return true
    }
}
