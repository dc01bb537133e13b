// GatewayTests/Download: `mailgate serve` (the schedule) and `mailgate download` as processes, against the
// stand-in: exactly once across a restart, a kill -9 in the middle of a run, and a UIDVALIDITY change.
import Foundation
import Store
import Testing

@testable import Gateway

extension DownloadAgainstStandIn {
@Suite("Download end to end (serve and mailgate download)")
struct DownloadProcessEndToEndTests {
    @Test("the schedule inside serve stores each new message exactly once across a restart")
    func scheduleAcrossRestart() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let user = DownloadTesting.dora
        let installation = try DownloadTesting.installation(
            standIn, smtpPort: 26701, accounts: [user], download: "every = \"1s\"")
        let first = try await DownloadTesting.deliver(standIn, to: user, count: 3, label: "restart-a")
        try installation.startServe()
        _ = try await DownloadTesting.waitFor(stateDirectory: installation.stateDirectory, account: user) { holdings in
            first.allSatisfy { holdings.present($0).count == 1 }
        }
        #expect(installation.stopServe() == 0)
        let second = try await DownloadTesting.deliver(standIn, to: user, count: 2, label: "restart-b")
        try installation.startServe()
        _ = try await DownloadTesting.waitFor(stateDirectory: installation.stateDirectory, account: user) { holdings in
            (first + second).allSatisfy { holdings.present($0).count == 1 }
        }
        // Several more scheduled runs: nothing is fetched twice.
        try await Task.sleep(nanoseconds: 3_500_000_000)
        let log = installation.serveOutput
        #expect(installation.stopServe() == 0)
        let holdings = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        for id in first + second { #expect(holdings.present(id).count == 1, "\(id)") }
        #expect(holdings.consistent())
        #expect(Set(holdings.rows.map(\.uid)).count == holdings.rows.count)
        #expect(log.contains("download run: 1 accounts"), "\(log.suffix(800))")
    }

    @Test("kill -9 in the middle of `mailgate download`: the next run completes it, each message exactly once")
    func killDuringRun() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let user = DownloadTesting.dora
        let installation = try DownloadTesting.installation(standIn, smtpPort: 26702, accounts: [user])
        let ids = try await DownloadTesting.deliver(standIn, to: user, count: 30, size: 400_000, label: "kill")
        let store = MaildirStore(stateDirectory: installation.stateDirectory, account: user)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: MailGateInstallation.binary)
        process.arguments = ["download", "--config", installation.configPath]
        process.currentDirectoryURL = URL(fileURLWithPath: installation.directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while DurableFile.list(store.newDirectory).count < 3, process.isRunning, Date() < deadline {
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the run finished before it could be killed")
        let interrupted = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        #expect(ids.filter { interrupted.present($0).count == 1 }.count < ids.count, "killed in the middle")

        let again = try installation.run(["download"])
        #expect(again.status == 0, "\(again.stdout) \(again.stderr)")
        #expect(again.stdout.contains("\(user): "))
        #expect(again.stdout.contains("download: 1 account, "))
        let holdings = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        for id in ids { #expect(holdings.present(id).count == 1, "\(id)") }
        #expect(holdings.consistent())
        #expect(DurableFile.list(store.temporaryDirectory).isEmpty)
        let third = try installation.run(["download"])
        #expect(third.stdout.contains("\(user): 0 messages"))
    }

    @Test("a UIDVALIDITY change: known messages are re-identified by Message-ID and size, only new ones fetched")
    func uidValidityChange() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let user = DownloadTesting.dora
        let installation = try DownloadTesting.installation(standIn, smtpPort: 26703, accounts: [user])
        let before = try await DownloadTesting.deliver(standIn, to: user, count: 3, label: "validity-a")
        let first = try installation.run(["download"])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        let stored = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        let oldValidity = try #require(stored.present(before[0]).first?.uidValidity)

        let oldUIDs = Set(stored.rows.map(\.uid))
        // As if the mailbox were recreated: every message gets a new UID (moved out and back), then UIDVALIDITY
        // changes too.
        try DownloadTesting.doveadm(standIn, ["mailbox", "create", "-u", user, "Download-Parking"])
        try DownloadTesting.doveadm(standIn, ["move", "-u", user, "Download-Parking", "mailbox", "INBOX", "ALL"])
        try DownloadTesting.doveadm(standIn, ["move", "-u", user, "INBOX", "mailbox", "Download-Parking", "ALL"])
        try DownloadTesting.doveadm(standIn, ["mailbox", "delete", "-u", user, "Download-Parking"])
        let newValidity = oldValidity + 1_000
        try DownloadTesting.doveadm(standIn, ["mailbox", "update", "--uid-validity", "\(newValidity)", "-u", user, "INBOX"])
        let after = try await DownloadTesting.deliver(standIn, to: user, count: 2, label: "validity-b")
        let second = try installation.run(["download"])
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        #expect(second.stdout.contains("re-identified after a UIDVALIDITY change"), "\(second.stdout)")
        #expect(second.stdout.contains("\(user): 2 messages"), "only the two new messages: \(second.stdout)")
        let holdings = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: user)
        for id in before + after {
            let rows = holdings.present(id)
            #expect(rows.count == 1, "\(id)")
            #expect(rows.first?.uidValidity == newValidity)
        }
        for id in before {
            let uid = try #require(holdings.present(id).first?.uid)
            #expect(!oldUIDs.contains(uid), "\(id) was moved to its new UID \(uid)")
        }
        #expect(holdings.consistent())
    }

