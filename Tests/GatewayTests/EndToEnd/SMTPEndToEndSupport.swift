// GatewayTests/EndToEnd: helpers for the SMTP end-to-end tests: installations running `mailgate serve` against the
// stand-in, real clients (Python's smtplib and imaplib, swaks), trace-header checks, /proc probes.

import Foundation
import MailGateTesting
import MailCore
import Store
import Testing

@testable import Gateway

/// Shared pieces of the end-to-end SMTP and journal tests.
enum EndToEnd {
    /// The local password every test account gets.
    static let password = "e2e-Local-Passw0rd"

    /// A fresh installation with `accounts` added and connected, `serve` running.
    static func serving(
        _ standIn: StandIn, port: Int, accounts: [String], extraServer: String = "", extraListen: String = ""
    ) throws -> MailGateInstallation {
        let installation = try MailGateInstallation(
            standIn, smtpPort: port, extraServer: extraServer, extraListen: extraListen)
        for account in accounts { try installation.addAndConnect(account, password: password) }
        try installation.startServe()
        return installation
    }

    static func uniqueID(_ label: String) -> String {
        "<e2e-\(label)-\(UInt64.random(in: 0...UInt64.max))@contoso.test>"
    }

    /// A plain-text message with a Date, a Message-ID and a body that exercises dot-stuffing and whitespace.
    static func message(from: String, to: [String], subject: String, id: String, extraBody: String = "") -> [UInt8] {
        var text = "Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n"
        text += "From: Test Sender <\(from)>\r\n"
        text += "To: \(to.map { "<\($0)>" }.joined(separator: ", "))\r\n"
        text += "Subject: \(subject)\r\n"
        text += "Message-ID: \(id)\r\n"
        text += "MIME-Version: 1.0\r\n"
        text += "Content-Type: text/plain; charset=us-ascii\r\n"
        text += "X-MailGate-Test: folded\r\n\tcontinuation line\r\n"
        text += "\r\n"
        text += "First line of the body.\r\n"
        text += ".a line that starts with a dot\r\n"
        text += "..two dots\r\n"
        text += ".\r\n"
        text += "a line with trailing blanks   \t\r\n"
        text += "\r\n"
        text += extraBody
        text += "Last line.\r\n"
        return Array(text.utf8)
    }

    /// Writes `bytes` to a new file in `directory` and returns its path.
    static func write(_ bytes: [UInt8], named name: String, in directory: String) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: - Python clients

    /// Sends the file's bytes as they are with smtplib after AUTH (PLAIN/LOGIN); prints `refused N`.
    static let pythonSend = """
        import smtplib, sys
        port, user, password, sender, recipients, path = sys.argv[1:7]
        data = open(path, "rb").read()
        with smtplib.SMTP("127.0.0.1", int(port), timeout=180) as s:
            s.ehlo("client.test")
            s.login(user, password)
            refused = s.sendmail(sender, recipients.split(","), data)
            print("refused", len(refused))
        """

    /// smtplib through `serve` on `port`, logged in as `user` with the local password.
    static func sendWithPython(
        port: Int, user: String, password: String = EndToEnd.password, from: String, to: [String], file: String
    ) throws -> (status: Int32, output: String, error: String) {
        try runPython(pythonSend, [String(port), user, password, from, to.joined(separator: ","), file])
    }

    /// imaplib over implicit TLS with XOAUTH2: finds the messages with a Message-ID in a folder and compares each to
    /// the original file (which must be its tail); prints JSON.
    static let pythonFetch = """
        import imaplib, ssl, sys, json, hashlib
        host, port, ca, user, token, folder, msgid, path = sys.argv[1:9]
        original = open(path, "rb").read()
        context = ssl.create_default_context(cafile=ca)
        m = imaplib.IMAP4_SSL(host, int(port), ssl_context=context)
        m.authenticate("XOAUTH2", lambda _: ("user=%s\\x01auth=Bearer %s\\x01\\x01" % (user, token)).encode())
        m.select('"%s"' % folder, readonly=True)
        typ, data = m.uid("SEARCH", "HEADER", "Message-ID", msgid)
        out = []
        for uid in data[0].split():
            typ, fetched = m.uid("FETCH", uid, "(BODY.PEEK[])")
            body = fetched[0][1]
            out.append({"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                        "endsWithOriginal": body.endswith(original),
                        "prefix": body[:len(body) - len(original)].decode("latin-1")
                                  if body.endswith(original) else ""})
        m.logout()
        print(json.dumps({"messages": out, "originalSize": len(original)}))
        """

