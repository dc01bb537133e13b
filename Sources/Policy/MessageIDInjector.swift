// Policy: pure decisions on messages — here, whether a message needs a Message-ID before it is relayed.

public import MailCore

/// Holds back a message's header block while it streams through, so the gateway can decide whether the message
/// carries a `Message-ID:` and, when it does not, put one at the top before anything has gone upstream.
///
/// The sent copy and the journal key on the Message-ID (the sent copy searches the Sent folder for it), so every
/// relayed message must have one, and the copy must carry the same one as the relayed message. The hold-back is
/// bounded by `maximumHeaderCount` (Exchange Online refuses header blocks larger than 256 KiB): a header block
/// that has not ended by then is treated as one without a usable Message-ID and gets a generated one at the top.
///
///     var injector = MessageIDInjector(generatedID: MessageID.generate(domain: "contoso.com"))
///     forward(injector.append(chunk))     // [] while the header block is still being read
///     forward(injector.finish())          // what was still held back, at the end of the message
///     injector.messageID                  // the message's own id, or the generated one
///
/// Bytes go out exactly once and in order; the output is the same whatever the input chunking.
public struct MessageIDInjector: Sendable {
    /// Where the decision stands.
    public enum State: Sendable, Equatable, CustomStringConvertible {
        /// Still reading the header block; `heldCount` bytes are waiting.
        case holdingHeader
        /// Decided: the message had its own Message-ID.
        case keptOwnID
        /// Decided: a generated Message-ID was put at the top.
        case injectedID

        public var description: String {
            switch self {
            case .holdingHeader: return "holdingHeader"
            case .keptOwnID: return "keptOwnID"
            case .injectedID: return "injectedID"
            }
        }
    }

    /// Largest header block held back before deciding anyway.
    public let maximumHeaderCount: Int
    /// The id put into messages without one, `<…@domain>`.
    public let generatedID: String
    /// Where the decision stands.
    public private(set) var state: State = .holdingHeader
    /// The bytes held back so far (never more than `maximumHeaderCount` plus one input chunk).
    private var held: [UInt8] = []
    /// Where the search for the empty line resumes, so 1-byte chunks do not make the scan quadratic.
    private var scanned = 0
    /// The message's own Message-ID when it had one, else `generatedID`, once decided.
    private var decidedID: String?

    /// - Parameters:
    ///   - generatedID: the complete `<id-left@id-right>` to inject when the message has none
    ///     (`MessageID.generate(domain:)`).
    ///   - maximumHeaderCount: the hold-back bound; `MessageID.headerScanLimit` (256 KiB) by default.
    public init(generatedID: String, maximumHeaderCount: Int = MessageID.headerScanLimit) {
        self.generatedID = generatedID
        self.maximumHeaderCount = max(0, maximumHeaderCount)
    }

    /// The line injected at the top of messages without a Message-ID.
    public var injectedLine: [UInt8] { Array("Message-ID: \(generatedID)\r\n".utf8) }

    /// The id the relayed message carries; nil until the header block has been decided on.
    public var messageID: String? { decidedID }

    /// Bytes held back right now (bounded by `maximumHeaderCount` plus the last chunk).
    public var heldCount: Int { held.count }

    /// Takes the next bytes of the message; returns the bytes that may be forwarded now.
    public mutating func append(_ bytes: [UInt8]) -> [UInt8] {
        guard state == .holdingHeader else { return bytes }
        held.append(contentsOf: bytes)
        if let end = Self.headerEnd(in: held, from: scanned) {
            return decide(headerCount: end)
        }
        scanned = max(0, held.count - 2)
        if held.count > maximumHeaderCount {
            return inject()
        }
        return []
    }

    /// The message has ended: returns whatever is still held back (a message that is all header, or empty).
    public mutating func finish() -> [UInt8] {
        guard state == .holdingHeader else { return [] }
        return decide(headerCount: held.count)
    }

    // MARK: - Internals

    private mutating func decide(headerCount: Int) -> [UInt8] {
        if headerCount <= maximumHeaderCount,
            let own = MessageID.extract(fromHeaderOf: Array(held[..<headerCount]) + [0x0D, 0x0A])
        {
            state = .keptOwnID
            decidedID = own
            let out = held
            held = []
            return out
        }
        return inject()
    }

    private mutating func inject() -> [UInt8] {
        state = .injectedID
        decidedID = generatedID
        let out = injectedLine + held
        held = []
        return out
    }

    /// The length of the header block including the empty line that ends it (`CRLF CRLF`, `LF LF`, or a message
    /// that starts with an empty line), or nil when it has not ended within `bytes`. `start` is where an earlier
    /// call stopped looking.
    static func headerEnd(in bytes: [UInt8], from start: Int) -> Int? {
        let lf = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r")
        // A message whose first line is empty has an empty header block.
        if bytes.count >= 1 && bytes[0] == lf { return 1 }
        if bytes.count >= 2 && bytes[0] == cr && bytes[1] == lf { return 2 }
        var index = max(start, 1)
        while index < bytes.count {
            if bytes[index] == lf {
                // LF LF, or LF CR LF (an empty line in CRLF form after a line ended either way).
                if bytes[index - 1] == lf { return index + 1 }
                if index >= 2 && bytes[index - 1] == cr && bytes[index - 2] == lf { return index + 1 }
            }
            index += 1
        }
        return nil
    }
}
