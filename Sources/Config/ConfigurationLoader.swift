// Config: reads the TOML file, checks every key against the parameter table, and builds the typed configuration.
internal import Foundation
internal import MailCore
internal import TOMLKit

/// Loads and validates `mailgate.toml` (DESIGN.md §5).
///
/// Order of checks: size and encoding, TOML syntax (with TOMLKit's line), unknown keys and value types (driven by
/// `ConfigParameters.all`), then the rules that involve several keys. The first problem found is thrown.
public enum ConfigurationLoader {
    /// A configuration larger than this is refused unread (1 MiB is far more than any real one).
    public static let maximumFileSize = 1_048_576

    /// Reads and validates the file at `path` (relative to the working directory if not absolute).
    public static func load(path: String) throws(ConfigError) -> MailGateConfiguration {
        let absolute = absolutePath(path, base: FileManager.default.currentDirectoryPath)
        let url = URL(fileURLWithPath: absolute)
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: absolute)
            if let size = attributes[.size] as? Int, size > maximumFileSize {
                throw ConfigError(
                    file: absolute, line: nil, key: nil,
                    problem: "the file is \(size) bytes, more than the \(maximumFileSize) allowed; is this really the "
                        + "configuration file?")
            }
            data = try Data(contentsOf: url)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(
                file: absolute, line: nil, key: nil,
                problem: "cannot read the configuration file (\(Self.reason(error))); create it from the sample "
                    + "conf/mailgate.toml or pass --config FILE.")
        }
        guard data.count <= maximumFileSize else {
            throw ConfigError(
                file: absolute, line: nil, key: nil, problem: "the file is larger than \(maximumFileSize) bytes.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(
                file: absolute, line: nil, key: nil, problem: "the file is not valid UTF-8; save it as UTF-8.")
        }
        return try parse(text: text, path: absolute)
    }

    /// Validates configuration `text` as if read from `path` (used for relative paths and error messages).
    public static func parse(text: String, path: String) throws(ConfigError) -> MailGateConfiguration {
        let file = absolutePath(path, base: FileManager.default.currentDirectoryPath)
        guard text.utf8.count <= maximumFileSize else {
            throw ConfigError(
                file: file, line: nil, key: nil, problem: "the file is larger than \(maximumFileSize) bytes.")
        }
        if let nul = text.utf8.firstIndex(of: 0) {
            let line = text.utf8[..<nul].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            throw ConfigError(
                file: file, line: line, key: nil, problem: "the file contains a NUL byte; TOML does not allow it.")
        }
        try checkTableHeaders(text, file: file)
        let root: [String: TOMLNode]
        do {
            let table = try TOMLTable(string: text)
            root = TOMLNode.convert(table: table)
        } catch let error as TOMLParseError {
            throw ConfigError(
                file: file, line: error.source.begin.line, key: nil,
                problem: "TOML syntax error: \(error.description); fix the syntax at this line.")
        } catch {
            throw ConfigError(file: file, line: nil, key: nil, problem: "the file could not be parsed as TOML.")
        }
        var builder = ConfigurationBuilder(
            file: file, directory: (file as NSString).deletingLastPathComponent, finder: LineFinder(text: text))
        return try builder.build(root: root)
    }

    /// toml++ (inside TOMLKit) stops the process on an assertion for some malformed headers such as `[[[` or
    /// `[.a]` instead of reporting a parse error, so headers are checked here first: after `[` or `[[` and
    /// optional spaces, a header must start with a bare-key character or a quote.
    static func checkTableHeaders(_ text: String, file: String) throws(ConfigError) {
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var rest = Substring(rawLine.trimmingSpaces())
            guard rest.hasPrefix("[") else { continue }
            rest = rest.dropFirst()
            if rest.hasPrefix("[") { rest = rest.dropFirst() }
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard let first = rest.unicodeScalars.first else {
                throw ConfigError(
                    file: file, line: lineNumber, key: nil,
                    problem: "malformed table header; write it as [name] or [name.subname].")
            }
            let isKeyStart =
                (first >= "a" && first <= "z") || (first >= "A" && first <= "Z")
                || (first >= "0" && first <= "9") || first == "_" || first == "-" || first == "\"" || first == "'"
            guard isKeyStart else {
                throw ConfigError(
                    file: file, line: lineNumber, key: nil,
                    problem: "malformed table header; write it as [name] or [name.subname].")
            }
        }
    }

    static func absolutePath(_ path: String, base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError || nsError.code == 260 {
            return "no such file"
        }
        return nsError.localizedDescription
    }
}