    @Test("one failing account does not stop the others; the command says which and exits 1")
    func oneAccountFails() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let good = DownloadTesting.dora
        let bad = DownloadTesting.dirk
        let installation = try DownloadTesting.installation(standIn, smtpPort: 26704, accounts: [good, bad])
        let ids = try await DownloadTesting.deliver(standIn, to: good, count: 2, label: "others")
        let blocked = MaildirStore(stateDirectory: installation.stateDirectory, account: bad).root
        try DurableFile.makeDirectory(DurableFile.directoryName(of: blocked))
        #expect(FileManager.default.createFile(atPath: blocked, contents: Data()))
        let run = try installation.run(["download"])
        #expect(run.status == 1)
        #expect(run.stdout.contains("\(bad): 0 messages"))
        #expect(run.stdout.contains("FAILED: The local download store could not be written"))
        #expect(run.stdout.contains("download: 2 accounts, "))
        #expect(run.stdout.contains("1 failed"))
        let holdings = try DownloadTesting.holdings(stateDirectory: installation.stateDirectory, account: good)
        for id in ids { #expect(holdings.present(id).count == 1) }
        let only = try installation.run(["download", "--account", good])
        #expect(only.status == 0)
        #expect(!only.stdout.contains(bad))
    }

    @Test("a 25 MiB message is downloaded by serve without being held in memory")
    func largeMessageStreams() async throws {
        guard let standIn = StandIn.load() else { return }
        try DownloadTesting.emptyInbox(standIn, DownloadTesting.dora)
        let user = DownloadTesting.dora
        let installation = try DownloadTesting.installation(
            standIn, smtpPort: 26705, accounts: [user], download: "every = \"1s\"")
        let warm = try await DownloadTesting.deliver(standIn, to: user, count: 1, label: "warm")
        try installation.startServe()
        let pid = try #require(installation.serveProcessIdentifier)
        _ = try await DownloadTesting.waitFor(stateDirectory: installation.stateDirectory, account: user) {
            $0.present(warm[0]).count == 1
        }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        // The peak from now on: start-up and the first run's TLS session must not hide the message's footprint.
        try EndToEnd.resetPeakResident(pid)
        let before = try EndToEnd.peakResidentBytes(pid)

        let id = "<dl-large-\(UInt64.random(in: 0...UInt64.max))@contoso.test>"
        let head = Array(
            "From: <\(user)>\r\nTo: <\(user)>\r\nSubject: large download\r\nMessage-ID: \(id)\r\n\r\n".utf8)
        let line = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n".utf8)
        var big = head
        big.reserveCapacity(26 * 1_024 * 1_024)
        while big.count < 25 * 1_024 * 1_024 { big += line }
        let file = installation.directory + "/large.eml"
        try Data(big).write(to: URL(fileURLWithPath: file))
        let sent = try await runPythonOffPool(
            Self.submitScript,
            [standIn.host, standIn["SUBMISSION_PORT"], standIn.caFile, user, try standIn.accessToken(for: user), file])
        try #require(sent.status == 0, "smtplib: \(sent.error.suffix(600))")
        let holdings = try await DownloadTesting.waitFor(
            stateDirectory: installation.stateDirectory, account: user, timeout: 120
        ) { $0.present(id).count == 1 }
        let after = try EndToEnd.peakResidentBytes(pid)
        installation.stopServe()
        let growth = after - before
        print("serve VmHWM growth \(growth / 1_024) KiB while downloading a \(big.count)-byte message")
        #expect(growth < 12 * 1_024 * 1_024, "serve's peak RSS grew by \(growth) bytes")
        let row = try #require(holdings.present(id).first)
        #expect(row.size > Int64(big.count), "the stored copy has the server's trace headers and every byte sent")
        let stored = try #require(FileManager.default.contents(atPath: holdings.store.path(of: row.fileName)))
        #expect([UInt8](stored.suffix(big.count - head.count)) == Array(big[head.count...]))
    }

    /// Submits a file to the stand-in's Postfix with XOAUTH2 after STARTTLS (smtplib streams it).
    static let submitScript = #"""
        import smtplib, ssl, sys, base64
        host, port, ca, user, token, path = sys.argv[1:7]
        with smtplib.SMTP(host, int(port), timeout=120) as s:
            s.starttls(context=ssl.create_default_context(cafile=ca))
            s.ehlo()
            code, text = s.docmd("AUTH", "XOAUTH2 " + base64.b64encode(("user=%s\1auth=Bearer %s\1\1" % (user, token)).encode()).decode())
            if code != 235: raise SystemExit("AUTH: %d %s" % (code, text))
            s.sendmail(user, [user], open(path, "rb").read())
        """#

}
}
