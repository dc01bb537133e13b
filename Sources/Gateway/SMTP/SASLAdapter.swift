// Gateway: runs SASL's PLAIN and LOGIN server machines behind the SMTP server side's auth seam.
import MailCore
import SASL
import SMTP

/// `SASLServerMechanism` as an `SMTPAuthExchange` (the SMTP module may not import SASL).
struct SASLAdapter: SMTPAuthExchange {
    var mechanism: SASLServerMechanism

    /// An exchange for a mechanism the client named, `nil` when MailGate does not offer it.
    static func make(_ name: String) -> (any SMTPAuthExchange)? {
        SASLServerMechanism(name: name).map { SASLAdapter(mechanism: $0) }
    }

    mutating func start(initialResponse: String?) -> SMTPAuthStep {
        Self.map(mechanism.start(initialResponse: initialResponse))
    }

    mutating func respond(_ line: String) -> SMTPAuthStep { Self.map(mechanism.respond(line)) }

    static func map(_ step: SASLServerStep) -> SMTPAuthStep {
        switch step {
        case .challenge(let challenge): .challenge(challenge)
        case .credentials(let username, let password): .credentials(username: username, password: password)
        case .cancelled: .cancelled
        case .failed(let error): .failed(reason: error.description)
        }
    }
}