/// A TOML document as plain values, so the rest of the loader does not touch TOMLKit's reference types.
indirect enum TOMLNode {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLNode])
    case table([String: TOMLNode])
    case other(String)

    static func convert(table: TOMLTable) -> [String: TOMLNode] {
        var out: [String: TOMLNode] = [:]
        for key in table.keys {
            if let value = table[key] { out[key] = convert(value) }
        }
        return out
    }

    static func convert(_ value: any TOMLValueConvertible) -> TOMLNode {
        switch value.type {
        case .string: return .string(value.string ?? "")
        case .int: return .integer(value.int ?? 0)
        case .double: return .float(value.double ?? 0)
        case .bool: return .bool(value.bool ?? false)
        case .table: return value.table.map { .table(convert(table: $0)) } ?? .table([:])
        case .array:
            guard let array = value.array else { return .array([]) }
            return .array(array.map { convert($0) })
        case .date, .time, .dateTime: return .other(value.type.description)
        }
    }

    /// The TOML type, as a phrase for "found …" in messages.
    var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a floating-point number"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        case .other(let name): return "a \(name)"
        }
    }
}

/// The values of one table after type checking, with defaults from the parameter table.
struct SectionValues {
    let section: ConfigSection
    let path: [String]
    var values: [String: ConfigValue]

    func value(_ key: String) -> ConfigValue? {
        if let value = values[key] { return value }
        if case .value(let fallback)? = ConfigParameters.parameter(key, in: section)?.defaultValue { return fallback }
        return nil
    }

    func string(_ key: String) -> String? {
        if case .string(let text)? = value(key) { return text }
        return nil
    }

    func bool(_ key: String) -> Bool {
        if case .bool(let flag)? = value(key) { return flag }
        return false
    }

    func integer(_ key: String) -> Int? {
        if case .integer(let number)? = value(key) { return number }
        // Durations default to their written form ("15m").
        if case .string(let text)? = value(key) { return DurationParser.seconds(text) }
        return nil
    }

    func hostPort(_ key: String) -> HostPortSpec? {
        if case .hostPort(let spec)? = value(key) { return spec }
        return nil
    }

    func strings(_ key: String) -> [String]? {
        if case .strings(let items)? = value(key) { return items }
        return nil
    }

    func cidrs(_ key: String) -> [CIDR] {
        if case .cidrs(let items)? = value(key) { return items }
        return []
    }

    func isSet(_ key: String) -> Bool { values[key] != nil }
}

/// Builds a `MailGateConfiguration` from a parsed document; holds what every error message needs.
struct ConfigurationBuilder {
    let file: String
    let directory: String
    let finder: LineFinder
    var warnings: [ConfigWarning] = []

    static let tables = ["listen", "oauth", "server", "download", "limits", "admin", "journal"]

    init(file: String, directory: String, finder: LineFinder) {
        self.file = file
        self.directory = directory
        self.finder = finder
    }

    func error(_ path: [String], _ problem: String) -> ConfigError {
        ConfigError(
            file: file, line: path.isEmpty ? nil : finder.line(of: path),
            key: path.isEmpty ? nil : path.joined(separator: "."), problem: problem)
    }

