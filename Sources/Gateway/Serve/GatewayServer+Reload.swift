// Gateway: SIGHUP: re-read the configuration without dropping a session. Accounts and servers apply to the next
// login; a listener whose address or settings changed is rebound; what only a restart can change is listed.
public import Config
import Foundation
import Logging
import MailCore
import Transport

/// What one reload did.
public struct ReloadReport: Sendable, Equatable {
    /// One line per change applied (`smtp listener now on 127.0.0.1:2587`, `accounts and servers reloaded`).
    public var applied: [String] = []
    /// One line per change that waits for a restart (`[oauth] changed`).
    public var needsRestart: [String] = []
    /// Listeners that could not be bound as configured (the old one, if any, keeps serving).
    public var failed: [String] = []

    public init() {}
}

extension GatewayServer {
    /// Applies `new` to the running gateway. Sessions already open keep the settings they started with; new
    /// sessions and logins get the new ones. Call it from the queue that also calls `drainAndStop` (never two at once).
    public func reload(_ new: MailGateConfiguration) -> ReloadReport {
        let old = configuration
        var report = ReloadReport()
        report.needsRestart = Self.restartOnlyChanges(from: old, to: new)
        live.directory = AccountDirectory(reloading: live.directory, configuration: new)
        report.applied.append("accounts, [server] sections and [limits] for new sessions reloaded")
        let gatewayChanged =
            old.limits != new.limits || old.listen.allowPlaintext != new.listen.allowPlaintext
            || old.listen.relayAccount != new.listen.relayAccount || old.listen.relayNetworks != new.listen.relayNetworks
        let pairs: [(String, HostPortSpec?, HostPortSpec?, Bool)] = [
            ("smtp", old.listen.smtp, new.listen.smtp, false), ("smtps", old.listen.smtps, new.listen.smtps, true),
            ("imap", old.listen.imap, new.listen.imap, false), ("imaps", old.listen.imaps, new.listen.imaps, true),
        ]
        for (name, before, after, implicitTLS) in pairs where before != after || (after != nil && gatewayChanged) {
            rebind(name, to: after, implicitTLS: implicitTLS, configuration: new, report: &report)
        }
        return report
    }

    /// Replaces listener `name`: a new address is bound before the old one closes (no gap); the same address is
    /// closed first and bound again at once. The old listener's sessions go on in `retired…Gateways`.
    private func rebind(
        _ name: String, to spec: HostPortSpec?, implicitTLS: Bool, configuration: MailGateConfiguration,
        report: inout ReloadReport
    ) {
        let isSMTP = name.hasPrefix("smtp")
        let oldAddress = boundAddresses[name]
        guard let spec, let address = HostPort(host: spec.host, port: spec.port) else {
            retire(name, isSMTP: isSMTP)
            boundAddresses[name] = nil
            report.applied.append("\(name) listener removed")
            logger.notice("\(name) listener removed by the reload; its open sessions go on")
            return
        }
        let sameAddress = oldAddress.map { $0 == address || (address.port == 0 && $0.host == address.host) } ?? false
        if sameAddress { pauseAccepting(name, isSMTP: isSMTP) }
        do {
            let bound: HostPort
            if isSMTP {
                let gateway = try bindRetrying(sameAddress) {
                    try startSMTPListener(name, address, implicitTLS: implicitTLS, configuration: configuration)
                }
                retire(name, isSMTP: true)
                smtpGateways[name] = gateway
                bound = gateway.boundAddress
            } else {
                let gateway = try bindRetrying(sameAddress) {
                    try startIMAPListener(name, address, implicitTLS: implicitTLS, configuration: configuration)
                }
                retire(name, isSMTP: false)
                imapGateways[name] = gateway
                bound = gateway.boundAddress
            }
            boundAddresses[name] = bound
            report.applied.append("\(name) listener on \(bound)")
            logger.notice("\(name) listener on \(bound) (reloaded)")
        } catch {
            let text = "\(name) listener on \(address) could not be bound: \(error)"
            report.failed.append(text)
            if sameAddress {
                // The old socket is closed already: its sessions go on, new clients wait for the next reload.
                retire(name, isSMTP: isSMTP)
                boundAddresses[name] = nil
                logger.error("\(text); the listener is down until the next reload or restart")
            } else {
                logger.error("\(text); the old listener keeps serving")
            }
        }
    }

