// GatewayTests: $BROWSER as Python's webbrowser and xdg-utils read it: arguments, a colon list, %s, failures said.
import Foundation
import Synchronization
import Testing

@testable import Gateway

@Suite("Browser launcher ($BROWSER)")
struct BrowserLauncherTests {
    static let url = "https://login.test/authorize?a=1&b=2"

    @Test("a command with arguments gets the URL last; %s is replaced; the list is split at colons")
    func commands() {
        let url = Self.url
        #expect(
            BrowserLauncher.commands(for: "firefox --new-window", url: url) == [
                .init(program: "firefox", arguments: ["--new-window", url])
            ])
        #expect(
            BrowserLauncher.commands(for: "chromium --app=%s:firefox:", url: url) == [
                .init(program: "chromium", arguments: ["--app=" + url]), .init(program: "firefox", arguments: [url]),
            ])
        #expect(BrowserLauncher.commands(for: nil, url: url) == [.init(program: "xdg-open", arguments: [url])])
        #expect(BrowserLauncher.commands(for: "", url: url) == [.init(program: "xdg-open", arguments: [url])])
        #expect(
            BrowserLauncher.commands(for: "'/opt/My Browser/run' -P \"work profile\" %s", url: url) == [
                .init(program: "/opt/My Browser/run", arguments: ["-P", "work profile", url])
            ])
    }

    @Test("shell-like splitting: quotes and backslashes")
    func splitting() {
        #expect(BrowserLauncher.split(#"a  b\ c "d \"e\"" 'f\g'"#) == ["a", "b c", #"d "e""#, #"f\g"#])
        #expect(BrowserLauncher.split("  ") == [])
        #expect(BrowserLauncher.split("''") == [""])
    }

    private func withScript(_ body: (String, String) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "mailgate-browser-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = directory + "/fake-browser"
        let output = directory + "/args"
        try "#!/bin/sh\nprintf '%s\\n' \"$@\" > '\(output)'\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        try await body(script, output)
    }

    @Test("a missing first browser is said and the next one in the list gets its arguments and the URL")
    func fallsBackAlongTheList() async throws {
        try await withScript { script, output in
            let said = Mutex<[String]>([])
            let started = await BrowserLauncher().open(
                Self.url, browser: "mailgate-no-such-browser --new-window:\(script) --new-window %s") { line in
                said.withLock { $0.append(line) }
            }
            #expect(started)
            let lines = said.withLock { $0 }
            #expect(lines == ["(Could not start the browser mailgate-no-such-browser: no such program.)"])
            let arguments = try String(contentsOfFile: output, encoding: .utf8)
            #expect(arguments == "--new-window\n\(Self.url)\n")
        }
    }

    @Test("when no browser starts, each failure and the fallback sentence are said")
    func saysWhenNothingStarted() async {
        let said = Mutex<[String]>([])
        let started = await BrowserLauncher().open(Self.url, browser: "/bin/false:firefox-not-installed-here --new-window") {
            line in said.withLock { $0.append(line) }
        }
        #expect(!started)
        #expect(
            said.withLock { $0 } == [
                "(The browser /bin/false exited with status 1.)",
                "(Could not start the browser firefox-not-installed-here: no such program.)",
                "(No browser could be started: open the address above by hand, or set $BROWSER.)",
            ])
    }
}
