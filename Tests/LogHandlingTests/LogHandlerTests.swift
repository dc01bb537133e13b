// LogHandlingTests: the three line formats, escaping of hostile text, and the one shared level.
import Foundation
import LogHandling
import Logging
import Synchronization
import Testing

/// Collects lines instead of writing them to stderr.
final class CollectingSink: LogSink {
    let lines = Mutex<[String]>([])
    func write(line: String) { lines.withLock { $0.append(line) } }
}

@Suite("Log handler")
struct LogHandlerTests {
    let time = Date(timeIntervalSince1970: 1_796_288_400.123)  // 2026-12-03T09:00:00.123Z

    @Test("plain: time, level, label, message, sorted key=value pairs")
    func plain() {
        let line = LogLine.format(
            .plain, time: time, level: .info, label: "mailgate", message: "SMTP login",
            metadata: ["remote": "127.0.0.1", "account": "alice@contoso.com"])
        #expect(line == "2026-12-03T09:00:00.123Z info mailgate: SMTP login account=alice@contoso.com remote=127.0.0.1")
    }

    @Test("journal: a <N> syslog priority and no timestamp (journald adds it)")
    func journal() {
        let cases: [(Logger.Level, String)] = [
            (.trace, "<7>"), (.debug, "<7>"), (.info, "<6>"), (.notice, "<5>"), (.warning, "<4>"), (.error, "<3>"),
            (.critical, "<2>"),
        ]
        for (level, prefix) in cases {
            let line = LogLine.format(.journal, time: time, level: level, label: "mailgate", message: "m", metadata: [:])
            #expect(line == "\(prefix)mailgate: m")
        }
    }

    @Test("json: one object per line that a JSON parser reads back with every field")
    func json() throws {
        let line = LogLine.format(
            .json, time: time, level: .warning, label: "mailgate", message: "quote \" and \\ backslash",
            metadata: ["size": "20971520", "list": .array(["a", "b"]), "nested": .dictionary(["k": "v"])])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-12-03T09:00:00.123Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "mailgate")
        #expect(object["message"] as? String == "quote \" and \\ backslash")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["size"] as? String == "20971520")
        #expect(metadata["list"] as? [String] == ["a", "b"])
        #expect((metadata["nested"] as? [String: String])?["k"] == "v")
    }

    @Test("CR, LF and other control characters from a client never start a new line", arguments: LogFormat.allCases)
    func injection(format: LogFormat) throws {
        let hostile = "bob\r\n<3>mailgate: SMTP login account=admin\u{0}\u{1b}[31m\u{2028}x\u{85}"
        let line = LogLine.format(
            format, time: time, level: .info, label: "mailgate", message: "login failed \(hostile)",
            metadata: ["user": .string(hostile), hostile: "key"])
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 })
        #expect(line.split(separator: "\n", omittingEmptySubsequences: false).count == 1)
        if format == .json {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["message"] as? String == "login failed \(hostile)")
        } else {
            #expect(line.contains("bob\\r\\n<3>mailgate"))
        }
    }

    @Test("a value with spaces or = is quoted; a backslash in the input is doubled")
    func quoting() {
        let line = LogLine.format(
            .journal, time: time, level: .info, label: "mailgate", message: "m",
            metadata: ["reason": "closed by peer", "eq": "a=b", "path": "C:\\n"])
        #expect(line == "<6>mailgate: m eq=\"a=b\" path=C:\\\\n reason=\"closed by peer\"")
    }

    @Test("one shared level: loggers made before a change obey it, and lines below it are not written")
    func sharedLevel() {
        let control = LogLevelControl(.info)
        let sink = CollectingSink()
        let logger = Logger(label: "test") { label in
            MailGateLogHandler(label: label, format: .journal, control: control, sink: sink)
        }
        let other = Logger(label: "other") { label in
            MailGateLogHandler(label: label, format: .journal, control: control, sink: sink)
        }
        logger.debug("hidden")
        logger.info("shown")
        control.current = .debug
        other.debug("now shown")
        control.current = .error
        logger.warning("hidden again")
        #expect(sink.lines.withLock { $0 } == ["<6>test: shown", "<7>other: now shown"])
    }

    @Test("auto is plain on a terminal and journal otherwise")
    func auto() {
        #expect(LogFormat.auto.resolved(stderrIsTerminal: true) == .plain)
        #expect(LogFormat.auto.resolved(stderrIsTerminal: false) == .journal)
        #expect(LogFormat.json.resolved(stderrIsTerminal: true) == .json)
    }
}