    struct PythonFetched: Decodable {
        struct Message: Decodable {
            var size: Int
            var sha256: String
            var endsWithOriginal: Bool
            var prefix: String
        }
        var messages: [Message]
        var originalSize: Int
    }

    /// The messages with `messageID` in `folder` of `user`, each compared to the original in `file` (for messages
    /// too large for the checking IMAP client's bounds).
    static func fetchWithPython(
        _ standIn: StandIn, user: String, token: String, folder: String, messageID: String, file: String
    ) throws -> PythonFetched {
        let result = try runPython(
            pythonFetch,
            [standIn.host, standIn["IMAPS_PORT"], standIn.caFile, user, token, folder, messageID, file])
        guard result.status == 0 else { throw StandInError("imaplib failed: \(result.error.suffix(600))") }
        return try JSONDecoder().decode(PythonFetched.self, from: Data(result.output.utf8))
    }

    // MARK: - Checks

    /// Header fields Postfix and Dovecot put in front of a delivered message.
    static let traceFields: Set<String> = ["return-path", "delivered-to", "received", "x-original-to"]

    /// Nil when `delivered` is `original` with only trace header fields in front; else what differs.
    static func traceOnlyDifference(delivered: [UInt8], original: [UInt8]) -> String? {
        guard delivered.count >= original.count, Array(delivered.suffix(original.count)) == original else {
            return "the delivered message (\(delivered.count) bytes) does not end with the original "
                + "(\(original.count) bytes)"
        }
        let prefix = String(decoding: delivered.prefix(delivered.count - original.count), as: UTF8.self)
        return traceOnlyPrefix(prefix)
    }

    /// Nil when `prefix` is a sequence of complete trace header fields (continuation lines allowed).
    static func traceOnlyPrefix(_ prefix: String) -> String? {
        guard prefix.isEmpty || prefix.hasSuffix("\r\n") else { return "the added text does not end a line" }
        for line in prefix.components(separatedBy: "\r\n").dropLast() {
            if line.first == " " || line.first == "\t" { continue }
            guard let colon = line.firstIndex(of: ":") else { return "added line without a field name: \(line)" }
            let name = line[..<colon].lowercased()
            guard traceFields.contains(name) else { return "a non-trace header field was added: \(line)" }
        }
        return nil
    }

    // MARK: - The serve process, from /proc

    /// The peak resident set size of `pid`, in bytes (VmHWM).
    static func peakResidentBytes(_ pid: Int32) throws -> Int {
        try statusField("VmHWM", pid: pid)
    }

    /// Sets the peak resident set size of `pid` back to its current size (`echo 5 > /proc/PID/clear_refs`), so
    /// that VmHWM afterwards shows the peak of what follows, not of start-up or an earlier scrypt.
    static func resetPeakResident(_ pid: Int32) throws {
        guard let handle = FileHandle(forWritingAtPath: "/proc/\(pid)/clear_refs") else {
            throw StandInError("cannot open /proc/\(pid)/clear_refs to reset the peak RSS")
        }
        defer { try? handle.close() }
        try handle.write(contentsOf: Data("5".utf8))
    }

    static func residentBytes(_ pid: Int32) throws -> Int {
        try statusField("VmRSS", pid: pid)
    }

