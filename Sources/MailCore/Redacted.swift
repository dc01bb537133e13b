/// Holds a secret (token, password, SASL payload) so that printing, logging or interpolating it never shows it.
///
/// Read the value only where it is used on the wire: `secret.revealed`.
public struct Redacted<Value: Sendable>: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself; call sites that read it are the only places a secret can leak, so keep them few.
    public let revealed: Value

    public init(_ value: Value) { self.revealed = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

extension Redacted: Equatable where Value: Equatable {}
