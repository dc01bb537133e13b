// Gateway: the IMAP listener (plain + STARTTLS, or implicit TLS) that starts one IMAPSession per client.
import Dispatch
public import Foundation
public import Logging
public import MailCore
public import Policy
import Store
import Synchronization
public import TLS
public import Transport

/// The account's upstream IMAP settings (nil: the account has no IMAP server), resolved per login.
public typealias IMAPUpstreamResolver = @Sendable (_ account: String) -> IMAPAccountSettings?

/// What an IMAP session needs to know about an account's `[server]`.
public struct IMAPAccountSettings: Sendable {
    public var endpoint: UpstreamEndpoint
    public var allowInsecureUpstream: Bool
    /// `lock_after_send`.
    public var lockAfterSend: Bool
    /// `sent_folder`, `trash_folder`, `spam_folder` (server-side names; nil: found at login).
    public var sentFolder: String?
    public var trashFolder: String?
    public var spamFolder: String?
    /// `show_sent_folder`.
    public var showSentFolder: Bool
    /// The names clients see for Sent, Trash, Junk (`imap_sent_name`, `imap_trash_name`, `imap_spam_name`).
    public var clientSentName = "Sent"
    public var clientTrashName = "Trash"
    public var clientJunkName = "Junk"
    /// `sent_copy`: whether the gateway files its own copy, which decides how a client's APPEND to Sent is
    /// de-duplicated (`AppendDedup`).
    public var sentCopy = SentCopyMode.auto

    public init(
        endpoint: UpstreamEndpoint, allowInsecureUpstream: Bool = false, lockAfterSend: Bool = true,
        sentFolder: String? = nil, trashFolder: String? = nil, spamFolder: String? = nil, showSentFolder: Bool = true
    ) {
        self.endpoint = endpoint
        self.allowInsecureUpstream = allowInsecureUpstream
        self.lockAfterSend = lockAfterSend
        self.sentFolder = sentFolder
        self.trashFolder = trashFolder
        self.spamFolder = spamFolder
        self.showSentFolder = showSentFolder
    }
}

/// What one IMAP listener needs from the configuration.
public struct IMAPGatewayConfiguration: Sendable {
    /// Name for counters and logs (`imap`, `imaps`).
    public var listenerName: String
    /// `allow_plaintext`: offer LOGIN / AUTH=PLAIN without TLS on non-loopback addresses.
    public var allowPlaintext: Bool
    /// Every bound (command line, literals, commands in flight, timeouts, upstream sessions per mailbox).
    public var limits: Limits
    /// Seconds between IDLE re-issues upstream (Exchange lets long IDLEs die silently; 10 min at most).
    public var idleReissueSeconds: Double

    public init(listenerName: String, allowPlaintext: Bool = false, limits: Limits = .standard, idleReissueSeconds: Double = 540) {
        self.listenerName = listenerName
        self.allowPlaintext = allowPlaintext
        self.limits = limits
        self.idleReissueSeconds = idleReissueSeconds
    }
}

/// Upstream IMAP sessions per mailbox, shared by every IMAP listener of a process, so that MailGate stays below
/// Exchange's own per-mailbox connection limit (reported as 16–20; m365-protocol.md §4).
public final class IMAPUpstreamSessionCap: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public let maximum: Int

    public init(maximum: Int) { self.maximum = maximum }

    /// Takes a slot for `account`; false when all are in use.
    func acquire(_ account: String) -> Bool {
        counts.withLock { counts in
            let current = counts[account, default: 0]
            guard current < maximum else { return false }
            counts[account] = current + 1
            return true
        }
    }

    func release(_ account: String) {
        counts.withLock { counts in
            let current = counts[account, default: 0]
            counts[account] = current > 1 ? current - 1 : nil
        }
    }

    /// Slots in use for `account`.
    public func inUse(_ account: String) -> Int { counts.withLock { $0[account, default: 0] } }
    /// Upstream sessions held now over all mailboxes (the status page's "sessions now").
    public var totalInUse: Int { counts.withLock { $0.values.reduce(0, +) } }
}

/// MailGate's IMAP service: legacy clients log in with their local password; each client connection gets its own
/// upstream connection (AUTHENTICATE XOAUTH2) on the same serial queue, and the session relays between them.
public final class IMAPGateway: Sendable {
    private let listener: Listener
    private let table: SessionTable<IMAPSession>
    private let logger: Logger

