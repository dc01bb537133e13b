// Gateway: opening the sign-in URL with `$BROWSER`, as Python's webbrowser module and xdg-utils read it.
import Foundation
import MailCore

/// Starts a browser for `account connect` the way other Unix tools do, and says so when none could be started.
///
/// `$BROWSER` is a colon-separated list of commands, tried in order. Each command is split into words like a
/// shell would (spaces separate, `'…'` and `"…"` quote, `\` escapes); `%s` in a word is replaced by the URL,
/// and a command without `%s` gets the URL as its last argument. So `BROWSER="firefox --new-window"` and
/// `BROWSER="chromium --app=%s:firefox"` both work. Without `$BROWSER`, `xdg-open` is used.
///
/// A command counts as started when its program is found and it is still running, or has exited with status 0,
/// `settleSeconds` after it was started (a browser that is already open hands the URL over and exits 0; one
/// that is not stays running). A missing program or a non-zero exit moves on to the next command; each failure
/// is reported in one sentence, and if none started the person is told to open the URL by hand.
struct BrowserLauncher: Sendable {
    /// One command to try: the program as written and its arguments, the URL already in place.
    struct Command: Sendable, Equatable {
        var program: String
        var arguments: [String]
    }

    var settleSeconds: Double = 1.5
    /// The directories searched for a program without a slash (`$PATH`).
    var searchPath: [String] = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
        .split(separator: ":").map(String.init)

    /// The commands `browser` (the value of `$BROWSER`, nil or empty for `xdg-open`) stands for, for `url`.
    static func commands(for browser: String?, url: String) -> [Command] {
        let value = (browser?.isEmpty == false) ? browser! : "xdg-open"
        return value.split(separator: ":", omittingEmptySubsequences: true).compactMap { entry in
            var words = split(String(entry))
            guard !words.isEmpty else { return nil }
            if words.contains(where: { $0.contains("%s") }) {
                words = words.map { $0.replacingOccurrences(of: "%s", with: url) }
            } else {
                words.append(url)
            }
            return Command(program: words[0], arguments: Array(words.dropFirst()))
        }
    }

    /// Shell-like word splitting: blanks separate words; single quotes keep everything, double quotes keep all
    /// but `\"` and `\\`; a backslash outside quotes takes the next character literally.
    static func split(_ text: String) -> [String] {
        let characters = Array(text)
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            switch quote {
            case "'":
                if character == "'" { quote = nil } else { current.append(character) }
            case "\"":
                if character == "\"" {
                    quote = nil
                } else if character == "\\", index < characters.count, "\"\\".contains(characters[index]) {
                    current.append(characters[index])
                    index += 1
                } else {
                    current.append(character)
                }
            default:
                switch character {
                case "'", "\"":
                    quote = character
                    inWord = true
                case "\\":
                    if index < characters.count {
                        current.append(characters[index])
                        index += 1
                    }
                    inWord = true
                case " ", "\t":
                    if inWord { words.append(current) }
                    current = ""
                    inWord = false
                default:
                    current.append(character)
                    inWord = true
                }
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// The executable for `program`: as given if it has a slash, else the first match on `searchPath`.
    func resolve(_ program: String) -> String? {
        let manager = FileManager.default
        if program.contains("/") { return manager.isExecutableFile(atPath: program) ? program : nil }
        for directory in searchPath where !directory.isEmpty {
            let candidate = directory + "/" + program
            if manager.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Tries each command of `browser` for `url`; returns whether one started. Every failure is said.
    @discardableResult
    func open(_ url: String, browser: String?, say: @Sendable (String) -> Void) async -> Bool {
        for command in Self.commands(for: browser, url: url) {
            let name = sanitizeForLog(command.program, maximumLength: 80)
            guard let executable = resolve(command.program) else {
                say("(Could not start the browser \(name): no such program.)")
                continue
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = command.arguments
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                say("(Could not start the browser \(name): \(sanitizeForLog(String(describing: error))).)")
                continue
            }
            let deadline = Date().addingTimeInterval(settleSeconds)
            while process.isRunning, Date() < deadline {
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            if process.isRunning || process.terminationStatus == 0 { return true }
            say("(The browser \(name) exited with status \(process.terminationStatus).)")
        }
        say("(No browser could be started: open the address above by hand, or set $BROWSER.)")
        return false
    }
}
