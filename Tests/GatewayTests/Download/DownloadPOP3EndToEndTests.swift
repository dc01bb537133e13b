// GatewayTests/Download: POP3 clients reading the local download store through `mailgate serve` (issue 10):
// poplib and fetchmail with the upstream unreachable, and a SIGHUP that adds an imap-download server.
import Foundation
import Store
import Testing

@testable import Gateway

extension DownloadAgainstStandIn {
@Suite("Download: POP3 from the local store through serve")
struct DownloadPOP3EndToEndTests {
    /// The configuration lines of a schedule whose POP3 clients read only the local store.
    static let localOnly = "\n\n[download]\nevery = \"1s\"\nforbid_manual_refresh = true\n"

    @Test(
        "forbid_manual_refresh: poplib and fetchmail read the store byte-exact with the upstream unreachable",
        arguments: [false, true])
    func localStoreWithUpstreamDown(deleteAfterLoading: Bool) async throws {
        guard let standIn = StandIn.load() else { return }
        let user = DownloadTesting.dora
        try DownloadTesting.emptyInbox(standIn, user)
        let pop3Port = 26716
        let retention = deleteAfterLoading ? "delete_after_loading = true" : ""
        let installation = try MailGateInstallation(
            standIn, smtpPort: 26706, extraServer: retention + Self.localOnly,
            extraListen: "pop3 = \"127.0.0.1:\(pop3Port)\"", incoming: "imap-download")
        try installation.addAndConnect(user, password: EndToEnd.password)
        // Small ones with a leading-dot line (dot-stuffing on the way out) and one over several 64 KiB reads.
        let ids =
            try await DownloadTesting.deliver(standIn, to: user, count: 3, label: "pop3-local")
            + DownloadTesting.deliver(standIn, to: user, count: 1, size: 300_000, label: "pop3-local-big")
        try installation.startServe()
        let downloaded = try await DownloadTesting.waitFor(
            stateDirectory: installation.stateDirectory, account: user
        ) { holdings in
            // With delete_after_loading, also until each server copy is gone (right after its row is committed).
            ids.allSatisfy { holdings.present($0).count == 1 }
                && (!deleteAfterLoading || holdings.rows.allSatisfy { $0.deletedUpstreamAt != nil })
        }
        #expect(installation.stopServe() == 0)

        // The same gateway, now with its upstream IMAP on a port where nothing listens.
        let imapLine = "imap = \"\(standIn.host):\(standIn["IMAPS_PORT"])\""
        let config = try String(contentsOfFile: installation.configPath, encoding: .utf8)
        try #require(config.contains(imapLine))
        try config.replacingOccurrences(of: imapLine, with: "imap = \"127.0.0.1:1\"")
            .write(toFile: installation.configPath, atomically: true, encoding: .utf8)
        let serveStarted = installation.serveOutput.count
        try installation.startServe()
        // At least one scheduled run has tried the dead upstream and failed.
        let deadline = Date().addingTimeInterval(20)
        while !installation.serveOutput.dropFirst(serveStarted).contains("download of \(user) failed"),
            Date() < deadline
        {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(
            installation.serveOutput.dropFirst(serveStarted).contains("download of \(user) failed"),
            "the upstream must be unreachable for this test: \(installation.serveOutput.suffix(600))")

        let out = installation.directory + "/retrieved"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let rows = downloaded.rows.filter { $0.deletedLocallyAt == nil }.sorted { $0.id! < $1.id! }
        // What was downloaded, read before the POP3 session deletes a message.
        var stored: [Int64: Data] = [:]
        for row in rows {
            let data = try #require(FileManager.default.contents(atPath: downloaded.store.path(of: row.fileName)))
            stored[row.id!] = data
        }
        // Delete the row of the first delivered message.
        let doomed = try #require(downloaded.present(ids[0]).first)
        let run = try await runPythonOffPool(
            Self.poplibScript, ["127.0.0.1", "\(pop3Port)", user, EndToEnd.password, out, String(doomed.id!)])
        try #require(run.status == 0, "poplib: \(run.error.suffix(1500))")
        let report = try JSONDecoder().decode(POPReport.self, from: Data(run.output.utf8))

        // STAT, LIST and UIDL are the store's rows: count, exact sizes, row ids.
        let stat = report.stat
        #expect(stat == [rows.count, rows.reduce(0) { $0 + Int($1.size) }])
        let list = report.list
        let uidl = report.uidl
        #expect(Set(uidl.values) == Set(rows.map { String($0.id!) }))
        #expect(list.count == rows.count)
        for row in rows {
            let number = try #require(uidl.first { $0.value == String(row.id!) }?.key, "UIDL of row \(row.id!)")
            let file = try #require(stored[row.id!])
            #expect(list[number] == Int(row.size) && file.count == Int(row.size), "LIST \(number)")
            // RETR byte-exact against the downloaded file (poplib un-stuffs; lines rejoined with CRLF).
            let retrieved = try #require(FileManager.default.contents(atPath: "\(out)/\(number).retr"))
            #expect(retrieved == file, "RETR \(number): \(retrieved.count) bytes vs \(file.count) stored")
            // TOP n 0 is the header block and the blank line.
            let top = try #require(FileManager.default.contents(atPath: "\(out)/\(number).top"))
            let headerEnd = try #require(file.range(of: Data("\r\n\r\n".utf8))).upperBound
            #expect(top == file.prefix(upTo: headerEnd), "TOP \(number) 0")
        }
        // What was delivered came down unchanged: the body the test sent ends the stored copy.
        for id in ids {
            let row = try #require(downloaded.present(id).first)
            let file = try #require(stored[row.id!])
            #expect(String(decoding: file, as: UTF8.self).contains("\r\n.leading dot line\r\n"))
        }

        // DELE + QUIT removed exactly that message from the store; the next session no longer sees it.
        #expect(report.after_stat == [rows.count - 1, stat[1] - Int(doomed.size)])
        #expect(report.after_uidl.count == rows.count - 1 && !report.after_uidl.contains(String(doomed.id!)))
        let after = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        #expect(after.present(ids[0]).isEmpty, "DELE + QUIT marks the row deleted locally")
        #expect(!FileManager.default.fileExists(atPath: after.store.path(of: doomed.fileName)))
        #expect(after.consistent())
        for id in ids.dropFirst() { #expect(after.present(id).count == 1) }

        // fetchmail (keep) gets every remaining message from the store.
        let fetched = try Self.fetchmail(port: pop3Port, user: user, directory: installation.directory)
        #expect(fetched.count == rows.count - 1, "fetchmail delivered \(fetched.count) messages")
        for id in ids.dropFirst() {
            let row = try #require(after.present(id).first)
            let file = try #require(FileManager.default.contents(atPath: after.store.path(of: row.fileName)))
            // fetchmail hands the MDA LF line ends; the body must be the stored one.
            let body = String(decoding: file, as: UTF8.self).components(separatedBy: "\r\n\r\n").dropFirst()
                .joined(separator: "\r\n\r\n").replacingOccurrences(of: "\r\n", with: "\n")
            #expect(fetched.contains { $0.contains(id) && $0.hasSuffix(body) }, "fetchmail: \(id)")
        }
        #expect(installation.stopServe() == 0)

        // Retention is the download's, never POP3's: without delete_after_loading the server still has every
        // message, also the one deleted locally; with it, none (each went right after its durable write).
        for id in ids {
            let copies = try await DownloadTesting.onServer(standIn, user: user, messageID: id).count
            #expect(copies == (deleteAfterLoading ? 0 : 1), "\(id)")
        }
        #expect(downloaded.rows.allSatisfy { ($0.deletedUpstreamAt != nil) == deleteAfterLoading })
        try DownloadTesting.emptyInbox(standIn, user)
    }

    @Test("SIGHUP adding an imap-download server: its new account logs in over POP3 and is downloaded")
    func reloadReachesPOP3AndDownload() async throws {
        guard let standIn = StandIn.load() else { return }
        let user = DownloadTesting.dirk
        try DownloadTesting.emptyInbox(standIn, user)
        let pop3Port = 26717
        // At start: one server, incoming = "imap" (no schedule runs), no account.
        let installation = try MailGateInstallation(
            standIn, smtpPort: 26707, extraServer: Self.localOnly, extraListen: "pop3 = \"127.0.0.1:\(pop3Port)\"",
            incoming: "imap")
        try installation.startServe()
        let later = """

            [server.later]
            oauth = "standin"
            smtp = "\(standIn.host):\(standIn["SUBMISSION_PORT"])"
            imap = "\(standIn.host):\(standIn["IMAPS_PORT"])"
            incoming = "imap-download"
            ca_file = "\(standIn.caFile)"

            """
        let handle = try #require(FileHandle(forWritingAtPath: installation.configPath))
        handle.seekToEndOfFile()
        handle.write(Data(later.utf8))
        try handle.close()
        try installation.addAndConnect(user, password: EndToEnd.password, extraAddArguments: ["--server", "later"])
        let ids = try await DownloadTesting.deliver(standIn, to: user, count: 2, label: "pop3-sighup")

        // Before the reload the running gateway does not know [server.later].
        let before = try await runPythonOffPool(Self.statScript, ["127.0.0.1", "\(pop3Port)", user, EndToEnd.password])
        #expect(before.output.hasPrefix("ERR"), "\(before.output) \(before.error.suffix(400))")
        try await Task.sleep(nanoseconds: 1_500_000_000)
        #expect(try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user).rows.isEmpty)

        installation.signalServe(SIGHUP)
        var deadline = Date().addingTimeInterval(20)
        while !installation.serveOutput.contains("reload done"), Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(installation.serveOutput.contains("reload done"), "\(installation.serveOutput.suffix(600))")

        // The schedule picks the new account up and its POP3 clients read what was downloaded.
        let holdings = try await DownloadTesting.waitFor(stateDirectory: installation.stateDirectory, account: user) {
            holdings in ids.allSatisfy { holdings.present($0).count == 1 }
        }
        var stat = ""
        deadline = Date().addingTimeInterval(20)
        repeat {
            stat = try await runPythonOffPool(Self.statScript, ["127.0.0.1", "\(pop3Port)", user, EndToEnd.password])
                .output
            if stat.hasPrefix("OK") { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        } while Date() < deadline
        let total = holdings.rows.reduce(0) { $0 + Int($1.size) }
        #expect(stat.trimmingCharacters(in: .whitespacesAndNewlines) == "OK \(ids.count) \(total)", "\(stat)")
        #expect(installation.stopServe() == 0)
        try DownloadTesting.emptyInbox(standIn, user)
    }

    /// What the poplib script prints.
    struct POPReport: Decodable {
        var stat: [Int]
        var list: [String: Int]
        var uidl: [String: String]
        var after_stat: [Int]
        var after_uidl: [String]
    }

    /// Runs fetchmail (keep, all) against the gateway; returns each message its MDA received.
    static func fetchmail(port: Int, user: String, directory: String) throws -> [String] {
        let out = directory + "/fetchmail-out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let rc = directory + "/fetchmailrc"
        try """
        poll 127.0.0.1 service \(port) protocol POP3 auth password no uidl
          user "\(user)" password "\(EndToEnd.password)" keep sslproto ""
          mda "/bin/sh -c 'cat > \(out)/msg.$$'"

        """.write(toFile: rc, atomically: true, encoding: .utf8)
        chmod(rc, 0o600)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/fetchmail")
        process.arguments = ["-f", rc, "--nodetach", "--nosyslog", "--all", "--invisible"]
        process.environment = ["HOME": directory, "FETCHMAILHOME": directory, "PATH": "/usr/bin:/bin"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "fetchmail exited \(process.terminationStatus)")
        return DurableFile.list(out).compactMap {
            FileManager.default.contents(atPath: out + "/" + $0).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// USER/PASS, STAT, LIST, UIDL, RETR and TOP n 0 of every message into files, DELE of the message whose UIDL is
    /// argv[6], QUIT; then a second session's STAT and UIDL. Prints one JSON object.
    static let poplibScript = #"""
        import json, poplib, sys
        host, port, user, password, out, doomed = sys.argv[1:7]
        def login():
            p = poplib.POP3(host, int(port), timeout=60)
            p.user(user)
            p.pass_(password)
            return p
        p = login()
        report = {"stat": list(p.stat())}
        report["list"] = {n.decode(): int(s) for n, s in (l.split() for l in p.list()[1])}
        report["uidl"] = {n.decode(): u.decode() for n, u in (l.split() for l in p.uidl()[1])}
        for number in report["list"]:
            resp, lines, octets = p.retr(int(number))
            open(f"{out}/{number}.retr", "wb").write(b"".join(l + b"\r\n" for l in lines))
            resp, lines, octets = p.top(int(number), 0)
            open(f"{out}/{number}.top", "wb").write(b"".join(l + b"\r\n" for l in lines))
        [number] = [n for n, u in report["uidl"].items() if u == doomed]
        assert p.dele(int(number)).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
        p = login()
        report["after_stat"] = list(p.stat())
        report["after_uidl"] = [l.split()[1].decode() for l in p.uidl()[1]]
        p.quit()
        print(json.dumps(report))
        """#

    /// USER/PASS then STAT: prints "OK count octets", or "ERR text" when the login is refused.
    static let statScript = #"""
        import poplib, sys
        host, port, user, password = sys.argv[1:5]
        p = poplib.POP3(host, int(port), timeout=30)
        try:
            p.user(user)
            p.pass_(password)
        except poplib.error_proto as e:
            print("ERR", e)
            sys.exit(0)
        print("OK %d %d" % p.stat())
        p.quit()
        """#
}
}
