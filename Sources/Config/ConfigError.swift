// Config: the typed error every configuration problem becomes, naming the file, line and key.
public import MailCore

/// A configuration problem: which file, which line (when it can be found), which key, and what is allowed.
///
/// `mailgate config check` and every command that loads the configuration print `description` as the one
/// sentence an administrator needs; the command line maps it to exit status 2 ("bad configuration").
public struct ConfigError: MailGateError, Equatable {
    /// Absolute path of the configuration file.
    public var file: String
    /// 1-based line of the offending key or table, when the parser or a scan of the text could find it.
    public var line: Int?
    /// Dotted key, e.g. `server.m365.smtp_security`; `nil` for problems of the whole file.
    public var key: String?
    /// What is wrong and what is allowed, as a sentence.
    public var problem: String

    public init(file: String, line: Int?, key: String?, problem: String) {
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let key { return "\(location): \(key): \(problem)" }
        return "\(location): \(problem)"
    }
}

/// Something legal but almost certainly not what the administrator wants (e.g. the sample's placeholder client id).
///
/// Warnings do not stop `config check` (exit 0) or `serve`; they are printed to stderr.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let key { return "warning: \(location): \(key): \(message)" }
        return "warning: \(location): \(message)"
    }
}
