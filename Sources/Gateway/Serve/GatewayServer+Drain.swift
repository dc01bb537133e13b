// Gateway: SIGTERM: stop accepting, let sessions finish the message or command in flight within
// `[limits] drain_timeout`, then close the rest (SMTP `421 4.3.2`, IMAP `* BYE`), then stop the workers.
import Config
import Foundation
import Logging
import MailCore

extension GatewayServer {
    /// Sessions still open on every SMTP and IMAP listener, retired ones included.
    public var openSessionCount: Int {
        (smtpGateways.values + retiredSMTPGateways).reduce(0) { $0 + $1.activeSessionCount }
            + (imapGateways.values + retiredIMAPGateways).reduce(0) { $0 + $1.activeSessionCount }
    }

    /// Drains and stops everything. An SMTP message in flight either completes (its journal row committed before
    /// the client's 250) or its client gets `421 4.3.2` and the row is closed as failed; nothing stays pending
    /// unless an upstream verdict is still on its way when `timeout` and the grace after it have passed.
    ///
    /// - Parameter timeout: seconds sessions may take to finish (default `[limits] drain_timeout`).
    public func drainAndStop(timeout: Double? = nil) {
        let bound = timeout ?? configuration.limits.drainTimeoutSeconds
        let smtp = Array(smtpGateways.values) + retiredSMTPGateways
        let imap = Array(imapGateways.values) + retiredIMAPGateways
        logger.notice("draining \(openSessionCount) sessions for at most \(Int(bound)) s")
        // SMTP: idle sessions get 421 now, busy ones after the message in flight (SMTPSession's drain phase).
        for gateway in smtp { gateway.stop(drain: true) }
        for task in refreshers { task.cancel() }
        stopDownloads()
        for gateway in imap { gateway.stopAccepting() }
        let deadline = Date().addingTimeInterval(bound)
        repeat {
            for gateway in imap { gateway.shutdownQuietSessions() }
            if openSessionCount == 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        let left = openSessionCount
        if left > 0 {
            logger.warning("drain_timeout (\(Int(bound)) s) reached with \(left) sessions busy; closing them")
            for gateway in smtp { gateway.stop(drain: false) }
            for gateway in imap { gateway.stop() }
            // The closes run on each session's queue; give them a moment to write their 421 / BYE.
            let grace = Date().addingTimeInterval(2)
            while openSessionCount > 0, Date() < grace { Thread.sleep(forTimeInterval: 0.02) }
        }
        // POP3 sessions journal nothing: they ran on during the drain window and are closed now.
        for gateway in pop3Gateways { gateway.stop() }
        recorder.stop(timeout: 10)
        journalCheckpointer?.stop()
        stopAdmin()
        logger.notice("drained")
    }
}