    /// Binds with `body`; on the listener's own address, retries for up to 2 s while it is still in use (the old
    /// socket is closed by its dispatch source's cancel handler, a moment after `stopAccepting`).
    private func bindRetrying<Gateway>(_ sameAddress: Bool, _ body: () throws -> Gateway) throws -> Gateway {
        let deadline = Date().addingTimeInterval(sameAddress ? 2 : 0)
        while true {
            do {
                return try body()
            } catch TransportError.addressInUse where Date() < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    private func pauseAccepting(_ name: String, isSMTP: Bool) {
        if isSMTP { smtpGateways[name]?.stopAccepting() } else { imapGateways[name]?.stopAccepting() }
    }

    /// Moves listener `name` out of service: no longer accepting, its sessions untouched.
    private func retire(_ name: String, isSMTP: Bool) {
        if isSMTP, let gateway = smtpGateways.removeValue(forKey: name) {
            gateway.stopAccepting()
            retiredSMTPGateways.append(gateway)
        } else if !isSMTP, let gateway = imapGateways.removeValue(forKey: name) {
            gateway.stopAccepting()
            retiredIMAPGateways.append(gateway)
        }
    }

    /// Settings a running process cannot take over; the reload logs each and leaves it as it was.
    static func restartOnlyChanges(from old: MailGateConfiguration, to new: MailGateConfiguration) -> [String] {
        var changes: [String] = []
        if old.stateDirectory != new.stateDirectory { changes.append("state_dir") }
        if old.listen.certificate != new.listen.certificate || old.listen.privateKey != new.listen.privateKey {
            changes.append("[listen] certificate / private_key")
        }
        if old.listen.pop3 != new.listen.pop3 || old.listen.pop3s != new.listen.pop3s {
            changes.append("[listen] pop3 / pop3s")
        }
        if oauthFingerprint(old) != oauthFingerprint(new)
            || old.oauth.mapValues(\.clientSecret) != new.oauth.mapValues(\.clientSecret)
        {
            changes.append("[oauth.*] sections")
        }
        let (a, b) = (old.limits, new.limits)
        if a.smtpSessions != b.smtpSessions { changes.append("[limits] smtp_sessions") }
        if a.smtpSessionsPerAddress != b.smtpSessionsPerAddress { changes.append("[limits] smtp_sessions_per_address") }
        if a.imapUpstreamSessions != b.imapUpstreamSessions { changes.append("[limits] imap_upstream_sessions") }
        if a.passwordHashQueue != b.passwordHashQueue { changes.append("[limits] password_hash_queue") }
        // The POP3 listeners are not rebuilt on a reload; their per-address limiter keeps the value it started with.
        if a.pop3SessionsPerAddress != b.pop3SessionsPerAddress { changes.append("[limits] pop3_sessions_per_address") }
        let (x, y) = (old.admin, new.admin)
        if x.listen != y.listen || x.certificate != y.certificate || x.privateKey != y.privateKey || x.token != y.token {
            changes.append("[admin]")
        }
        if old.journal != new.journal { changes.append("[journal]") }
        let (d, e) = (old.download, new.download)
        if d.every != e.every || d.forbidManualRefresh != e.forbidManualRefresh || d.allowReloading != e.allowReloading {
            changes.append("[download]")
        }
        if old.admin.listen != new.admin.listen || old.admin.certificate != new.admin.certificate
            || old.admin.privateKey != new.admin.privateKey || old.admin.token?.revealed != new.admin.token?.revealed
        {
            changes.append("[admin]")  // the status server is bound once, at start
        }
        return changes
    }

    /// Every `[oauth]` field that shapes a token service except the secret (compared apart, as a `Redacted`).
    private static func oauthFingerprint(_ configuration: MailGateConfiguration) -> [String] {
        configuration.oauth.values.sorted { $0.name < $1.name }.map { settings in
            [
                settings.name, settings.provider, settings.clientID ?? "", settings.tenant, settings.flow.rawValue,
                settings.authority, settings.scopes.joined(separator: " "), settings.caFile ?? "",
                settings.redirectPort.map(String.init) ?? "",
            ].joined(separator: "\u{0}")
        }
    }
}