    private static func statusField(_ name: String, pid: Int32) throws -> Int {
        let text = try procFile("/proc/\(pid)/status")
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let number = line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
                .replacingOccurrences(of: " kB", with: "")
            if let kilobytes = Int(number) { return kilobytes * 1_024 }
        }
        throw StandInError("/proc/\(pid)/status has no \(name)")
    }

    /// CPU seconds (user + system) `pid` has used so far, from /proc/PID/stat.
    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let text = try procFile("/proc/\(pid)/stat")
        // Fields after the command name (which may contain spaces) start at state; utime and stime are 14 and 15.
        guard let close = text.lastIndex(of: ")") else { throw StandInError("unreadable /proc/\(pid)/stat") }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw StandInError("unreadable /proc/\(pid)/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// A /proc file read to its end (they report size 0 and hand out their rows over several reads).
    static func procFile(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw StandInError("cannot open \(path)") }
        defer { try? handle.close() }
        return String(decoding: handle.readAllRetryingInterrupts(), as: UTF8.self)
    }

    /// How many established TCP connections process `pid` holds to 127.0.0.1:`port`: its socket inodes from
    /// /proc/PID/fd matched against /proc/net/tcp.
    static func establishedConnections(of pid: Int32, toPort port: Int) throws -> Int {
        var inodes: Set<String> = []
        let fdDirectory = "/proc/\(pid)/fd"
        for name in try FileManager.default.contentsOfDirectory(atPath: fdDirectory) {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: fdDirectory + "/" + name),
                target.hasPrefix("socket:[")
            else { continue }
            inodes.insert(String(target.dropFirst("socket:[".count).dropLast()))
        }
        let remote = "0100007F:" + String(format: "%04X", port)
        var count = 0
        let table = try procFile("/proc/net/tcp")
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9 else { continue }
            if fields[2] == remote, fields[3] == "01", inodes.contains(String(fields[9])) { count += 1 }
        }
        return count
    }

    // MARK: - State

    /// The journal as serve wrote it (read through a second connection; WAL lets serve keep writing).
    static func journal(_ installation: MailGateInstallation) throws -> [JournalEntry] {
        try MailGateDatabase(stateDirectory: installation.stateDirectory).journalEntries()
    }

    /// Waits until the journal row of `messageID` has left `pending` copy state; returns the state.
    static func settledCopyState(
        _ installation: MailGateInstallation, messageID: String, within seconds: Double = 25
    ) async throws -> SentCopyState? {
        func state() throws -> SentCopyState? {
            try journal(installation).first { $0.messageID == messageID }?.sentCopyState
        }
        _ = try await eventually(seconds) {
            let current = try state()
            return current != nil && current != .pending
        }
        return try state()
    }

    /// `mailgate stats --json [--account]`, summed per counter name over listeners.
    static func stats(_ installation: MailGateInstallation, account: String) throws -> [String: Int64] {
        struct Report: Decodable {
            struct Total: Decodable {
                var name: String
                var account: String?
                var value: Int64
            }
            var totals: [Total]
        }
        let run = try installation.run(["stats", "--json", "--account", account])
        guard run.status == 0 else { throw StandInError("mailgate stats failed: \(run.stderr)") }
        let report = try JSONDecoder().decode(Report.self, from: Data(run.stdout.utf8))
        var sums: [String: Int64] = [:]
        for total in report.totals where total.account == account { sums[total.name, default: 0] += total.value }
        return sums
    }

    /// The messages with `messageID` in `folder` of `user`, read with the checking IMAP client.
    static func copies(
        _ standIn: StandIn, credentials: StandInCredentials, user: String, folder: String, messageID: String
    ) async throws -> [FetchedMessage] {
        let token = try await credentials.xoauth2(for: user).token.revealed
        let client = try await CheckingIMAPClient.open(standIn, user: user, token: token)
        let found = try await client.messages(in: folder, messageID: messageID)
        await client.close()
        return found
    }

    /// Polls until `folder` of `user` holds at least one message with `messageID` (or the time is up).
    static func awaitCopies(
        _ standIn: StandIn, credentials: StandInCredentials, user: String, folder: String, messageID: String,
        within seconds: Double = 20
    ) async throws -> [FetchedMessage] {
        var found: [FetchedMessage] = []
        _ = try await eventually(seconds) {
            found = try await copies(
                standIn, credentials: credentials, user: user, folder: folder, messageID: messageID)
            if found.isEmpty { try await Task.sleep(nanoseconds: 200_000_000) }
            return !found.isEmpty
        }
        return found
    }
}
