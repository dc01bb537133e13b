/// Holds a secret (token, password, SASL payload) so that printing, logging or interpolating it never shows it.
///
/// Read the value only where it is used on the wire: `secret.revealed`.
/// `dump()`, `Mirror` and anything else that reflects (test failure messages, debuggers' `po`) see no children
/// either: the mirror is a leaf whose only description is `<redacted>`.
public struct Redacted<Value: Sendable>: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The secret itself; call sites that read it are the only places a secret can leak, so keep them few.
    public let revealed: Value

    public init(_ value: Value) { self.revealed = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: nil) }
}

extension Redacted: Equatable where Value: Equatable {}