    mutating func build(root: [String: TOMLNode]) throws(ConfigError) -> MailGateConfiguration {
        var rootKeys: [String: TOMLNode] = [:]
        for (key, node) in root where !Self.tables.contains(key) { rootKeys[key] = node }
        for key in Self.tables {
            if let node = root[key], case .table = node {
            } else if let node = root[key] {
                throw error([key], "must be a table [\(key)], found \(node.typeName).")
            }
        }
        let top = try check(rootKeys, section: .root, path: [], extraAllowed: Self.tables)
        let listenValues = try check(table(root["listen"]), section: .listen, path: ["listen"])
        let downloadValues = try check(table(root["download"]), section: .download, path: ["download"])
        let limitsValues = try check(table(root["limits"]), section: .limits, path: ["limits"])
        let adminValues = try check(table(root["admin"]), section: .admin, path: ["admin"])

        var oauth: [String: OAuthSettings] = [:]
        for (name, node) in table(root["oauth"]).sorted(by: { $0.key < $1.key }) {
            let values = try check(try named(node, kind: "oauth", name: name), section: .oauth, path: ["oauth", name])
            oauth[name] = try buildOAuth(name: name, values)
        }
        var servers: [String: ServerSettings] = [:]
        for (name, node) in table(root["server"]).sorted(by: { $0.key < $1.key }) {
            let values = try check(
                try named(node, kind: "server", name: name), section: .server, path: ["server", name])
            servers[name] = try buildServer(name: name, values, oauth: oauth)
        }
        guard !oauth.isEmpty else {
            throw error(
                [],
                "there is no [oauth.NAME] table; add one (see conf/mailgate.toml) so that MailGate can "
                    + "obtain tokens.")
        }
        guard !servers.isEmpty else {
            throw error(
                [],
                "there is no [server.NAME] table; add one (see conf/mailgate.toml) naming the upstream "
                    + "SMTP/IMAP/POP3 servers.")
        }
        let listen = try buildListen(listenValues)
        let download = DownloadSettings(
            every: downloadValues.integer("every") ?? 900,
            forbidManualRefresh: downloadValues.bool("forbid_manual_refresh"),
            allowReloading: downloadValues.bool("allow_reloading"),
            maxStoreBytes: downloadValues.integer("max_store_bytes") ?? DownloadSettings.defaultMaxStoreBytes)
        var configuration = MailGateConfiguration(
            sourceFile: file, stateDirectory: resolve(top.string("state_dir") ?? "state"), listen: listen,
            oauth: oauth, servers: servers, download: download, limits: buildLimits(limitsValues),
            logLevel: top.string("log_level") ?? "info", warnings: warnings)
        configuration.admin = try buildAdmin(adminValues)
        configuration.journal = try buildJournal(check(table(root["journal"]), section: .journal, path: ["journal"]))
        return configuration
    }

    private func table(_ node: TOMLNode?) -> [String: TOMLNode] {
        if case .table(let entries)? = node { return entries }
        return [:]
    }

    private func named(_ node: TOMLNode, kind: String, name: String) throws(ConfigError) -> [String: TOMLNode] {
        let validName =
            !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
        guard validName else {
            throw error([kind, name], "the name of [\(kind).NAME] must be 1 to 64 letters, digits, \"-\" or \"_\".")
        }
        guard case .table(let entries) = node else {
            throw error(
                [kind, name],
                "must be a table [\(kind).\(name)] holding its settings, found \(node.typeName); "
                    + "write the settings under a [\(kind).\(name)] header.")
        }
        return entries
    }

    /// Rejects unknown keys, type-checks known ones, resolves paths; does not apply defaults (`SectionValues` does).
    private func check(
        _ entries: [String: TOMLNode], section: ConfigSection, path: [String], extraAllowed: [String] = []
    ) throws(ConfigError) -> SectionValues {
        var values: [String: ConfigValue] = [:]
        for (key, node) in entries.sorted(by: { $0.key < $1.key }) {
            guard let parameter = ConfigParameters.parameter(key, in: section) else {
                let allowed = (ConfigParameters.parameters(in: section).map(\.key) + extraAllowed).joined(
                    separator: ", ")
                let place = path.isEmpty ? "at the top level" : "in [\(path.joined(separator: "."))]"
                throw error(
                    path + [key],
                    "unknown key \"\(key)\" \(place); allowed keys are: \(allowed). "
                        + "Correct or remove it.")
            }
            values[key] = try convert(node, parameter, path: path + [key])
        }
        for parameter in ConfigParameters.parameters(in: section) where parameter.defaultValue == .required {
            guard values[parameter.key] == nil else { continue }
            if parameter.key == "client_id" {
                throw error(
                    path + ["client_id"],
                    "is missing: Microsoft 365 needs your own app registration. Register "
                        + "an application in Microsoft Entra ID (see README, \"Registering an Entra ID app\") and set "
                        + "client_id to its Application (client) ID.")
            }
            throw error(
                path + [parameter.key],
                "is required in [\(path.joined(separator: "."))]; it must be "
                    + "\(parameter.kind.phrase).")
        }
        return SectionValues(section: section, path: path, values: values)
    }

