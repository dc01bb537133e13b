// ConfigTests: the loader's validation rules, one test each, plus the shipped sample.
import Config
import Foundation
import MailCore
import Testing

/// A minimal valid configuration; tests append or replace lines to break exactly one rule.
let minimalOAuth = """
    [oauth.m365]
    client_id = "6a1f5b2c-1111-2222-3333-444455556666"

    """
let minimalServer = """
    [server.m365]
    oauth = "m365"
    smtp = "smtp.office365.com:587"
    imap = "outlook.office365.com:993"

    """

func parse(_ text: String, path: String = "/etc/mailgate/mailgate.toml") throws(ConfigError) -> MailGateConfiguration {
    try ConfigurationLoader.parse(text: text, path: path)
}

/// The error a text produces; fails the test if it loads.
func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
    do {
        _ = try parse(text)
        Issue.record("expected a configuration error", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("Configuration loader")
struct ConfigLoaderTests {
    @Test("a minimal file loads with every documented default")
    func minimalDefaults() throws {
        let config = try parse(minimalOAuth + minimalServer)
        #expect(config.sourceFile == "/etc/mailgate/mailgate.toml")
        #expect(config.stateDirectory == "/etc/mailgate/state")
        #expect(config.logLevel == "info")
        let oauth = try #require(config.oauth["m365"])
        #expect(oauth.provider == "microsoft365")
        #expect(oauth.tenant == "organizations")
        #expect(oauth.flow == .authorizationCode)
        #expect(oauth.authority == "https://login.microsoftonline.com")
        #expect(oauth.scopes.count == 4 && oauth.scopes.contains("offline_access"))
        #expect(oauth.scopes.contains("https://outlook.office.com/SMTP.Send"))
        let server = try #require(config.servers["m365"])
        #expect(server.smtp == HostPortSpec(host: "smtp.office365.com", port: 587))
        #expect(server.smtpSecurity == .starttls)
        #expect(server.imapSecurity == .tls && server.pop3Security == .tls)
        #expect(server.smtpAuth && server.lockAfterSend && server.showSentFolder)
        #expect(!server.deleteAfterLoading && server.deleteAfterDays == 0 && !server.allowInsecureUpstream)
        #expect(server.incoming == .imap && server.sentCopy == .auto)
        #expect(config.download.every == 900)
        #expect(config.limits == Limits.standard)
        #expect(config.listen.all.isEmpty)
        #expect(config.warnings.isEmpty)
    }

    @Test("relative paths resolve against the configuration file's directory")
    func relativePaths() throws {
        let text = """
            state_dir = "../var/state"
            [listen]
            smtps = "0.0.0.0:1465"
            certificate = "certs/gw.pem"
            private_key = "/abs/gw.key"
            [oauth.m365]
            client_id = "abc"
            ca_file = "ca.pem"
            \(minimalServer)
            """
        let config = try parse(text, path: "/opt/mg/conf/mailgate.toml")
        #expect(config.stateDirectory == "/opt/mg/var/state")
        #expect(config.listen.certificate == "/opt/mg/conf/certs/gw.pem")
        #expect(config.listen.privateKey == "/abs/gw.key")
        #expect(config.oauth["m365"]?.caFile == "/opt/mg/conf/ca.pem")
    }

    @Test(
        "unknown keys are errors in every table, naming the key and the allowed keys",
        arguments: [
            ("colour = 1\n" + minimalOAuth + minimalServer, "colour", "state_dir"),
            ("[listen]\nsmpt = \"127.0.0.1:25\"\n" + minimalOAuth + minimalServer, "listen.smpt", "relay_networks"),
            (minimalOAuth + "clientid = \"x\"\n" + minimalServer, "oauth.m365.clientid", "client_id"),
            (minimalOAuth + minimalServer + "smtp_securty = \"tls\"\n", "server.m365.smtp_securty", "smtp_security"),
            (
                minimalOAuth + minimalServer + "[download]\nevery_minutes = 5\n", "download.every_minutes",
                "allow_reloading"
            ),
            (minimalOAuth + minimalServer + "[limits]\nline = 5\n", "limits.line", "idle_timeout"),
        ])
    func unknownKeys(text: String, key: String, allowed: String) throws {
        let error = try #require(failure(text))
        #expect(error.key == key)
        #expect(error.description.contains("unknown key"))
        #expect(error.description.contains(allowed))
        #expect(error.line != nil)
        // The line really holds the key.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let last = String(key.split(separator: ".").last!)
        #expect(lines[error.line! - 1].hasPrefix(last))
    }

    @Test(
        "bad ports are refused",
        arguments: [
            "smtp.office365.com:0", "smtp.office365.com:70000",
            "smtp.office365.com:abc", "smtp.office365.com", ":587", "smtp.office365.com:-1", "::1:587", "a b:25",
        ])
    func badPorts(value: String) throws {
        let text = minimalOAuth + minimalServer.replacingOccurrences(of: "smtp.office365.com:587", with: value)
        let error = try #require(failure(text))
        #expect(error.key == "server.m365.smtp")
        #expect(error.description.contains("1 to 65535"))
        #expect(error.line == 5)
    }

    @Test("a port given as a number instead of a string names the type")
    func portWrongType() throws {
        let error = try #require(failure(minimalOAuth + minimalServer + "pop3 = 995\n"))
        #expect(error.key == "server.m365.pop3")
        #expect(error.description.contains("found an integer"))
    }

    @Test(
        "bad durations are refused",
        arguments: [
            "\"15x\"", "\"\"", "\"-5m\"", "\"0s\"", "\"2d\"", "0", "\"1h30\"",
            "\"99999999999999999999m\"", "true",
        ])
    func badDurations(value: String) throws {
        let error = try #require(failure(minimalOAuth + minimalServer + "[download]\nevery = \(value)\n"))
        #expect(error.key == "download.every")
    }

    @Test("good durations load")
    func goodDurations() throws {
        let config = try parse(
            minimalOAuth + minimalServer + "[download]\nevery = \"1h30m\"\n[limits]\nidle_timeout = 45\n")
        #expect(config.download.every == 5_400)
        #expect(config.limits.idleTimeoutSeconds == 45)
    }

    @Test("limits override MailCore.Limits fields and are bounded")
    func limits() throws {
        let config = try parse(
            minimalOAuth + minimalServer + "[limits]\nmessage_size = 2048\nerror_budget = 3\n"
                + "connect_timeout = \"1m\"\n")
        #expect(config.limits.messageSize == 2_048)
        #expect(config.limits.errorBudget == 3)
        #expect(config.limits.connectTimeoutSeconds == 60)
        #expect(config.limits.imapLine == Limits.standard.imapLine)
        let error = try #require(failure(minimalOAuth + minimalServer + "[limits]\nsmtp_text_line = 80\n"))
        #expect(error.key == "limits.smtp_text_line")
        #expect(error.description.contains("from 1000"))
    }

    @Test(
        "unknown enumeration values are refused, listing the allowed ones",
        arguments: [
            (minimalOAuth + minimalServer + "smtp_security = \"ssl\"\n", "server.m365.smtp_security", "\"starttls\""),
            (minimalOAuth + minimalServer + "incoming = \"imap4\"\n", "server.m365.incoming", "\"imap-download\""),
            (minimalOAuth + minimalServer + "sent_copy = \"maybe\"\n", "server.m365.sent_copy", "\"always\""),
            (minimalOAuth + "flow = \"password\"\n" + minimalServer, "oauth.m365.flow", "\"client_credentials\""),
            (minimalOAuth + "provider = \"google\"\n" + minimalServer, "oauth.m365.provider", "\"microsoft365\""),
            ("log_level = \"loud\"\n" + minimalOAuth + minimalServer, "log_level", "\"warning\""),
        ])
    func badChoices(text: String, key: String, allowed: String) throws {
        let error = try #require(failure(text))
        #expect(error.key == key)
        #expect(error.description.contains("is not allowed"))
        #expect(error.description.contains(allowed))
    }

    @Test("a server must reference an existing [oauth.NAME]")
    func danglingOAuth() throws {
        let error = try #require(
            failure(minimalOAuth + minimalServer.replacingOccurrences(of: "\"m365\"", with: "\"entra\"")))
        #expect(error.key == "server.m365.oauth")
        #expect(error.description.contains("[oauth.entra]"))
        #expect(error.description.contains("defined: m365"))
        #expect(error.line == 4)
    }

    @Test(
        "security none needs allow_insecure_upstream", arguments: ["smtp_security", "imap_security", "pop3_security"])
    func insecureUpstream(key: String) throws {
        let error = try #require(failure(minimalOAuth + minimalServer + "\(key) = \"none\"\n"))
        #expect(error.key == "server.m365.\(key)")
        #expect(error.description.contains("allow_insecure_upstream"))
        let config = try parse(minimalOAuth + minimalServer + "\(key) = \"none\"\nallow_insecure_upstream = true\n")
        #expect(config.servers["m365"]?.allowInsecureUpstream == true)
    }

    @Test("microsoft365 without client_id explains the app registration")
    func missingClientID() throws {
        let error = try #require(failure("[oauth.m365]\nprovider = \"microsoft365\"\n" + minimalServer))
        #expect(error.key == "oauth.m365.client_id")
        #expect(error.description.contains("Entra ID"))
        #expect(error.description.contains("README"))
        #expect(error.line == 1)
    }

    @Test("client_credentials needs a specific tenant", arguments: ["common", "organizations", "consumers", "Common"])
    func clientCredentialsTenant(tenant: String) throws {
        let text =
            minimalOAuth + "flow = \"client_credentials\"\nclient_secret = \"s3cr3t\"\ntenant = \"\(tenant)\"\n"
            + minimalServer
        let error = try #require(failure(text))
        #expect(error.key == "oauth.m365.tenant")
        #expect(error.description.contains("tenant id"))
    }

    @Test("client_credentials needs a client secret, and the secret never shows")
    func clientCredentialsSecret() throws {
        let error = try #require(
            failure(minimalOAuth + "flow = \"client_credentials\"\ntenant = \"contoso.com\"\n" + minimalServer))
        #expect(error.key == "oauth.m365.client_secret")
        let config = try parse(
            minimalOAuth + "flow = \"client_credentials\"\ntenant = \"contoso.com\"\nclient_secret = \"s3cr3t\"\n"
                + minimalServer)
        let oauth = try #require(config.oauth["m365"])
        #expect(oauth.clientSecret?.revealed == "s3cr3t")
        #expect(!"\(oauth)".contains("s3cr3t"))
        #expect(oauth.scopes == ["https://outlook.office365.com/.default"])
    }

    @Test(
        "non-loopback listeners need TLS or allow_plaintext",
        arguments: [
            "0.0.0.0:25", "192.168.1.5:1587",
            "[::]:1143", "mail.example.com:1110",
        ])
    func nonLoopbackListener(address: String) throws {
        let text = "[listen]\nsmtp = \"\(address)\"\n" + minimalOAuth + minimalServer
        let error = try #require(failure(text))
        #expect(error.key == "listen.smtp")
        #expect(error.description.contains("allow_plaintext"))
        #expect(error.line == 2)
        _ = try parse("[listen]\nsmtp = \"\(address)\"\nallow_plaintext = true\n" + minimalOAuth + minimalServer)
        _ = try parse(
            "[listen]\nsmtp = \"\(address)\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n"
                + minimalOAuth + minimalServer)
    }

    @Test(
        "loopback listeners need nothing",
        arguments: ["127.0.0.1:1587", "[::1]:1587", "localhost:1587", "127.8.9.1:25"])
    func loopbackListener(address: String) throws {
        let config = try parse("[listen]\nsmtp = \"\(address)\"\n" + minimalOAuth + minimalServer)
        #expect(config.listen.smtp?.isLoopback == true)
    }

    @Test("implicit-TLS listeners need a certificate even on loopback")
    func implicitTLSNeedsCertificate() throws {
        let error = try #require(failure("[listen]\nimaps = \"127.0.0.1:1993\"\n" + minimalOAuth + minimalServer))
        #expect(error.key == "listen.imaps")
        #expect(error.description.contains("certificate"))
    }

    @Test("a certificate needs its private key and vice versa")
    func certificatePairs() throws {
        let error = try #require(failure("[listen]\ncertificate = \"c.pem\"\n" + minimalOAuth + minimalServer))
        #expect(error.key == "listen.private_key")
        let other = try #require(failure("[listen]\nprivate_key = \"k.pem\"\n" + minimalOAuth + minimalServer))
        #expect(other.key == "listen.certificate")
    }

    @Test("relay networks must be CIDR ranges and need a relay account")
    func relayNetworks() throws {
        let bad = try #require(
            failure(
                "[listen]\nrelay_networks = [\"10.0.0.0/33\"]\nrelay_account = \"a@b.c\"\n"
                    + minimalOAuth + minimalServer))
        #expect(bad.key == "listen.relay_networks")
        #expect(bad.description.contains("10.0.0.0/33"))
        let notString = try #require(
            failure(
                "[listen]\nrelay_networks = [10]\nrelay_account = \"a@b.c\"\n"
                    + minimalOAuth + minimalServer))
        #expect(notString.key == "listen.relay_networks")
        let missing = try #require(
            failure("[listen]\nrelay_networks = [\"192.168.10.0/24\"]\n" + minimalOAuth + minimalServer))
        #expect(missing.key == "listen.relay_networks")
        #expect(missing.description.contains("relay_account"))
        let alone = try parse("[listen]\nrelay_account = \"Scanner@Contoso.com\"\n" + minimalOAuth + minimalServer)
        #expect(alone.listen.relayAccount == "scanner@contoso.com")
        let good = try parse(
            "[listen]\nrelay_networks = [\"192.168.10.0/24\", \"fd00::/8\", \"10.1.2.3\"]\n"
                + "relay_account = \"scanner@contoso.com\"\n" + minimalOAuth + minimalServer)
        #expect(good.listen.relayNetworks.count == 3)
        #expect(good.listen.relayNetworks[0].contains(ipAddress: "192.168.10.77"))
    }

    @Test("at least one [server] and one [oauth] are required")
    func requiredTables() throws {
        let noServer = try #require(failure(minimalOAuth))
        #expect(noServer.description.contains("[server.NAME]"))
        let noOAuth = try #require(failure("state_dir = \"x\"\n"))
        #expect(noOAuth.description.contains("[oauth.NAME]"))
        let empty = try #require(failure(""))
        #expect(empty.key == nil)
    }

    @Test("incoming mode needs its upstream")
    func incomingNeedsUpstream() throws {
        let text = minimalOAuth + "[server.m365]\noauth = \"m365\"\nsmtp = \"smtp.office365.com:587\"\n"
        let imap = try #require(failure(text))
        #expect(imap.key == "server.m365.imap")
        let pop3 = try #require(failure(text + "incoming = \"pop3\"\n"))
        #expect(pop3.key == "server.m365.pop3")
        let config = try parse(text + "incoming = \"pop3\"\npop3 = \"outlook.office365.com:995\"\n")
        #expect(config.servers["m365"]?.incoming == .pop3)
    }

    @Test("TOML syntax errors carry TOMLKit's line")
    func syntaxError() throws {
        let error = try #require(failure(minimalOAuth + "[server.m365\noauth = \"m365\"\n"))
        #expect(error.line == 3)
        #expect(error.description.hasPrefix("/etc/mailgate/mailgate.toml:3:"))
        #expect(error.description.contains("TOML syntax error"))
    }

    @Test(
        "hostile input is refused without crashing",
        arguments: [
            "state_dir = \"a\u{0}b\"", "= 1", "[[server]]\noauth = 1", "[server]\nm365 = 5", "listen = 5",
            "[oauth.\"bad name\"]\nclient_id = \"x\"", String(repeating: "[", count: 10_000),
            "a = " + String(repeating: "[", count: 5_000), "client_id = \"\(String(repeating: "x", count: 200))\"",
            "[oauth.m365]\nclient_id = \"a\u{7}b\"", "state_dir = 2024-01-01T00:00:00Z",
            // These headers make toml++ stop on an assertion unless the loader catches them first.
            "[[[", "[[", "[[ [a]]", "[.a]", "[[[a]]]", "[ ]",
        ])
    func hostile(text: String) {
        _ = failure(text + "\n")
    }

    @Test("the error description names file, line, key and the problem")
    func errorDescription() {
        let error = ConfigError(file: "/c.toml", line: 7, key: "server.a.smtp", problem: "is wrong.")
        #expect(error.description == "/c.toml:7: server.a.smtp: is wrong.")
        #expect(ConfigError(file: "/c.toml", line: nil, key: nil, problem: "x.").description == "/c.toml: x.")
    }

    @Test("load reports a missing file as a configuration error")
    func missingFile() {
        #expect(throws: ConfigError.self) { try ConfigurationLoader.load(path: "/nonexistent/mailgate.toml") }
    }

    @Test("duplicate listener addresses are refused")
    func duplicateListeners() throws {
        let error = try #require(
            failure(
                "[listen]\nsmtp = \"127.0.0.1:1100\"\npop3 = \"127.0.0.1:1100\"\n" + minimalOAuth
                    + minimalServer))
        #expect(error.key == "listen.smtp" || error.key == "listen.pop3")
    }

    @Test("authority must be https unless it points at loopback")
    func authority() throws {
        let error = try #require(failure(minimalOAuth + "authority = \"http://login.example.com\"\n" + minimalServer))
        #expect(error.key == "oauth.m365.authority")
        let config = try parse(minimalOAuth + "authority = \"http://127.0.0.1:8080/\"\n" + minimalServer)
        #expect(config.oauth["m365"]?.authority == "http://127.0.0.1:8080")
    }
}

