// Config: the one table of every configuration key (section, key, type, default, doc) that drives validation.
internal import MailCore

/// A table of the configuration file: its place decides which keys it may hold.
public enum ConfigSection: String, Sendable, CaseIterable {
    /// Top-level keys, before any `[table]`.
    case root
    /// `[listen]`
    case listen
    /// `[oauth.NAME]`
    case oauth
    /// `[server.NAME]`
    case server
    /// `[download]`
    case download
    /// `[limits]`
    case limits
    /// `[admin]`
    case admin
    /// `[journal]`
    case journal

    /// How the section is written in a file, with `NAME` for the named ones.
    public var header: String {
        switch self {
        case .root: return "(top level)"
        case .oauth: return "[oauth.NAME]"
        case .server: return "[server.NAME]"
        default: return "[\(rawValue)]"
        }
    }
}

/// What a key's value must look like.
public enum ParameterKind: Sendable, Equatable {
    /// Any string up to the given length, without control characters.
    case string(maximumLength: Int)
    /// A file or directory path; relative paths are resolved against the configuration file's directory.
    case path
    case bool
    /// An integer within the range.
    case integer(ClosedRange<Int>)
    /// A duration ("30s", "15m", "2h", "1d", or an integer of seconds) within the range of seconds.
    case duration(ClosedRange<Int>)
    /// `host:port` or `[ipv6]:port`, port 1–65535.
    case hostPort
    /// One of the listed strings.
    case choice([String])
    /// An array of strings.
    case stringArray
    /// An array of CIDR ranges ("192.168.10.0/24", "::1/128", or a single address).
    case cidrArray
    /// An `https://` URL (`http://` only for a loopback host, for test stand-ins).
    case url

    /// The type as a phrase for error messages and `config check --list-keys`.
    public var phrase: String {
        switch self {
        case .string: return "a string"
        case .path: return "a path (relative to the configuration file)"
        case .bool: return "true or false"
        case .integer(let range): return "an integer from \(range.lowerBound) to \(range.upperBound)"
        case .duration(let range):
            return
                "a duration from \(DurationParser.format(range.lowerBound)) to "
                + "\(DurationParser.format(range.upperBound)) "
                + "(e.g. \"30s\", \"15m\", \"2h\", \"1d\")"
        case .hostPort: return "\"host:port\" with a port from 1 to 65535 (IPv6 as \"[::1]:port\")"
        case .choice(let options): return "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        case .stringArray: return "an array of strings"
        case .cidrArray: return "an array of address ranges such as \"192.168.10.0/24\" or \"fd00::/8\""
        case .url: return "an https:// URL"
        }
    }
}

/// A decoded, type-checked value.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case bool(Bool)
    case integer(Int)
    case strings([String])
    case hostPort(HostPortSpec)
    case cidrs([CIDR])

    /// The value as TOML would write it.
    public var description: String {
        switch self {
        case .string(let text): return "\"\(text)\""
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let number): return String(number)
        case .strings(let items): return "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .hostPort(let spec): return "\"\(spec)\""
        case .cidrs(let items): return "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        }
    }
}

/// What happens when a key is absent.
public enum ParameterDefault: Sendable, Equatable {
    /// The key must be present.
    case required
    /// Absent means "not set" (the feature is off or found automatically).
    case unset
    /// Absent means this value.
    case value(ConfigValue)
    /// The default depends on other keys; the text says how.
    case computed(String)

    public var phrase: String {
        switch self {
        case .required: return "(required)"
        case .unset: return "(not set)"
        case .value(let value): return value.description
        case .computed(let text): return text
        }
    }
}

/// One configuration key: where it lives, what it accepts, its default and why it exists.
public struct ConfigParameter: Sendable {
    public var section: ConfigSection
    public var key: String
    public var kind: ParameterKind
    public var defaultValue: ParameterDefault
    public var doc: String

    public init(
        _ section: ConfigSection, _ key: String, _ kind: ParameterKind, _ defaultValue: ParameterDefault,
        _ doc: String
    ) {
        self.section = section
        self.key = key
        self.kind = kind
        self.defaultValue = defaultValue
        self.doc = doc
    }
}

