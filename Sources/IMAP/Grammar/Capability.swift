// IMAP: capability names (RFC 3501 §7.2.1).

/// One capability a server advertises, compared without regard to case, kept as sent so that a gateway can
/// pass the list on unchanged.
///
///     S: * CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+
public struct Capability: Hashable, Sendable, CustomStringConvertible {
    /// The capability atom as written by the server.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let imap4rev1 = Capability("IMAP4rev1")
    /// RFC 7888: the client may send `{n+}` literals without waiting for `+`.
    public static let literalPlus = Capability("LITERAL+")
    /// RFC 7888: `{n+}` only up to 4096 octets.
    public static let literalMinus = Capability("LITERAL-")
    /// RFC 4959: AUTHENTICATE may carry the initial response on its line.
    public static let saslIR = Capability("SASL-IR")
    public static let idle = Capability("IDLE")
    public static let uidPlus = Capability("UIDPLUS")
    public static let move = Capability("MOVE")
    public static let specialUse = Capability("SPECIAL-USE")
    public static let loginDisabled = Capability("LOGINDISABLED")
    public static let startTLS = Capability("STARTTLS")

    /// `AUTH=<mechanism>`.
    public static func auth(_ mechanism: String) -> Capability { Capability("AUTH=\(mechanism)") }

    public var description: String { rawValue }

    public static func == (lhs: Capability, rhs: Capability) -> Bool { lhs.rawValue.uppercased() == rhs.rawValue.uppercased() }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue.uppercased()) }
}
