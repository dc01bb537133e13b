// LogHandling: MailGate's swift-log handler: plain, journal (syslog level prefixes) or JSON lines on stderr,
// control characters escaped, one level for the whole process that a reload can change.
public import Logging
public import Foundation
import Synchronization

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `plain` on a terminal, `journal` otherwise (systemd and most supervisors capture stderr).
    case auto
    /// `2026-12-03T09:00:00.123Z info mailgate: message key=value` — for people reading a terminal.
    case plain
    /// `<6>mailgate: message key=value` — journald reads the `<N>` prefix as the priority and adds the time
    /// itself (sd-daemon(3)), so no timestamp is written.
    case journal
    /// One JSON object per line: `time`, `level`, `label`, `message`, `metadata` — for log shippers.
    case json

    /// `auto` decided for the given stderr: a terminal gets plain lines, anything else the journal format.
    public func resolved(stderrIsTerminal: Bool) -> LogFormat {
        guard self == .auto else { return self }
        return stderrIsTerminal ? .plain : .journal
    }
}

/// The one level every logger of the process obeys. `mailgate serve` sets it from `--log-level` or `log_level`
/// and a SIGHUP may change it; handlers read it at each call, so loggers already made follow at once.
public final class LogLevelControl: Sendable {
    private let level: Mutex<Logger.Level>

    public init(_ level: Logger.Level = .info) { self.level = Mutex(level) }

    public var current: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }

    /// The process-wide control that `MailGateLogHandler` uses unless given another.
    public static let shared = LogLevelControl()
}

/// Where formatted lines go: one `write` per line so that concurrent loggers never interleave inside a line.
public protocol LogSink: Sendable {
    func write(line: String)
}

/// Standard error, written with one `write(2)` per line.
public struct StandardErrorSink: LogSink {
    public init() {}

    public func write(line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// A swift-log handler for the three formats. Messages and metadata from clients pass through
/// `LogEscaping`, so a CR or LF in a user name cannot forge a second log line.
public struct MailGateLogHandler: LogHandler {
    public let label: String
    public let format: LogFormat
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let control: LogLevelControl
    private let sink: any LogSink

    /// - Parameter format: `.auto` is resolved here against stderr (`isatty(2)`).
    public init(
        label: String, format: LogFormat, control: LogLevelControl = .shared, sink: any LogSink = StandardErrorSink()
    ) {
        self.label = label
        self.format = format.resolved(stderrIsTerminal: isatty(2) == 1)
        self.control = control
        self.sink = sink
    }

    /// The shared level: setting it on one logger sets it for the process (there is one level, DESIGN's log_level).
    public var logLevel: Logger.Level {
        get { control.current }
        set { control.current = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        sink.write(line: LogLine.format(
            format, time: Date(), level: event.level, label: label, message: event.message.description,
            metadata: merged))
    }
}

/// Turns one event into one line of text (pure, for the handler and its tests).
public enum LogLine {
    public static func format(
        _ format: LogFormat, time: Date, level: Logger.Level, label: String, message: String,
        metadata: Logger.Metadata
    ) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .json:
            var line = "{\"time\":\"\(timestamp(time))\",\"level\":\"\(level.rawValue)\","
            line += "\"label\":\(LogEscaping.jsonString(label)),\"message\":\(LogEscaping.jsonString(message))"
            line += ",\"metadata\":{"
            line += keys.map { "\(LogEscaping.jsonString($0)):\(json(metadata[$0]!))" }.joined(separator: ",")
            return line + "}}"
        case .plain, .auto:
            return "\(timestamp(time)) \(level.rawValue) \(LogEscaping.text(label)): \(body(message, metadata, keys))"
        case .journal:
            return "<\(syslogPriority(level))>\(LogEscaping.text(label)): \(body(message, metadata, keys))"
        }
    }

    /// RFC 5424 severities as journald reads them from a `<N>` prefix.
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    private static func body(_ message: String, _ metadata: Logger.Metadata, _ keys: [String]) -> String {
        var line = LogEscaping.text(message)
        for key in keys {
            line += " \(LogEscaping.text(key))=\(LogEscaping.quotedIfNeeded(flat(metadata[key]!)))"
        }
        return line
    }

    private static func flat(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(flat).joined(separator: ",") + "]"
        case .dictionary(let values):
            "{" + values.keys.sorted().map { "\($0):\(flat(values[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    private static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): LogEscaping.jsonString(text)
        case .stringConvertible(let convertible): LogEscaping.jsonString(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let values):
            "{" + values.keys.sorted().map { "\(LogEscaping.jsonString($0)):\(json(values[$0]!))" }
                .joined(separator: ",") + "}"
        }
    }

    /// ISO 8601 in UTC with milliseconds, formatted by hand (no shared formatter, no locale).
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(milliseconds % 1000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}

/// Escaping of text that may come from a client, so that one event is always exactly one line.
public enum LogEscaping {
    /// Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) as `\n`, `\r`, `\t` or
    /// `\u{XX}`; a backslash as `\\` so an escape in the input cannot pass for one of ours.
    public static func text(_ input: String) -> String {
        guard input.unicodeScalars.contains(where: needsEscape) else { return input }
        var out = String.UnicodeScalarView()
        for scalar in input.unicodeScalars {
            guard needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            default: out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            }
        }
        return String(out)
    }

    /// A metadata value, quoted when it holds a space, `=` or `"` (so `key=value` pairs stay unambiguous).
    public static func quotedIfNeeded(_ input: String) -> String {
        let escaped = text(input)
        guard escaped.isEmpty || escaped.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" }) else {
            return escaped
        }
        return "\"" + escaped.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A JSON string literal (RFC 8259 §7) with every control character and U+2028/U+2029 escaped.
    public static func jsonString(_ input: String) -> String {
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in input.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
                    || scalar.value == 0x2029
                {
                    let hex = String(scalar.value, radix: 16)
                    out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).unicodeScalars)
                } else {
                    out.append(scalar)
                }
            }
        }
        out.append("\"")
        return String(out)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
            || scalar.value == 0x2029 || scalar == "\\"
    }
}
