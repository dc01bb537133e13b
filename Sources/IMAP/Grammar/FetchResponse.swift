// IMAP: FETCH data, kept raw with the two attributes the gateway needs now (RFC 3501 §7.4.2).

/// One `* n FETCH (...)` response. The attribute list is kept as raw bytes (literals included) so it can be
/// relayed unchanged; UID and RFC822.SIZE are picked out when present.
///
///     S: * 12 FETCH (UID 4212 RFC822.SIZE 2048 FLAGS (\Seen))
public struct FetchResponse: Hashable, Sendable {
    /// The message sequence number.
    public var sequenceNumber: UInt32
    /// The `UID` attribute, if the response carries one.
    public var uid: UInt32?
    /// The `RFC822.SIZE` attribute, if present; an estimate on Exchange Online, never a literal length.
    public var rfc822Size: UInt32?
    /// The bytes between the outer parentheses, exactly as received.
    public var rawAttributes: [UInt8]

    public init(sequenceNumber: UInt32, uid: UInt32? = nil, rfc822Size: UInt32? = nil, rawAttributes: [UInt8]) {
        self.sequenceNumber = sequenceNumber
        self.uid = uid
        self.rfc822Size = rfc822Size
        self.rawAttributes = rawAttributes
    }
}
