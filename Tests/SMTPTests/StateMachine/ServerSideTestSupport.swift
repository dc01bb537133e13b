// SMTPTests: helpers to drive SMTPServerSide with real SASL mechanisms and read its actions.
import MailCore
import SASL

@testable import SMTP

/// The adapter the Gateway will write: SASL's PLAIN/LOGIN machines behind the SMTP seam.
struct SASLAdapter: SMTPAuthExchange {
    var mechanism: SASLServerMechanism

    mutating func start(initialResponse: String?) -> SMTPAuthStep { Self.map(mechanism.start(initialResponse: initialResponse)) }
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

/// Exchange Online's post-TLS offer.
let exchangeExtensions = SMTPExtensions(ehloReply: SMTPReply(code: 250, lines: [
    "x.outlook.office365.com Hello", "SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "AUTH LOGIN XOAUTH2",
    "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8",
]))

func makeConfiguration(_ adjust: (inout SMTPServerSide.Configuration) -> Void = { _ in }) -> SMTPServerSide.Configuration {
    var configuration = SMTPServerSide.Configuration(
        hostname: "mailgate.test", upstreamExtensions: exchangeExtensions,
        makeAuthExchange: { name in SASLServerMechanism(name: name).map { SASLAdapter(mechanism: $0) } })
    adjust(&configuration)
    return configuration
}

func makeServer(_ adjust: (inout SMTPServerSide.Configuration) -> Void = { _ in }) -> SMTPServerSide {
    var server = SMTPServerSide(configuration: makeConfiguration(adjust))
    _ = server.handle(.connected)
    return server
}

extension SMTPServerSide {
    /// Feeds text as received bytes.
    mutating func feed(_ text: String) -> [Action] { handle(.received(Array(text.utf8))) }

    /// Feeds and returns only the reply lines, as text without CRLF.
    mutating func replies(_ text: String) -> [String] { feed(text).replyLines }

    /// EHLO, AUTH PLAIN and a successful verification.
    mutating func authenticate(as account: String = "alice@contoso.com") {
        _ = feed("EHLO client.test\r\n")
        _ = feed("AUTH PLAIN AGFsaWNlAHB3\r\n")
        _ = handle(.authResult(ok: true, account: account))
    }

    /// Authenticated, MAIL accepted upstream.
    mutating func inTransaction(recipients: Int = 0) {
        authenticate()
        _ = feed("MAIL FROM:<alice@contoso.com>\r\n")
        _ = handle(.upstreamReply(ok250))
        for index in 0..<recipients {
            _ = feed("RCPT TO:<r\(index)@contoso.com>\r\n")
            _ = handle(.upstreamReply(ok250))
        }
    }
}

let ok250 = SMTPReply(code: 250, enhanced: EnhancedStatus("2.0.0"), "OK")

extension [SMTPServerSide.Action] {
    /// Encoded reply text of every `.reply`, one entry per wire line, CRLF removed.
    var replyLines: [String] {
        flatMap { action -> [String] in
            guard case .reply(let reply) = action else { return [] }
            return String(decoding: reply.encode(), as: UTF8.self).split(separator: "\r\n").map(String.init)
        }
    }

    /// The code and enhanced code of the first reply, e.g. "503 5.5.1".
    var firstReplyCode: String? {
        for action in self {
            if case .reply(let reply) = action { return [String(reply.code), reply.enhanced?.description].compactMap { $0 }.joined(separator: " ") }
        }
        return nil
    }

    /// The actions other than replies.
    var nonReplies: [SMTPServerSide.Action] {
        filter { if case .reply = $0 { false } else { true } }
    }
}