    /// Binds `listen` and starts accepting.
    ///
    /// - Throws: `TransportError` when the address cannot be bound; `IMAPGatewaySetupError` for implicit TLS
    ///   without a certificate.
    public init(
        listen: HostPort, implicitTLS: Bool, tls: TLSContext?, configuration: IMAPGatewayConfiguration,
        authenticator: LocalAuthenticator, credentials: any UpstreamCredentials, resolver: @escaping IMAPUpstreamResolver,
        sessionCap: IMAPUpstreamSessionCap, counters: any GatewayCounters = NoCounters(),
        journal: (any IMAPSentJournal)? = nil, logger: Logger,
        sentCopyCanceller: (any SentCopyCancelling)? = nil, sentFolderSearch: (any SentFolderSearching)? = nil
    ) throws {
        if implicitTLS && tls == nil { throw IMAPGatewaySetupError.implicitTLSWithoutCertificate(listen) }
        let environment = IMAPSessionEnvironment.Shared(IMAPSessionEnvironment(
            configuration: configuration, implicitTLS: implicitTLS, serverTLS: tls, authenticator: authenticator,
            credentials: credentials, resolver: resolver, sessionCap: sessionCap, counters: counters,
            journal: journal, tlsContexts: UpstreamTLSContexts(), logger: logger,
            sentCopyCanceller: sentCopyCanceller,
            sentFolderSearch: sentFolderSearch
                ?? UpstreamSentFolderSearch(credentials: credentials, limits: configuration.limits)))
        let box = SessionTable<IMAPSession>()
        self.table = box
        self.logger = logger
        // [limits] imap_sessions_per_address, per listener: one more gets a refusal in place of the greeting.
        let perAddress = configuration.limits.imapSessionsPerAddress
        let perAddressLimiter = AddressSessionLimiter(maximum: perAddress)
        let listenerName = configuration.listenerName
        self.listener = try Listener(
            address: listen, tls: implicitTLS ? tls : nil, limits: IMAPSession.connectionLimits(configuration.limits)
        ) { connection in
            perAddressLimiter.accept(
                connection, into: box,
                refusal: {
                    AddressSessionLimiter.refuse(
                        $0, line: "* BYE [UNAVAILABLE] Too many connections from your address (\(perAddress) open); try again later\r\n", logger: logger, what: "IMAP", counters: counters,
                        counter: "imap.connection.refused_limit", listenerName: listenerName)
                },
                make: { IMAPSession(client: $0, environment: environment) })
        }
        logger.info("IMAP listener started", metadata: ["address": "\(listener.boundAddress)", "tls": "\(implicitTLS)"])
    }

    /// The address actually bound (port 0 resolved).
    public var boundAddress: HostPort { listener.boundAddress }

    /// Client sessions currently open.
    public var activeSessionCount: Int { table.count }

    /// Closes the listening socket only: sessions already open go on (a reload that rebinds this listener).
    public func stopAccepting() {
        listener.close()
    }

    /// For a drain: ends with `* BYE` every session with no command in flight (checked on its queue, so a
    /// command's tagged reply has been written before the BYE); busy ones are left for the next call.
    public func shutdownQuietSessions() {
        let current = table.stopAdmitting()
        for session in current {
            session.queue.async { if session.isQuietForShutdown { session.shutdown() } }
        }
    }

    /// Writes of relayed upstream output per open session (tests: one upstream burst, one client write).
    var relayedClientWrites: [Int] { table.sessions.map { $0.clientWrites.load(ordering: .relaxed) } }

    /// Stops accepting and ends every session with `* BYE` (IMAP has no "finish the command first" for a proxy that
    /// does not know what the client is doing; a client reconnects).
    public func stop() {
        let current = table.stopAdmitting()
        listener.close()
        for session in current {
            session.queue.async { session.shutdown() }
        }
        logger.info("IMAP listener stopped", metadata: ["sessions": "\(current.count)"])
    }
}

/// A listener that cannot be set up as configured.
public enum IMAPGatewaySetupError: MailGateError {
    case implicitTLSWithoutCertificate(HostPort)

    public var description: String {
        switch self {
        case .implicitTLSWithoutCertificate(let address):
            "The implicit-TLS IMAP listener \(address) needs a certificate; set certificate and private_key in [listen]."
        }
    }
}

/// What the journal knows about a message the client appends to Sent (issue 8 point 6).
public enum IMAPJournalCopyState: Sendable, Equatable {
    /// Not sent through this gateway in the window (or not accepted upstream): the APPEND goes through.
    case unknown
    /// Sent, and a copy is in Sent already (made by MailGate, or filed by the server): the APPEND is not stored.
    case filed
    /// Sent, the gateway's own copy is still queued: the client's APPEND goes through; the queued job (`auto`)
    /// searches Sent before appending and then finds the client's copy, so one copy remains.
    case queued
}

/// The journal as the IMAP gateway asks it: called off the session queue (it reads the database).
public protocol IMAPSentJournal: Sendable {
    func copyState(account: String, messageID: String, since: Date) -> IMAPJournalCopyState
}

/// The Store's journal behind `IMAPSentJournal`.
struct StoreSentJournal: IMAPSentJournal {
    let database: MailGateDatabase

    func copyState(account: String, messageID: String, since: Date) -> IMAPJournalCopyState {
        guard let entries = try? database.journalEntries(account: account) else { return .unknown }
        var state = IMAPJournalCopyState.unknown
        for entry in entries where entry.messageID == messageID && entry.status == .sent && entry.createdAt >= since {
            switch entry.sentCopyState {
            case .made, .skipped: return .filed
            case .pending: state = .queued
            case .failed, .disabled: continue
            }
        }
        return state
    }
}

/// Counters that can add more than one at a time (bytes each way), for the IMAP gateway.
public protocol GatewayAmountCounters: GatewayCounters {
    func add(_ name: String, amount: Int, account: String?, listener: String)
}

extension NoCounters: GatewayAmountCounters {
    public func add(_ name: String, amount: Int, account: String?, listener: String) {}
}

extension StoreCounters: GatewayAmountCounters {
    func add(_ name: String, amount: Int, account: String?, listener: String) {
        guard amount > 0 else { return }
        batch.add(name, amount: Int64(amount), account: account, listener: listener)
    }
}