@Suite("Sample configuration")
struct SampleConfigurationTests {
    static let samplePath: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("conf/mailgate.toml").path
    }()

    @Test("conf/mailgate.toml loads, listens on loopback, and warns about its placeholder client id")
    func sampleLoads() throws {
        let config = try ConfigurationLoader.load(path: Self.samplePath)
        #expect(config.listen.smtp?.description == "127.0.0.1:1587")
        #expect(config.listen.imap?.description == "127.0.0.1:1143")
        #expect(config.listen.pop3?.description == "127.0.0.1:1110")
        #expect(config.servers["m365"]?.oauth == "m365")
        #expect(config.stateDirectory.hasSuffix("/conf/state"))
        #expect(config.warnings.count == 1)
        #expect(config.warnings.first?.key == "oauth.m365.client_id")
        #expect(config.warnings.first?.description.contains("placeholder") == true)
    }

    @Test("the sample shows every key of the parameter table")
    func sampleHasEveryKey() throws {
        let text = try String(contentsOfFile: Self.samplePath, encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.drop(while: { $0 == "#" || $0 == " " }) }
        for parameter in ConfigParameters.all {
            #expect(lines.contains { $0.hasPrefix(parameter.key + " =") }, "sample lacks \(parameter.key)")
        }
    }

    @Test("the sample's commented-out defaults agree with the parameter table")
    func sampleDefaults() throws {
        let text = try String(contentsOfFile: Self.samplePath, encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix("# ") {
            let body = line.dropFirst(2)
            guard let equals = body.range(of: " = ") else { continue }
            let key = String(body[..<equals.lowerBound])
            let value = body[equals.upperBound...].split(separator: "#").first.map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            let matches = ConfigParameters.all.filter { $0.key == key }
            guard let parameter = matches.first, case .value(let fallback) = parameter.defaultValue, let value else {
                continue
            }
            #expect(value == fallback.description, "default of \(key): sample says \(value), table \(fallback)")
        }
    }
}
