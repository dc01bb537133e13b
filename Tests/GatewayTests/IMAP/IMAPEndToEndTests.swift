// GatewayTests/IMAP: the IMAP gateway through the real `mailgate serve` against the M365 stand-in (issue 8):
// local login, upstream XOAUTH2, literals both forms, a 20 MiB FETCH streamed, IDLE, limits, bad input.

import Foundation
import Testing

@testable import Gateway

extension StandInTests {
    /// Skipped with a message when the stand-in is not running; failed when MAILGATE_REQUIRE_INTEGRATION=1.
    /// Listener ports 27401-27449 (IMAP) and 27451-27499 (SMTP).
    @Suite("IMAP end to end through mailgate serve", .serialized)
    struct IMAPEndToEndTests {
        static let alice = "alice@contoso.test"
        static let password = IMAPEndToEnd.password

        static func arguments(_ installation: MailGateInstallation, imapPort: Int, user: String = alice) -> [String] {
            [String(imapPort), user, password]
        }

        @Test("local LOGIN: a wrong password gets NO [AUTHENTICATIONFAILED], the right one OK with the filtered CAPABILITY")
        func login() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27451, imapPort: 27401, accounts: [Self.alice])
            let out = try IMAPEndToEnd.run("login", Self.arguments(installation, imapPort: 27401))
            let greeting = try #require(out["greeting"] as? String)
            #expect(greeting.hasPrefix("* OK [CAPABILITY IMAP4rev1 "))
            #expect(greeting.contains("AUTH=PLAIN") && !greeting.contains("LOGINDISABLED"), "loopback: \(greeting)")
            let wrong = try #require(out["wrong"] as? String)
            #expect(wrong.hasPrefix("T1 NO [AUTHENTICATIONFAILED]"), "\(wrong)")
            let right = try #require(out["right"] as? String)
            #expect(right.hasPrefix("T2 OK [CAPABILITY IMAP4rev1 "), "\(right)")
            for withheld in ["AUTH=", "SASL-IR", "STARTTLS", "LOGINDISABLED", "COMPRESS="] {
                #expect(!right.contains(withheld), "\(withheld) must not reach the client: \(right)")
            }
            #expect(right.contains("IDLE") && right.contains("LITERAL+"), "\(right)")
            #expect((out["noop"] as? String)?.hasPrefix("T3 OK") == true)
            let listed = try #require(out["capability"] as? String)
            #expect(listed.hasPrefix("* CAPABILITY IMAP4rev1 ") && !listed.contains("AUTH="), "\(listed)")
            #expect((out["logout"] as? String)?.hasPrefix("T5 OK") == true)
            #expect(installation.serveOutput.contains("IMAP local login failed"))
        }

        /// Messages with `messageID` in the stand-in's `folder` of `user` (server-side name), asked directly.
        static func count(_ standIn: StandIn, user: String, folder: String, messageID: String) throws -> Int {
            let token = try standIn.accessToken(for: user)
            let out = try IMAPEndToEnd.run(
                "count", [standIn["IMAPS_PORT"], user, "", standIn.caFile, token, folder, messageID])
            return out["count"] as? Int ?? -1
        }

        @Test(
            "LIST shows Sent/Trash/Junk with \\Sent \\Trash \\Junk (English alice and bob, German hans); COPY/MOVE land in the server's folders; children and non-ASCII names round-trip",
            arguments: [
                ("alice@contoso.test", "Deleted Items", "Junk Email", 27409, 27459),
                ("bob@contoso.test", "Deleted Items", "Junk Email", 27413, 27463),
                ("hans@contoso.test", "Gel&APY-schte Elemente", "Junk-E-Mail", 27410, 27460),
            ])
        func folders(user: String, trash: String, junk: String, imapPort: Int, smtpPort: Int) throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: smtpPort, imapPort: imapPort, accounts: [user])
            let out = try IMAPEndToEnd.run("folders", Self.arguments(installation, imapPort: imapPort, user: user))
            let list = try #require(out["list"] as? [String])
            for (name, attribute) in [("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Junk", "\\Junk")] {
                let lines = list.filter { $0.hasSuffix(" \"\(name)\"") }
                #expect(lines.count == 1, "\(name) once in \(list)")
                #expect(lines.first?.contains(attribute) == true, "\(name) carries \(attribute): \(lines)")
            }
            for hidden in [trash, junk, "Sent Items", "Gesendete Elemente"] {
                #expect(!list.contains { $0.hasSuffix(" \"\(hidden)\"") }, "the server's own \(hidden) is not listed twice: \(list)")
            }
            #expect(list.contains { $0.hasSuffix(" \"INBOX\"") })
            let percent = try #require(out["listPercent"] as? [String])
            #expect(percent.contains { $0.hasSuffix(" \"Trash\"") }, "\(percent)")
            #expect((out["status"] as? [String])?.first?.hasPrefix("* STATUS \"Trash\" (MESSAGES ") == true, "\(out)")
            #expect((out["copy"] as? String)?.contains("OK") == true, "\(out)")
            #expect((out["move"] as? String)?.contains("OK") == true, "\(out)")
            let messageID = try #require(out["messageID"] as? String)
            #expect(try Self.count(standIn, user: user, folder: trash, messageID: messageID) == 1, "COPY into Trash lands in \(trash)")
            #expect(try Self.count(standIn, user: user, folder: junk, messageID: messageID) == 1, "MOVE into Junk lands in \(junk)")
            #expect(try Self.count(standIn, user: user, folder: "INBOX", messageID: messageID) == 0, "MOVE removed it from INBOX")
            let child = try #require(out["child"] as? String)
            #expect((out["create"] as? String)?.contains("OK") == true, "\(out)")
            #expect((out["children"] as? [String])?.contains { $0.hasSuffix(" \"\(child)\"") } == true, "\(out)")
            #expect((out["statusChild"] as? [String])?.first?.hasPrefix("* STATUS \"\(child)\" (MESSAGES 0)") == true, "\(out)")
            #expect((out["deleteChild"] as? String)?.contains("NO [CANNOT]") == true, "lock_after_send protects it: \(out)")
            let sentName = user.hasPrefix("hans") ? "Gesendete Elemente" : "Sent Items"
            let removed = try IMAPEndToEnd.run(
                "rmdir",
                [standIn["IMAPS_PORT"], user, "", standIn.caFile, try standIn.accessToken(for: user),
                    sentName + child.dropFirst(4)])
            #expect(removed["delete"] as? String == "OK", "the child exists under the server's name: \(removed)")
            let other = try #require(out["other"] as? String)
            #expect((out["createOther"] as? String)?.contains("OK") == true, "\(out)")
            #expect((out["listOther"] as? [String])?.contains { $0.hasSuffix(" \"\(other)\"") } == true, "\(out)")
            #expect((out["deleteOther"] as? String)?.contains("OK") == true, "\(out)")
        }

        @Test("lock_after_send in Sent: \\Deleted, EXPUNGE, MOVE out, DELETE/RENAME, APPEND \\Deleted refused with NO [CANNOT]; \\Seen and keywords work; CLOSE does not expunge")
        func lockAfterSend() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27461, imapPort: 27411, accounts: [Self.alice])
            let token = try standIn.accessToken(for: Self.alice)
            let out = try IMAPEndToEnd.run(
                "lock", Self.arguments(installation, imapPort: 27411) + [standIn["IMAPS_PORT"], standIn.caFile, token, "Sent Items"])
            #expect((out["append"] as? String)?.contains("OK") == true, "\(out)")
            for key in ["storeDeleted", "replaceDeleted", "storeSingle", "expunge", "uidExpunge", "move", "deleteSent",
                "renameSent", "deleteChild", "appendDeleted"]
            {
                let reply = out[key] as? String ?? "nil"
                #expect(reply.contains(" NO [CANNOT] "), "\(key) must be refused: \(reply)")
            }
            for key in ["createChild", "seen", "flagged", "unflag", "copy", "close"] {
                let reply = out[key] as? String ?? "nil"
                #expect(reply.contains(" OK"), "\(key) must work: \(reply)")
            }
            #expect(out["stillThere"] as? Int == 1, "the message is still in Sent: \(out)")
            let flags = out["flags"] as? String ?? ""
            #expect(flags.contains("\\Seen") && flags.contains("$Label1"), "\(flags)")
            let messageID = try #require(out["messageID"] as? String)
            #expect(try Self.count(standIn, user: Self.alice, folder: "Sent Items", messageID: messageID) == 1)
            #expect(installation.serveOutput.contains("IMAP lock-after-send refusal"))
            let counters = try Self.awaitStats(installation, account: Self.alice) { ($0["imap.commands"] ?? 0) > 0 }
            #expect(counters["imap.lock_refusals"] == 10, "\(counters)")
            #expect((counters["imap.login.ok"] ?? 0) >= 1, "\(counters)")
            #expect((counters["imap.commands"] ?? 0) >= 20, "\(counters)")
            #expect((counters["imap.bytes_from_client"] ?? 0) > 1_500, "\(counters)")
            #expect((counters["imap.bytes_to_client"] ?? 0) > 500, "\(counters)")
        }

        /// `mailgate stats` for `account`, polled until `ready` (counters are written when a session ends).
        static func awaitStats(
            _ installation: MailGateInstallation, account: String, ready: ([String: Int64]) -> Bool
        ) throws -> [String: Int64] {
            let deadline = Date().addingTimeInterval(10)
            var counters = try EndToEnd.stats(installation, account: account)
            while !ready(counters), Date() < deadline {
                Thread.sleep(forTimeInterval: 0.3)
                counters = try EndToEnd.stats(installation, account: account)
            }
            return counters
        }

        /// Polls the stand-in until `folder` holds `expected` copies of `messageID` (or the time is up); the count.
        static func awaitCount(
            _ standIn: StandIn, user: String, folder: String, messageID: String, expected: Int, seconds: Double = 25
        ) throws -> Int {
            let deadline = Date().addingTimeInterval(seconds)
            var last = -1
            while Date() < deadline {
                last = try count(standIn, user: user, folder: folder, messageID: messageID)
                if last == expected { return last }
                Thread.sleep(forTimeInterval: 0.5)
            }
            return last
        }

        @Test("a client's APPEND to Sent of a message just sent through the SMTP gateway leaves exactly one copy (copy made, copy queued, autofile on)")
        func appendDeduplicated() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27462, imapPort: 27412, accounts: [Self.alice])
            try standIn.control("autofile", json: #"{"enabled": false}"#)
            defer { _ = try? standIn.control("autofile", json: #"{"enabled": false}"#) }
            var queuedCancelled = 0
            for (label, waitFirst, autofile) in [("made", true, false), ("queued", false, false), ("autofiled", true, true)] {
                try standIn.control("autofile", json: "{\"enabled\": \(autofile)}")
                let id = EndToEnd.uniqueID("dedup-\(label)")
                let original = EndToEnd.message(
                    from: Self.alice, to: ["bob@contoso.test"], subject: "dedup \(label)", id: id)
                let file = try EndToEnd.write(original, named: "dedup-\(label).eml", in: installation.directory)
                let sent = try EndToEnd.sendWithPython(
                    port: installation.smtpPort, user: Self.alice, from: Self.alice, to: ["bob@contoso.test"], file: file)
                try #require(sent.status == 0, "\(label): smtplib: \(sent.error.suffix(400))")
                if waitFirst {
                    let before = try Self.awaitCount(standIn, user: Self.alice, folder: "Sent Items", messageID: id, expected: 1)
                    try #require(before == 1, "\(label): the first copy is in Sent Items")
                    Thread.sleep(forTimeInterval: 0.5)  // the journal's copy state is written after the copy
                }
                let appended = try IMAPEndToEnd.run("appendfile", Self.arguments(installation, imapPort: 27412) + [file])
                #expect((appended["append"] as? String)?.contains("OK") == true, "\(label): \(appended)")
                let answer = appended["append"] as? String ?? ""
                // "queued": the gateway's copy may still wait for its job (then the client's APPEND is filed and the
                // queued copy cancelled, point 6's other branch) or be filed already (then de-duplicated); with fast
                // upstream logins (TLS resumption) the first is the usual one. Exactly one copy either way (below).
                let clientFiled = label == "queued" && !answer.contains("already in Sent")
                    && installation.serveOutput.contains("the gateway's queued copy was cancelled")
                if clientFiled { queuedCancelled += 1 }
                #expect(answer.contains("already in Sent") || clientFiled, "\(label): \(appended)")
                // UIDPLUS is on (Dovecot): the answer names the copy found in Sent (searched on a side session).
                #expect(answer.contains("OK [APPENDUID ") == true, "\(label): \(appended)")
                Thread.sleep(forTimeInterval: 1)
                let copies = try Self.count(standIn, user: Self.alice, folder: "Sent Items", messageID: id)
                #expect(copies == 1, "\(label): \(copies) copies of \(id) in Sent Items")
            }
            #expect(installation.serveOutput.contains("IMAP APPEND to Sent de-duplicated"))
            let deduplicated = 3 - queuedCancelled
            let counters = try Self.awaitStats(installation, account: Self.alice) {
                ($0["imap.append_deduplicated"] ?? 0) >= deduplicated
            }
            #expect(counters["imap.append_deduplicated"] == Int64(deduplicated), "\(counters)")
        }

        @Test("APPEND of 5 MiB with {n} (gateway answers +) and with {n+}, FETCH gives the same bytes back")
        func append5MiB() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27452, imapPort: 27402, accounts: [Self.alice])
            for mode in ["sync", "nonsync"] {
                let out = try IMAPEndToEnd.run(
                    "append", Self.arguments(installation, imapPort: 27402) + ["5242880", mode, "INBOX"])
                if mode == "sync" {
                    #expect((out["continuation"] as? String)?.hasPrefix("+") == true, "\(out)")
                } else {
                    #expect(out["continuation"] is NSNull, "no + for {n+}: \(out)")
                }
                #expect((out["append"] as? String)?.contains("OK") == true, "\(mode): \(out["append"] ?? "nil")")
                #expect(out["found"] as? Int == 1, "\(mode): \(out)")
                #expect(out["equal"] as? Bool == true, "\(mode): fetched \(out["fetchedSize"] ?? 0) bytes")
            }
        }

        @Test("FETCH of a 20 MiB message is byte-exact and the gateway's RSS grows by less than 2 MiB")
        func fetch20MiB() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27453, imapPort: 27403, accounts: [Self.alice])
            let pid = try #require(installation.serveProcessIdentifier)
            let arguments = Self.arguments(installation, imapPort: 27403)
            // Warm-up: the first large transfer grows malloc's arenas and TLS buffers once.
            let warm = try IMAPEndToEnd.run("append", arguments + ["2097152", "nonsync", "INBOX"])
            try #require(warm["equal"] as? Bool == true, "warm-up: \(warm)")
            let big = try IMAPEndToEnd.run("append", arguments + ["20971520", "nonsync", "INBOX"])
            try #require(big["found"] as? Int == 1, "\(big)")
            let messageID = try #require(big["messageID"] as? String)
            let sha = try #require(big["sha256"] as? String)
            let warmFetch = try IMAPEndToEnd.run("fetch", arguments + [try #require(warm["messageID"] as? String), "INBOX", ""])
            #expect(warmFetch["found"] as? Int == 1)
            Thread.sleep(forTimeInterval: 0.5)
            try EndToEnd.resetPeakResident(pid)
            let before = try EndToEnd.residentBytes(pid)
            let fetched = try IMAPEndToEnd.run("fetch", arguments + [messageID, "INBOX", sha])
            let peak = try EndToEnd.peakResidentBytes(pid)
            #expect(fetched["equal"] as? Bool == true, "\(fetched)")
            let growth = peak - before
            print("IMAP FETCH 20 MiB: gateway RSS before \(before / 1024) KiB, peak \(peak / 1024) KiB, growth \(growth / 1024) KiB")
            #expect(growth < 2 * 1_048_576, "RSS grew by \(growth / 1024) KiB during the 20 MiB FETCH")
        }

        @Test("IDLE sees a message delivered through the SMTP gateway within 2 s; DONE ends it; the session goes on")
        func idleSeesDelivery() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(
                standIn, smtpPort: 27454, imapPort: 27404, accounts: [Self.alice], extraServer: "sent_copy = \"never\"")
            let out = try IMAPEndToEnd.run("idle", Self.arguments(installation, imapPort: 27404) + ["27454"])
            #expect(out["idling"] as? Bool == true)
            let seconds = try #require(out["seconds"] as? Double, "no EXISTS during IDLE: \(out)")
            #expect(seconds < 2, "EXISTS came after \(seconds) s")
            #expect((out["done"] as? String)?.contains("OK") == true, "\(out)")
            #expect((out["noop"] as? String)?.contains("OK") == true, "\(out)")
        }

        @Test("a malformed command gets BAD and the session continues")
        func malformed() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27455, imapPort: 27405, accounts: [Self.alice])
            let out = try IMAPEndToEnd.run("malformed", Self.arguments(installation, imapPort: 27405))
            #expect((out["garbage"] as? String)?.hasPrefix("* BAD") == true, "\(out)")
            #expect((out["unknown"] as? String)?.hasPrefix("T2 BAD") == true, "\(out)")
            #expect((out["badargs"] as? String)?.hasPrefix("T3 BAD") == true, "\(out)")
            #expect((out["noop"] as? String)?.hasPrefix("T4 OK") == true, "\(out)")
        }

        @Test("a command line over imap_line closes only that connection")
        func overlongLine() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(standIn, smtpPort: 27456, imapPort: 27406, accounts: [Self.alice])
            let out = try IMAPEndToEnd.run("longline", Self.arguments(installation, imapPort: 27406) + ["20000"])
            let reply = try #require(out["reply"] as? String)
            #expect(reply.hasPrefix("* BYE"), "\(reply)")
            #expect((out["otherNoop"] as? String)?.hasPrefix("T2 OK") == true, "\(out)")
        }

        @Test("an APPEND over imap_append_literal gets NO [TOOBIG] before any continuation; the session goes on")
        func appendTooBig() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(
                standIn, smtpPort: 27457, imapPort: 27407, accounts: [Self.alice],
                extraLimits: "imap_append_literal = 1048576")
            let out = try IMAPEndToEnd.run("toobig", Self.arguments(installation, imapPort: 27407) + ["1048577"])
            #expect((out["reply"] as? String)?.hasPrefix("T2 NO [TOOBIG]") == true, "\(out)")
            #expect((out["noop"] as? String)?.hasPrefix("T3 OK") == true, "\(out)")
        }

        @Test("upstream sessions per mailbox are capped (imap_upstream_sessions): NO [LIMIT] past it, a slot frees on LOGOUT")
        func sessionCap() throws {
            guard let standIn = StandIn.load() else { return }
            let installation = try IMAPEndToEnd.serving(
                standIn, smtpPort: 27458, imapPort: 27408, accounts: [Self.alice],
                extraLimits: "imap_upstream_sessions = 2")
            let out = try IMAPEndToEnd.run("cap", Self.arguments(installation, imapPort: 27408) + ["3"])
            let logins = try #require(out["logins"] as? [String])
            try #require(logins.count == 3)
            #expect(logins[0].hasPrefix("T1 OK") && logins[1].hasPrefix("T1 OK"), "\(logins)")
            #expect(logins[2].hasPrefix("T1 NO [LIMIT]"), "\(logins[2])")
            #expect((out["afterLogout"] as? String)?.hasPrefix("T1 OK") == true, "\(out)")
        }
    }
}