/// Every key MailGate understands. A key not in this table is an error, wherever it appears.
public enum ConfigParameters {
    /// The durations `[limits]` and `[download]` accept, in seconds.
    static let timeoutRange = 1...86_400

    public static let all: [ConfigParameter] = [
        // top level
        .init(
            .root, "state_dir", .path, .value(.string("state")),
            "Directory for the database, the vault key and the sent-mail archive; created with mode 0700."),
        .init(
            .root, "log_level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
            .value(.string("info")), "Least severe log level written to stderr."),

        // [listen]
        .init(
            .listen, "smtp", .hostPort, .unset, "Plain SMTP submission listener (STARTTLS when a certificate is set)."),
        .init(.listen, "imap", .hostPort, .unset, "Plain IMAP listener (STARTTLS when a certificate is set)."),
        .init(.listen, "pop3", .hostPort, .unset, "Plain POP3 listener (STLS when a certificate is set)."),
        .init(
            .listen, "smtps", .hostPort, .unset, "SMTP listener with implicit TLS; needs certificate and private_key."),
        .init(
            .listen, "imaps", .hostPort, .unset, "IMAP listener with implicit TLS; needs certificate and private_key."),
        .init(
            .listen, "pop3s", .hostPort, .unset, "POP3 listener with implicit TLS; needs certificate and private_key."),
        .init(.listen, "certificate", .path, .unset, "PEM certificate chain shown to clients."),
        .init(.listen, "private_key", .path, .unset, "PEM private key of the certificate."),
        .init(
            .listen, "relay_networks", .cidrArray, .value(.cidrs([])),
            "Client address ranges that may send over SMTP without logging in (as relay_account)."),
        .init(
            .listen, "relay_account", .string(maximumLength: 254), .unset,
            "Account whose token sends the mail of relay_networks; required when relay_networks is set."),
        .init(
            .listen, "allow_plaintext", .bool, .value(.bool(false)),
            "Allow listeners on non-loopback addresses without TLS (passwords then cross the network in clear)."),

        // [oauth.NAME]
        .init(
            .oauth, "provider", .choice(["microsoft365"]), .value(.string("microsoft365")),
            "Identity provider; microsoft365 uses Microsoft's endpoints and Outlook scopes."),
        .init(
            .oauth, "client_id", .string(maximumLength: 128), .required,
            "Application (client) id of your own Entra ID app registration."),
        .init(
            .oauth, "client_secret", .string(maximumLength: 1024), .unset,
            "Client secret; needed for flow = \"client_credentials\"."),
        .init(
            .oauth, "tenant", .string(maximumLength: 253), .value(.string("organizations")),
            "Tenant id or domain, or organizations / common / consumers."),
        .init(
            .oauth, "flow", .choice(OAuthFlow.allCases.map(\.rawValue)), .value(.string("authorization_code")),
            "How account connect signs in: browser (authorization_code), device code, or app-only client_credentials."),
        .init(
            .oauth, "authority", .url, .value(.string(OAuthSettings.defaultAuthority)),
            "Base URL of the identity platform; tests point it at a stand-in."),
        .init(
            .oauth, "scopes", .stringArray,
            .computed("IMAP, POP, SMTP.Send and offline_access (client_credentials: outlook.office365.com/.default)"),
            "Scopes requested for the token; all must belong to the Outlook resource."),
        .init(.oauth, "ca_file", .path, .unset, "Extra trust anchors (PEM) for the identity platform."),
        .init(
            .oauth, "redirect_port", .integer(1...65_535), .unset,
            "Fixed loopback port for the browser redirect (must match the app registration); any free port if unset."),

        // [server.NAME]
        .init(.server, "oauth", .string(maximumLength: 64), .required, "Name of the [oauth.NAME] table to use."),
        .init(.server, "smtp", .hostPort, .required, "Upstream SMTP submission server, e.g. smtp.office365.com:587."),
        .init(
            .server, "smtp_security", .choice(SecurityMode.allCases.map(\.rawValue)), .value(.string("starttls")),
            "TLS towards the SMTP server; none needs allow_insecure_upstream."),
        .init(.server, "smtp_auth", .bool, .value(.bool(true)), "Authenticate upstream SMTP with XOAUTH2."),
        .init(.server, "imap", .hostPort, .unset, "Upstream IMAP server, e.g. outlook.office365.com:993."),
        .init(
            .server, "imap_security", .choice(SecurityMode.allCases.map(\.rawValue)), .value(.string("tls")),
            "TLS towards the IMAP server; none needs allow_insecure_upstream."),
        .init(.server, "pop3", .hostPort, .unset, "Upstream POP3 server, e.g. outlook.office365.com:995."),
        .init(
            .server, "pop3_security", .choice(SecurityMode.allCases.map(\.rawValue)), .value(.string("tls")),
            "TLS towards the POP3 server; none needs allow_insecure_upstream."),
        .init(
            .server, "incoming", .choice(IncomingMode.allCases.map(\.rawValue)), .value(.string("imap")),
            "Where clients' incoming mail comes from: relayed IMAP, relayed POP3, or scheduled IMAP download."),
        .init(
            .server, "sent_folder", .string(maximumLength: 255), .unset,
            "The server's Sent folder; found by SPECIAL-USE or known names when unset."),
        .init(
            .server, "trash_folder", .string(maximumLength: 255), .unset,
            "The server's Trash folder; found by SPECIAL-USE or known names when unset."),
        .init(
            .server, "spam_folder", .string(maximumLength: 255), .unset,
            "The server's Junk folder; found by SPECIAL-USE or known names when unset."),
        .init(
            .server, "sent_copy", .choice(SentCopyMode.allCases.map(\.rawValue)), .value(.string("auto")),
            "Append sent mail to the Sent folder: auto (unless the server filed it), always, never."),
        .init(
            .server, "lock_after_send", .bool, .value(.bool(true)),
            "Journal every sent message and refuse to alter or delete it in the Sent folder."),
        .init(.server, "show_sent_folder", .bool, .value(.bool(true)), "List the Sent folder to IMAP clients."),
        .init(
            .server, "delete_after_loading", .bool, .value(.bool(false)),
            "POP3 and downloads: delete upstream messages once loaded."),
        .init(
            .server, "delete_after_days", .integer(0...3_650), .value(.integer(0)),
            "POP3 and downloads: delete upstream messages this many days after loading; 0 keeps them."),
        .init(.server, "ca_file", .path, .unset, "Extra trust anchors (PEM) for this server; verification stays on."),
        .init(
            .server, "allow_insecure_upstream", .bool, .value(.bool(false)),
            "Permit *_security = \"none\" (for test stand-ins; never for Microsoft 365)."),
        .init(
            .server, "imap_sent_name", .string(maximumLength: 255), .value(.string("Sent")),
            "The name IMAP clients see for the server's Sent folder."),
        .init(
            .server, "imap_trash_name", .string(maximumLength: 255), .value(.string("Trash")),
            "The name IMAP clients see for the server's Trash folder."),
        .init(
            .server, "imap_spam_name", .string(maximumLength: 255), .value(.string("Junk")),
            "The name IMAP clients see for the server's Junk folder."),

        // [download]
        .init(
            .download, "every", .duration(1...86_400), .value(.string("15m")),
            "Time between scheduled downloads for incoming = \"imap-download\" servers."),
        .init(
            .download, "forbid_manual_refresh", .bool, .value(.bool(false)),
            "Clients read the local store only; their refresh does not start a download."),
        .init(
            .download, "allow_reloading", .bool, .value(.bool(false)), "Mail already downloaded may be fetched again."),
        .init(
            .download, "max_store_bytes", .integer(1_024...1_125_899_906_842_624),
            .value(.integer(DownloadSettings.defaultMaxStoreBytes)),
            "Bytes the local download store may hold (all accounts); a run that would exceed it stops with a warning."),

        // [limits]: each maps one MailCore.Limits field.
        .init(
            .limits, "smtp_command_line", .integer(512...65_536), .value(.integer(Limits.standard.smtpCommandLine)),
            "Longest SMTP command line from a client, CRLF included."),
        .init(
            .limits, "smtp_text_line", .integer(1_000...67_108_864), .value(.integer(Limits.standard.smtpTextLine)),
            "Longest line inside an SMTP message, CRLF included (passed on unchanged up to this)."),
        .init(
            .limits, "sasl_response", .integer(12_288...1_048_576), .value(.integer(Limits.standard.saslResponse)),
            "Longest SASL response line (RFC 4954 requires at least 12288)."),
        .init(
            .limits, "upstream_line", .integer(1_024...1_048_576), .value(.integer(Limits.standard.upstreamLine)),
            "Longest line accepted from an upstream server."),
        .init(
            .limits, "imap_line", .integer(1_024...1_048_576), .value(.integer(Limits.standard.imapLine)),
            "Longest IMAP command or response line outside literals."),
        .init(
            .limits, "message_size", .integer(1_024...1_073_741_824), .value(.integer(Limits.standard.messageSize)),
            "Largest message accepted when the upstream does not announce one, in bytes."),
        .init(
            .limits, "spool_memory", .integer(4_096...1_073_741_824), .value(.integer(Limits.standard.spoolMemory)),
            "Bytes of a message kept in memory before spilling to a file."),
        .init(
            .limits, "write_buffer_high_water", .integer(65_536...67_108_864),
            .value(.integer(Limits.standard.writeBufferHighWater)),
            "Bytes queued for one connection before reading from its peer pauses."),
        .init(
            .limits, "read_chunk", .integer(1_024...1_048_576), .value(.integer(Limits.standard.readChunk)),
            "Bytes read from a socket at a time."),
        .init(
            .limits, "error_budget", .integer(1...1_000), .value(.integer(Limits.standard.errorBudget)),
            "Protocol errors a client may make in one session before it is disconnected."),
        .init(
            .limits, "idle_timeout", .duration(10...86_400),
            .value(.string(DurationParser.format(Int(Limits.standard.idleTimeoutSeconds)))),
            "How long a client connection may stay silent before it is closed."),
        .init(
            .limits, "connect_timeout", .duration(1...600),
            .value(.string(DurationParser.format(Int(Limits.standard.connectTimeoutSeconds)))),
            "Time allowed for connecting to an upstream, TLS handshake included."),
        .init(
            .limits, "handshake_timeout", .duration(1...600),
            .value(.string(DurationParser.format(Int(Limits.standard.handshakeTimeoutSeconds)))),
            "Time allowed for a client's TLS handshake."),
        .init(
            .limits, "smtp_bare_newline", .choice(BareNewlinePolicy.allCases.map(\.rawValue)),
            .value(.string(Limits.standard.smtpBareNewline.rawValue)),
            "A bare CR or LF inside DATA: \"reject\" (550 5.5.2) or \"normalize\" (sent as CRLF)."),
        .init(
            .limits, "imap_append_literal", .integer(1_024...1_073_741_824),
            .value(.integer(Limits.standard.imapAppendLiteral)),
            "Largest message an IMAP client may APPEND; larger ones are refused with NO [TOOBIG] before the upload."),
        .init(
            .limits, "imap_commands_in_flight", .integer(1...10_000),
            .value(.integer(Limits.standard.imapCommandsInFlight)),
            "IMAP commands a client may pipeline before MailGate stops reading from it until answers come."),
        .init(
            .limits, "imap_upstream_sessions", .integer(1...100_000),
            .value(.integer(Limits.standard.imapUpstreamSessions)),
            "Upstream IMAP sessions per mailbox; a login past this gets NO [LIMIT] (Exchange allows about 16)."),
        .init(
            .limits, "imap_idle_timeout", .duration(60...86_400),
            .value(.string(DurationParser.format(Int(Limits.standard.imapIdleTimeoutSeconds)))),
            "How long a logged-in IMAP connection may stay silent (RFC 9051: at least 30 minutes)."),
        .init(
            .limits, "imap_append_dedup_window", .duration(0...2_592_000),
            .value(.string(DurationParser.format(Int(Limits.standard.imapAppendDedupWindowSeconds)))),
            "How long after sending a client's APPEND of the same message to Sent is not filed twice."),
        .init(
            .limits, "smtp_sessions", .integer(1...100_000), .value(.integer(Limits.standard.smtpSessions)),
            "SMTP client sessions open at once over all SMTP listeners; one more gets 421 4.7.0."),
        .init(
            .limits, "smtp_sessions_per_address", .integer(1...100_000),
            .value(.integer(Limits.standard.smtpSessionsPerAddress)),
            "SMTP client sessions open at once from one client address; one more gets 421 4.7.0."),
        .init(
            .limits, "password_hash_queue", .integer(1...100_000), .value(.integer(Limits.standard.passwordHashQueue)),
            "Logins waiting for the slow password hash at most; one more gets 454 4.7.0 (IMAP/POP3: a temporary failure)."),
        .init(
            .limits, "drain_timeout", .duration(0...3_600),
            .value(.string(DurationParser.format(Int(Limits.standard.drainTimeoutSeconds)))),
            "On SIGTERM, how long sessions may finish the message or command in flight before they are closed."),
        .init(
            .limits, "command_line_timeout", .duration(5...3_600),
            .value(.string(DurationParser.format(Int(Limits.standard.commandLineTimeoutSeconds)))),
            "How long a client may take over one command line (first byte to line end); then 421 4.4.2 / * BYE / -ERR and a close. Message data and IMAP literals are not command lines."),
        .init(
            .limits, "unauthenticated_timeout", .duration(10...86_400),
            .value(.string(DurationParser.format(Int(Limits.standard.unauthenticatedTimeoutSeconds)))),
            "How long a client may stay connected without logging in (SMTP relay clients: until their first MAIL is accepted)."),
        .init(
            .limits, "imap_sessions_per_address", .integer(1...100_000),
            .value(.integer(Limits.standard.imapSessionsPerAddress)),
            "IMAP client sessions open at once from one client address per listener; one more gets * BYE [UNAVAILABLE]."),
        .init(
            .limits, "pop3_sessions_per_address", .integer(1...100_000),
            .value(.integer(Limits.standard.pop3SessionsPerAddress)),
            "POP3 client sessions open at once from one client address per listener; one more gets -ERR [SYS/TEMP]."),
        .init(
            .admin, "listen", .hostPort, .unset,
            "Status server: /metrics (Prometheus), /stats.json, / (status page); loopback unless TLS and token are set."),
        .init(.admin, "certificate", .path, .unset, "PEM certificate chain: the status server speaks HTTPS."),
        .init(.admin, "private_key", .path, .unset, "PEM private key for the status server's certificate."),
        .init(
            .admin, "token", .string(maximumLength: 256), .unset,
            "Every status request must carry it (Authorization: Bearer TOKEN, or as a Basic password); required off loopback."),

        // [journal]: checkpoints of the sent journal and their RFC 3161 time-stamps.
        .init(
            .journal, "checkpoint_every_entries", .integer(1...1_000_000), .value(.integer(100)),
            "serve writes a journal checkpoint once this many entries were added since the last one."),
        .init(
            .journal, "checkpoint_every", .duration(60...604_800), .value(.string("1h")),
            "serve writes a journal checkpoint this long after the last one when entries were added since."),
        .init(
            .journal, "tsa_url", .url, .unset,
            "RFC 3161 time-stamping authority: each checkpoint's hash is time-stamped there (a token per checkpoint)."),
        .init(
            .journal, "tsa_ca_file", .path, .unset,
            "Trust anchors (PEM) for the TSA's HTTPS and for verifying its time-stamp tokens."),
    ]

    /// The parameters of one section, in table order.
    public static func parameters(in section: ConfigSection) -> [ConfigParameter] {
        all.filter { $0.section == section }
    }

    /// The parameter for `key` in `section`, or `nil` if the key is unknown there.
    public static func parameter(_ key: String, in section: ConfigSection) -> ConfigParameter? {
        all.first { $0.section == section && $0.key == key }
    }
}
