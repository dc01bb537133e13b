// Gateway: the last EHLO offer seen from each upstream server, so a session can advertise SIZE and CHUNKING early.
public import MailCore
public import SMTP
import Synchronization

/// Remembers what each upstream server offered after authentication.
///
/// A client's EHLO is answered before MailGate knows the account (AUTH comes later), so the offer cannot come
/// from the live upstream. The gateway offers what every upstream it has seen supports: the smallest SIZE, and
/// 8BITMIME, SMTPUTF8, CHUNKING and BINARYMIME only where all of them offer it. Before any upstream was seen:
/// SIZE = `Limits.messageSize` and none of those extensions.
public final class SMTPExtensionsCache: Sendable {
    private let entries = Mutex<[String: SMTPExtensions]>([:])
    private let defaultSize: Int

    public init(defaultMaximumSize: Int = Limits.standard.messageSize) {
        self.defaultSize = defaultMaximumSize
    }

    /// Stores the post-authentication EHLO offer of the server named `server` (host:port).
    public func record(_ extensions: SMTPExtensions, for server: String) {
        entries.withLock { $0[server] = extensions }
    }

    /// What clients may be offered now: the intersection of all known upstream offers.
    public var offer: SMTPExtensions {
        let all = entries.withLock { Array($0.values) }
        var result = SMTPExtensions()
        guard let first = all.first else {
            result.maximumSize = defaultSize
            return result
        }
        result.eightBitMIME = all.allSatisfy(\.eightBitMIME)
        result.smtpUTF8 = all.allSatisfy(\.smtpUTF8)
        result.chunking = all.allSatisfy(\.chunking)
        result.binaryMIME = all.allSatisfy(\.binaryMIME)
        result.dsn = all.allSatisfy(\.dsn)
        result.pipelining = first.pipelining
        let sizes = all.compactMap { $0.maximumSize }.filter { $0 > 0 }
        result.maximumSize = sizes.min() ?? defaultSize
        return result
    }

    /// The largest message to advertise and accept.
    public var maximumMessageSize: Int { offer.maximumSize ?? defaultSize }
}
