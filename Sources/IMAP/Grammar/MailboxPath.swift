// IMAP: a mailbox name together with the hierarchy delimiter the server reported for it.

/// A mailbox name plus its hierarchy delimiter, as one LIST line reports them, so that paths can be split into
/// folders and rebuilt (`Posteingang/Projekte` with delimiter `/`).
public struct MailboxPath: Hashable, Sendable {
    /// The full wire name.
    public var name: MailboxName
    /// The hierarchy delimiter, or nil for a flat namespace (`NIL` in LIST).
    public var pathSeparator: UInt8?

    public init(name: MailboxName, pathSeparator: UInt8?) {
        self.name = name
        self.pathSeparator = pathSeparator
    }

    /// The path built from Unicode components joined by `pathSeparator` and encoded to modified UTF-7.
    public init(components: [String], pathSeparator: UInt8?) {
        let separator = pathSeparator.map { String(Character(Unicode.Scalar($0))) } ?? ""
        self.init(name: MailboxName(decoded: components.joined(separator: separator)), pathSeparator: pathSeparator)
    }

    /// The decoded components from the top of the hierarchy down (one element for a flat namespace).
    public func decodedComponents() throws(IMAPError) -> [String] {
        let decoded = try name.decodedName
        guard let separator = pathSeparator, separator < 0x80 else { return [decoded] }
        return decoded.split(separator: Character(Unicode.Scalar(separator)), omittingEmptySubsequences: false)
            .map(String.init)
    }
}
