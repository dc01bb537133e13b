// ConfigTests: `[admin]`: off by default, loopback freely, elsewhere only with TLS and a token.
import Config
import MailCore
import Testing

@Suite("[admin] settings")
struct AdminSettingsTests {
    @Test("absent: no status server; loopback needs nothing else")
    func loopback() throws {
        #expect(try parse(minimalOAuth + minimalServer).admin.listen == nil)
        let config = try parse(minimalOAuth + minimalServer + "[admin]\nlisten = \"127.0.0.1:9465\"\n")
        #expect(config.admin.listen == HostPortSpec(host: "127.0.0.1", port: 9465))
        #expect(config.admin.token == nil)
        #expect(config.admin.certificate == nil)
    }

    @Test("a non-loopback address without TLS or token is a configuration error naming [admin] listen")
    func exposedNeedsTLSAndToken() throws {
        let bare = failure(minimalOAuth + minimalServer + "[admin]\nlisten = \"0.0.0.0:9465\"\n")
        #expect(bare?.key == "admin.listen")
        #expect(bare?.description.contains("not a loopback address") == true)
        let tokenOnly = failure(
            minimalOAuth + minimalServer + "[admin]\nlisten = \"192.0.2.7:9465\"\ntoken = \"0123456789abcdef0123\"\n")
        #expect(tokenOnly?.key == "admin.listen")
        let tlsOnly = failure(
            minimalOAuth + minimalServer
                + "[admin]\nlisten = \"192.0.2.7:9465\"\ncertificate = \"a.pem\"\nprivate_key = \"a-key.pem\"\n")
        #expect(tlsOnly?.key == "admin.listen")
        let full = try parse(
            minimalOAuth + minimalServer
                + "[admin]\nlisten = \"192.0.2.7:9465\"\ncertificate = \"a.pem\"\nprivate_key = \"a-key.pem\"\n"
                + "token = \"0123456789abcdef0123\"\n")
        #expect(full.admin.certificate == "/etc/mailgate/a.pem")
        #expect(full.admin.token?.revealed == "0123456789abcdef0123")
        #expect("\(full.admin.token!)" == "<redacted>")
    }

    @Test("half a key pair, a short token and an unknown key are errors")
    func otherRules() throws {
        #expect(failure(minimalOAuth + minimalServer + "[admin]\ncertificate = \"a.pem\"\n")?.key == "admin.private_key")
        #expect(failure(minimalOAuth + minimalServer + "[admin]\nprivate_key = \"a.pem\"\n")?.key == "admin.certificate")
        #expect(failure(minimalOAuth + minimalServer + "[admin]\ntoken = \"short\"\n")?.key == "admin.token")
        #expect(failure(minimalOAuth + minimalServer + "[admin]\nport = 9465\n")?.key == "admin.port")
    }
}