    private func convert(_ node: TOMLNode, _ parameter: ConfigParameter, path: [String]) throws(ConfigError)
        -> ConfigValue
    {
        let expected = "must be \(parameter.kind.phrase)"
        switch parameter.kind {
        case .string(let maximumLength):
            guard case .string(let text) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard !text.isEmpty else { throw error(path, "must not be empty; set a value or remove the key.") }
            guard text.count <= maximumLength else {
                throw error(path, "is longer than \(maximumLength) characters; shorten it.")
            }
            guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw error(path, "contains control characters; remove them.")
            }
            return .string(text)
        case .path:
            guard case .string(let text) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard !text.isEmpty, text.utf8.count <= 4_096,
                !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else { throw error(path, "must be a non-empty path of at most 4096 bytes without control characters.") }
            return .string(resolve(text))
        case .bool:
            guard case .bool(let flag) = node else {
                throw error(path, "\(expected) (without quotes), found \(node.typeName).")
            }
            return .bool(flag)
        case .integer(let range):
            guard case .integer(let number) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard range.contains(number) else { throw error(path, "is \(number); it \(expected).") }
            return .integer(number)
        case .duration(let range):
            let seconds: Int?
            let shown: String
            switch node {
            case .integer(let number):
                seconds = number
                shown = String(number)
            case .string(let text):
                seconds = DurationParser.seconds(text)
                shown = "\"\(sanitizeForLog(text, maximumLength: 40))\""
            default: throw error(path, "\(expected), found \(node.typeName).")
            }
            guard let seconds else { throw error(path, "\(shown) is not a duration; it \(expected).") }
            guard range.contains(seconds) else { throw error(path, "\(shown) is out of range; it \(expected).") }
            return .integer(seconds)
        case .hostPort:
            guard case .string(let text) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard let spec = HostPortSpec(parsing: text) else {
                throw error(path, "\"\(sanitizeForLog(text, maximumLength: 80))\" is not valid; it \(expected).")
            }
            return .hostPort(spec)
        case .choice(let options):
            guard case .string(let text) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard options.contains(text) else {
                throw error(path, "\"\(sanitizeForLog(text, maximumLength: 40))\" is not allowed; it \(expected).")
            }
            return .string(text)
        case .stringArray:
            guard case .array(let items) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard items.count <= 64 else { throw error(path, "has \(items.count) entries; at most 64 are allowed.") }
            var out: [String] = []
            for item in items {
                guard case .string(let text) = item, !text.isEmpty, text.utf8.count <= 1_024,
                    !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F })
                else { throw error(path, "\(expected), each non-empty and without spaces or control characters.") }
                out.append(text)
            }
            guard !out.isEmpty else { throw error(path, "must not be empty; remove the key to use the default.") }
            return .strings(out)
        case .cidrArray:
            guard case .array(let items) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard items.count <= 1_024 else {
                throw error(path, "has \(items.count) entries; at most 1024 are allowed.")
            }
            var out: [CIDR] = []
            for item in items {
                guard case .string(let text) = item else { throw error(path, "\(expected); found \(item.typeName).") }
                guard let range = CIDR(parsing: text) else {
                    throw error(
                        path,
                        "\"\(sanitizeForLog(text, maximumLength: 64))\" is not an address range; it "
                            + "\(expected).")
                }
                out.append(range)
            }
            return .cidrs(out)
        case .url:
            guard case .string(let text) = node else { throw error(path, "\(expected), found \(node.typeName).") }
            guard Self.isAcceptableURL(text) else {
                throw error(
                    path,
                    "\"\(sanitizeForLog(text, maximumLength: 80))\" is not allowed; it \(expected) "
                        + "(http:// is accepted only for 127.0.0.1, [::1] or localhost).")
            }
            return .string(text.hasSuffix("/") ? String(text.dropLast()) : text)
        }
    }

    static func isAcceptableURL(_ text: String) -> Bool {
        guard text.utf8.count <= 2_048, !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F })
        else { return false }
        let rest: Substring
        let secure: Bool
        if text.hasPrefix("https://") {
            rest = text.dropFirst(8)
            secure = true
        } else if text.hasPrefix("http://") {
            rest = text.dropFirst(7)
            secure = false
        } else {
            return false
        }
        let authority = rest.prefix(while: { $0 != "/" && $0 != "?" && $0 != "#" })
        guard !authority.isEmpty, !authority.contains("@") else { return false }
        let hostPort = String(authority)
        let spec: HostPortSpec?
        if let parsed = HostPortSpec(parsing: hostPort) {
            spec = parsed
        } else {
            let bare =
                hostPort.hasPrefix("[") && hostPort.hasSuffix("]") ? String(hostPort.dropFirst().dropLast()) : hostPort
            spec =
                HostPortSpec.isValidHost(bare) || IPAddress.parse(bare)?.count == 16
                ? HostPortSpec(host: bare, port: secure ? 443 : 80) : nil
        }
        guard let spec else { return false }
        return secure || spec.isLoopback
    }

    private func resolve(_ path: String) -> String {
        ConfigurationLoader.absolutePath(path, base: directory)
    }

    // MARK: Sections

    private mutating func buildOAuth(name: String, _ values: SectionValues) throws(ConfigError) -> OAuthSettings {
        let path = ["oauth", name]
        let flow = OAuthFlow(rawValue: values.string("flow") ?? "") ?? .authorizationCode
        let tenant = values.string("tenant") ?? "organizations"
        let clientID = values.string("client_id")
        if clientID == OAuthSettings.placeholderClientID {
            warnings.append(
                ConfigWarning(
                    file: file, line: finder.line(of: path + ["client_id"]),
                    key: (path + ["client_id"]).joined(separator: "."),
                    message: "is the sample's placeholder; replace it with the Application (client) ID of your own "
                        + "Entra ID app registration (see README) before connecting accounts."))
        }
        if flow == .clientCredentials {
            if ["common", "organizations", "consumers"].contains(tenant.lowercased()) {
                throw error(
                    path + ["tenant"],
                    "is \"\(tenant)\", but flow = \"client_credentials\" needs a specific "
                        + "tenant: set tenant to your tenant id (a GUID) or a verified domain such as contoso.com.")
            }
            if !values.isSet("client_secret") {
                throw error(
                    path + ["client_secret"],
                    "is missing: flow = \"client_credentials\" signs in as the "
                        + "application itself and needs its client secret; set client_secret or choose another flow.")
            }
        }
        return OAuthSettings(
            name: name, provider: values.string("provider") ?? "microsoft365", clientID: clientID,
            clientSecret: values.string("client_secret").map { Redacted($0) }, tenant: tenant, flow: flow,
            authority: values.string("authority") ?? OAuthSettings.defaultAuthority, scopes: values.strings("scopes"),
            caFile: values.string("ca_file"), redirectPort: values.integer("redirect_port"))
    }

    private func buildServer(name: String, _ values: SectionValues, oauth: [String: OAuthSettings]) throws(ConfigError)
        -> ServerSettings
    {
        let path = ["server", name]
        let oauthName = values.string("oauth") ?? ""
        guard oauth[oauthName] != nil else {
            let defined = oauth.keys.sorted().joined(separator: ", ")
            throw error(
                path + ["oauth"],
                "refers to [oauth.\(oauthName)], which does not exist"
                    + (defined.isEmpty ? "" : " (defined: \(defined))") + "; add that table or correct the name.")
        }
        guard let smtp = values.hostPort("smtp") else { throw error(path + ["smtp"], "is required.") }
        let insecureAllowed = values.bool("allow_insecure_upstream")
        var security: [String: SecurityMode] = [:]
        for key in ["smtp_security", "imap_security", "pop3_security"] {
            let mode = SecurityMode(rawValue: values.string(key) ?? "") ?? .tls
            if mode == .none && !insecureAllowed {
                throw error(
                    path + [key],
                    "is \"none\", which sends tokens and mail unencrypted; use \"starttls\" or "
                        + "\"tls\", or set allow_insecure_upstream = true for a test server.")
            }
            security[key] = mode
        }
        let incoming = IncomingMode(rawValue: values.string("incoming") ?? "") ?? .imap
        let imap = values.hostPort("imap")
        let pop3 = values.hostPort("pop3")
        switch incoming {
        case .imap, .imapDownload:
            if imap == nil {
                throw error(
                    path + ["imap"],
                    "is required because incoming = \"\(incoming.rawValue)\"; set it, e.g. "
                        + "imap = \"outlook.office365.com:993\".")
            }
        case .pop3:
            if pop3 == nil {
                throw error(
                    path + ["pop3"],
                    "is required because incoming = \"pop3\"; set it, e.g. "
                        + "pop3 = \"outlook.office365.com:995\".")
            }
        }
        var clientNames: [String: String] = [:]
        for key in ["imap_sent_name", "imap_trash_name", "imap_spam_name"] {
            let value = values.string(key) ?? ""
            if value.isEmpty || value.uppercased() == "INBOX" {
                throw error(path + [key], "must name a folder other than INBOX, e.g. \"Sent\"; it is \"\(value)\".")
            }
            if let other = clientNames[value] {
                throw error(path + [key], "is \"\(value)\", which \(other) already uses; give each folder its own name.")
            }
            clientNames[value] = key
        }
        return ServerSettings(
            name: name, oauth: oauthName, smtp: smtp, smtpSecurity: security["smtp_security"] ?? .starttls,
            smtpAuth: values.bool("smtp_auth"), imap: imap, imapSecurity: security["imap_security"] ?? .tls,
            pop3: pop3, pop3Security: security["pop3_security"] ?? .tls, incoming: incoming,
            sentFolder: values.string("sent_folder"), trashFolder: values.string("trash_folder"),
            spamFolder: values.string("spam_folder"),
            sentCopy: SentCopyMode(rawValue: values.string("sent_copy") ?? "") ?? .auto,
            lockAfterSend: values.bool("lock_after_send"), showSentFolder: values.bool("show_sent_folder"),
            deleteAfterLoading: values.bool("delete_after_loading"),
            deleteAfterDays: values.integer("delete_after_days") ?? 0, caFile: values.string("ca_file"),
            allowInsecureUpstream: insecureAllowed, imapSentName: values.string("imap_sent_name") ?? "Sent",
            imapTrashName: values.string("imap_trash_name") ?? "Trash",
            imapSpamName: values.string("imap_spam_name") ?? "Junk")
    }

    private func buildListen(_ values: SectionValues) throws(ConfigError) -> ListenSettings {
        let path = ["listen"]
        let certificate = values.string("certificate")
        let privateKey = values.string("private_key")
        if certificate != nil && privateKey == nil {
            throw error(path + ["private_key"], "is missing: a certificate needs its private key; set private_key.")
        }
        if privateKey != nil && certificate == nil {
            throw error(
                path + ["certificate"], "is missing: private_key is set without its certificate; set certificate.")
        }
        let hasTLS = certificate != nil
        let allowPlaintext = values.bool("allow_plaintext")
        var seen: [HostPortSpec: String] = [:]
        for key in ["smtp", "imap", "pop3", "smtps", "imaps", "pop3s"] {
            guard let address = values.hostPort(key) else { continue }
            if let other = seen[address] {
                throw error(
                    path + [key],
                    "uses \(address), which listen.\(other) already uses; give each listener its own "
                        + "port.")
            }
            seen[address] = key
            if ["smtps", "imaps", "pop3s"].contains(key) && !hasTLS {
                throw error(
                    path + [key], "is an implicit-TLS listener and needs certificate and private_key in [listen].")
            }
            if !address.isLoopback && !hasTLS && !allowPlaintext {
                throw error(
                    path + [key],
                    "binds \(address), which is not a loopback address, without TLS: set "
                        + "certificate and private_key, or allow_plaintext = true to accept passwords in clear on the "
                        + "network, or bind to 127.0.0.1.")
            }
        }
        let relayNetworks = values.cidrs("relay_networks")
        let relayAccount = values.string("relay_account")
        if !relayNetworks.isEmpty && relayAccount == nil {
            throw error(
                path + ["relay_networks"],
                "is set without relay_account: mail relayed without login must be "
                    + "sent as some account; set relay_account to a connected account's address.")
        }
        if let relayAccount, !relayAccount.contains("@") {
            throw error(path + ["relay_account"], "must be an email address such as scanner@contoso.com.")
        }
        return ListenSettings(
            smtp: values.hostPort("smtp"), imap: values.hostPort("imap"), pop3: values.hostPort("pop3"),
            smtps: values.hostPort("smtps"), imaps: values.hostPort("imaps"), pop3s: values.hostPort("pop3s"),
            certificate: certificate, privateKey: privateKey, relayNetworks: relayNetworks,
            relayAccount: relayAccount?.lowercased(), allowPlaintext: allowPlaintext)
    }

    private func buildLimits(_ values: SectionValues) -> Limits {
        var limits = Limits.standard
        func set(_ key: String, _ apply: (inout Limits, Int) -> Void) {
            if values.isSet(key), let number = values.integer(key) { apply(&limits, number) }
        }
        set("smtp_command_line") { $0.smtpCommandLine = $1 }
        set("smtp_text_line") { $0.smtpTextLine = $1 }
        set("sasl_response") { $0.saslResponse = $1 }
        set("upstream_line") { $0.upstreamLine = $1 }
        set("imap_line") { $0.imapLine = $1 }
        set("message_size") { $0.messageSize = $1 }
        set("spool_memory") { $0.spoolMemory = $1 }
        set("write_buffer_high_water") { $0.writeBufferHighWater = $1 }
        set("read_chunk") { $0.readChunk = $1 }
        set("error_budget") { $0.errorBudget = $1 }
        set("idle_timeout") { $0.idleTimeoutSeconds = Double($1) }
        set("connect_timeout") { $0.connectTimeoutSeconds = Double($1) }
        set("handshake_timeout") { $0.handshakeTimeoutSeconds = Double($1) }
        if values.isSet("smtp_bare_newline"),
            let policy = values.string("smtp_bare_newline").flatMap(BareNewlinePolicy.init)
        {
            limits.smtpBareNewline = policy
        }
        set("imap_append_literal") { $0.imapAppendLiteral = $1 }
        set("imap_commands_in_flight") { $0.imapCommandsInFlight = $1 }
        set("imap_upstream_sessions") { $0.imapUpstreamSessions = $1 }
        set("imap_idle_timeout") { $0.imapIdleTimeoutSeconds = Double($1) }
        set("imap_append_dedup_window") { $0.imapAppendDedupWindowSeconds = Double($1) }
        set("smtp_sessions") { $0.smtpSessions = $1 }
        set("smtp_sessions_per_address") { $0.smtpSessionsPerAddress = $1 }
        set("password_hash_queue") { $0.passwordHashQueue = $1 }
        set("drain_timeout") { $0.drainTimeoutSeconds = Double($1) }
        set("command_line_timeout") { $0.commandLineTimeoutSeconds = Double($1) }
        set("unauthenticated_timeout") { $0.unauthenticatedTimeoutSeconds = Double($1) }
        set("imap_sessions_per_address") { $0.imapSessionsPerAddress = $1 }
        set("pop3_sessions_per_address") { $0.pop3SessionsPerAddress = $1 }
        return limits
    }
}
