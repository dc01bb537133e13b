// Config: `[admin]`: the optional status server (/metrics, /stats.json, the status page).
public import MailCore

/// `[admin]`: where the status server listens, if at all.
///
/// Loopback by default; any other address exposes account names and token states to the network, so it needs
/// TLS (`certificate`, `private_key`) and a `token` that every request must present.
public struct AdminSettings: Sendable {
    /// `listen`; `nil` (the default) runs no status server.
    public var listen: HostPortSpec?
    /// PEM certificate chain for HTTPS on `listen`.
    public var certificate: String?
    /// PEM private key for `certificate`.
    public var privateKey: String?
    /// Bearer token (or Basic password) every request must carry; required off loopback.
    public var token: Redacted<String>?

    public init(
        listen: HostPortSpec? = nil, certificate: String? = nil, privateKey: String? = nil,
        token: Redacted<String>? = nil
    ) {
        self.listen = listen
        self.certificate = certificate
        self.privateKey = privateKey
        self.token = token
    }
}

extension ConfigurationBuilder {
    /// `[admin]` checked: both TLS files or neither; off loopback, TLS and a token.
    func buildAdmin(_ values: SectionValues) throws(ConfigError) -> AdminSettings {
        let path = ["admin"]
        let settings = AdminSettings(
            listen: values.hostPort("listen"), certificate: values.string("certificate"),
            privateKey: values.string("private_key"), token: values.string("token").map(Redacted.init))
        if settings.certificate != nil && settings.privateKey == nil {
            throw error(path + ["private_key"], "is missing: a certificate needs its private key; set private_key.")
        }
        if settings.privateKey != nil && settings.certificate == nil {
            throw error(
                path + ["certificate"], "is missing: private_key is set without its certificate; set certificate.")
        }
        if let token = settings.token?.revealed, token.utf8.count < 16 {
            throw error(path + ["token"], "is shorter than 16 characters; use a long random value (openssl rand -hex 32).")
        }
        if let listen = settings.listen, !listen.isLoopback, settings.certificate == nil || settings.token == nil {
            throw error(
                path + ["listen"],
                "binds \(listen), which is not a loopback address: the status page shows accounts and token states, "
                    + "so set certificate, private_key and token in [admin], or bind to 127.0.0.1.")
        }
        return settings
    }
}
