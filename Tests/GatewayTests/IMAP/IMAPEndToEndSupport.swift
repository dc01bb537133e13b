// GatewayTests/IMAP: helpers for the IMAP gateway end-to-end tests: an installation with an IMAP listener, and a
// small raw IMAP client in Python (imaplib cannot send `{n+}` or over-long lines) driving `mailgate serve`.

import Foundation
import Testing

@testable import Gateway

enum IMAPEndToEnd {
    static let password = EndToEnd.password

    /// A fresh installation with an IMAP listener on `imapPort` (SMTP on `smtpPort`), `accounts` connected.
    static func serving(
        _ standIn: StandIn, smtpPort: Int, imapPort: Int, accounts: [String], extraServer: String = "",
        extraLimits: String = ""
    ) throws -> MailGateInstallation {
        // extraServer ends the file, so a [limits] table can follow it.
        let installation = try MailGateInstallation(
            standIn, smtpPort: smtpPort,
            extraServer: extraServer + (extraLimits.isEmpty ? "" : "\n\n[limits]\n\(extraLimits)"),
            extraListen: "imap = \"127.0.0.1:\(imapPort)\"")
        for account in accounts { try installation.addAndConnect(account, password: password) }
        try installation.startServe()
        return installation
    }

    /// Runs one scenario of `client` (below) and decodes its JSON output.
    static func run(_ scenario: String, _ arguments: [String]) throws -> [String: Any] {
        let result = try runPython(client, [scenario] + arguments)
        guard result.status == 0 else {
            throw StandInError("python \(scenario) failed (\(result.status)): \(result.error.suffix(1200)) \(result.output.suffix(400))")
        }
        guard let line = result.output.split(separator: "\n").last,
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw StandInError("python \(scenario) printed no JSON: \(result.output.suffix(400))") }
        return json
    }

    static func uniqueSubject(_ label: String) -> String { "imap-e2e \(label) \(UInt64.random(in: 0...UInt64.max))" }

    /// The raw client: `python3 -c CLIENT SCENARIO PORT USER PASSWORD …`; prints one JSON line.
    static let client = #"""
        import socket, sys, json, time, hashlib, smtplib, os

        class Client:
            def __init__(self, port):
                self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
                self.buf = b""
                self.n = 0
                self.greeting = self.line()
            def fill(self):
                data = self.s.recv(262144)
                if not data: raise EOFError("connection closed")
                self.buf += data
            def line(self):
                while b"\r\n" not in self.buf: self.fill()
                i = self.buf.index(b"\r\n") + 2
                out, self.buf = self.buf[:i], self.buf[i:]
                return out
            def exact(self, n):
                chunks = []
                have = min(n, len(self.buf))
                chunks.append(self.buf[:have]); self.buf = self.buf[have:]; n -= have
                while n > 0:
                    data = self.s.recv(min(n, 1048576))
                    if not data: raise EOFError("connection closed in a literal")
                    chunks.append(data); n -= len(data)
                return b"".join(chunks)
            def response(self):
                """One whole response: (first line, [literals], all lines)."""
                lines = []; literals = []
                while True:
                    l = self.line(); lines.append(l)
                    s = l.rstrip(b"\r\n")
                    if s.endswith(b"}") and b"{" in s:
                        n = int(s[s.rindex(b"{") + 1:-1].rstrip(b"+"))
                        literals.append(self.exact(n))
                        continue
                    return lines, literals
            def tag(self):
                self.n += 1
                return "T%d" % self.n
            def send(self, data):
                self.s.sendall(data)
            def command(self, text):
                t = self.tag()
                self.send((t + " " + text + "\r\n").encode())
                return self.until(t)
            def until(self, t):
                untagged = []
                while True:
                    lines, literals = self.response()
                    if lines[0].startswith(t.encode() + b" "):
                        return lines[0].decode("latin-1").strip(), untagged
                    untagged.append((lines, literals))
            def login(self, user, password):
                return self.command('LOGIN "%s" "%s"' % (user, password))

        def message(subject, size):
            mid = "<imap-e2e-%d@contoso.test>" % int.from_bytes(os.urandom(8), "big")
            head = ("From: <alice@contoso.test>\r\nTo: <alice@contoso.test>\r\nSubject: %s\r\nMessage-ID: %s\r\n"
                    "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" % (subject, mid)).encode()
            line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;:!?=+*/()[]<>\r\n"
            body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)] + b"\r\n"
            return mid, head + body

        def find(c, mid):
            status, untagged = c.command('UID SEARCH HEADER Message-ID "%s"' % mid)
            uids = []
            for lines, _ in untagged:
                if lines[0].startswith(b"* SEARCH"): uids += lines[0].split()[2:]
            return [u.decode() for u in uids]

        def fetch(c, uid):
            t = c.tag()
            c.send(("%s UID FETCH %s (BODY.PEEK[])\r\n" % (t, uid)).encode())
            status, untagged = c.until(t)
            bodies = [lits[0] for lines, lits in untagged if lits]
            return status, bodies

        scenario, port, user, password = sys.argv[1:5]
        rest = sys.argv[5:]
        out = {}
        if scenario == "login":
            c = Client(port)
            out["greeting"] = c.greeting.decode("latin-1")
            out["wrong"] = c.login(user, password + "-wrong")[0]
            out["right"] = c.login(user, password)[0]
            out["noop"] = c.command("NOOP")[0]
            status, untagged = c.command("CAPABILITY")
            out["capability"] = b"".join(l[0][0] for l in untagged).decode("latin-1")
            out["logout"] = c.command("LOGOUT")[0]
        elif scenario == "append":
            size, mode, mailbox = int(rest[0]), rest[1], rest[2]
            c = Client(port); c.login(user, password)
            mid, msg = message("append %s %d" % (mode, size), size)
            t = c.tag()
            plus = "+" if mode == "nonsync" else ""
            c.send(('%s APPEND "%s" (\\Seen) {%d%s}\r\n' % (t, mailbox, len(msg), plus)).encode())
            continuation = None
            if mode == "sync":
                lines, _ = c.response()
                continuation = lines[0].decode("latin-1").strip()
            c.send(msg + b"\r\n")
            out["continuation"] = continuation
            out["append"] = c.until(t)[0]
            out["select"] = c.command('SELECT "%s"' % mailbox)[0]
            uids = find(c, mid)
            out["found"] = len(uids)
            if uids:
                status, bodies = fetch(c, uids[0])
                out["fetch"] = status
                out["equal"] = bool(bodies) and bodies[0] == msg
                out["fetchedSize"] = len(bodies[0]) if bodies else 0
            out["messageID"] = mid
            out["size"] = len(msg)
            out["sha256"] = hashlib.sha256(msg).hexdigest()
            c.command("LOGOUT")
        elif scenario == "fetch":
            mid, mailbox, expected = rest[0], rest[1], rest[2]
            c = Client(port); c.login(user, password)
            out["select"] = c.command('EXAMINE "%s"' % mailbox)[0]
            uids = find(c, mid)
            out["found"] = len(uids)
            if uids:
                status, bodies = fetch(c, uids[0])
                out["fetch"] = status
                out["sha256"] = hashlib.sha256(bodies[0]).hexdigest() if bodies else ""
                out["equal"] = out["sha256"] == expected
            c.command("LOGOUT")
        elif scenario == "idle":
            smtp_port = int(rest[0])
            c = Client(port); c.login(user, password)
            c.command("SELECT INBOX")
            t = c.tag()
            c.send((t + " IDLE\r\n").encode())
            while True:
                lines, _ = c.response()
                if lines[0].startswith(b"+"): break
            out["idling"] = True
            subject = "idle %d" % int.from_bytes(os.urandom(8), "big")
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as s:
                s.login(user, password)
                start = time.time()
                s.sendmail(user, [user], ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nidle test\r\n" % (user, user, subject)).encode())
            seen = None
            c.s.settimeout(10)
            try:
                while True:
                    lines, _ = c.response()
                    if lines[0].startswith(b"* ") and lines[0].rstrip().endswith(b"EXISTS"):
                        seen = time.time() - start; break
            except Exception as e:
                out["error"] = str(e)
            out["seconds"] = seen
            c.s.settimeout(60)
            c.send(b"DONE\r\n")
            out["done"] = c.until(t)[0]
            out["noop"] = c.command("NOOP")[0]
        elif scenario == "malformed":
            c = Client(port); c.login(user, password)
            c.send(b"\x01\x02garbage\r\n")
            out["garbage"] = c.line().decode("latin-1").strip()
            out["unknown"] = c.command("FROBNICATE now")[0]
            out["badargs"] = c.command("SELECT")[0]
            out["noop"] = c.command("NOOP")[0]
        elif scenario == "longline":
            other = Client(port); other.login(user, password)
            c = Client(port); c.login(user, password)
            c.send(b"T99 NOOP " + b"x" * int(rest[0]) + b"\r\n")
            got = b""
            try:
                while True:
                    data = c.s.recv(65536)
                    if not data: break
                    got += data
            except Exception as e:
                out["error"] = str(e)
            out["reply"] = got.decode("latin-1")
            out["otherNoop"] = other.command("NOOP")[0]
        elif scenario == "toobig":
            c = Client(port); c.login(user, password)
            t = c.tag()
            c.send(("%s APPEND INBOX {%s}\r\n" % (t, rest[0])).encode())
            lines, _ = c.response()
            out["reply"] = lines[0].decode("latin-1").strip()
            out["noop"] = c.command("NOOP")[0]
        elif scenario == "cap":
            clients = []
            results = []
            for i in range(int(rest[0])):
                c = Client(port)
                results.append(c.login(user, password)[0])
                clients.append(c)
            out["logins"] = results
            clients[0].command("LOGOUT")
            out["afterLogout"] = Client(port).login(user, password)[0]
        elif scenario == "folders":
            c = Client(port); c.login(user, password)
            status, untagged = c.command('LIST "" "*"')
            out["list"] = [l[0][0].decode("latin-1").strip() for l in untagged if l[0][0].startswith(b"* LIST")]
            status, untagged = c.command('LIST "" "%"')
            out["listPercent"] = [l[0][0].decode("latin-1").strip() for l in untagged if l[0][0].startswith(b"* LIST")]
            status, untagged = c.command('STATUS "Trash" (MESSAGES)')
            out["status"] = [l[0][0].decode("latin-1").strip() for l in untagged]
            mid, msg = message("folders", 2000)
            c.send(('%s APPEND INBOX {%d+}\r\n' % (c.tag(), len(msg))).encode() + msg + b"\r\n")
            c.until("T%d" % c.n)
            c.command("SELECT INBOX")
            uids = find(c, mid)
            out["copy"] = c.command('UID COPY %s "Trash"' % uids[0])[0]
            out["move"] = c.command('UID MOVE %s "Junk"' % uids[0])[0]
            out["messageID"] = mid
            child = "Sent/mg-%d" % int.from_bytes(os.urandom(4), "big")
            out["create"] = c.command('CREATE "%s"' % child)[0]
            status, untagged = c.command('LIST "" "Sent/*"')
            out["children"] = [l[0][0].decode("latin-1").strip() for l in untagged if l[0][0].startswith(b"* LIST")]
            status, untagged = c.command('STATUS "%s" (MESSAGES)' % child)
            out["statusChild"] = [l[0][0].decode("latin-1").strip() for l in untagged]
            out["deleteChild"] = c.command('DELETE "%s"' % child)[0]
            out["child"] = child
            # A non-ASCII folder, in modified UTF-7 (Projekte-Überblick), round trip.
            other = "mg-%d-&ANw-berblick" % int.from_bytes(os.urandom(4), "big")
            out["createOther"] = c.command('CREATE "%s"' % other)[0]
            status, untagged = c.command('LIST "" "%s"' % other)
            out["listOther"] = [l[0][0].decode("latin-1").strip() for l in untagged if l[0][0].startswith(b"* LIST")]
            out["deleteOther"] = c.command('DELETE "%s"' % other)[0]
            out["other"] = other
            c.command("LOGOUT")
        elif scenario == "lock":
            import imaplib, ssl
            standin_port, ca, token, server_sent = rest[0], rest[1], rest[2], rest[3]
            c = Client(port); c.login(user, password)
            mid, msg = message("lock", 1500)
            t = c.tag()
            c.send(('%s APPEND "Sent" () {%d+}\r\n' % (t, len(msg))).encode() + msg + b"\r\n")
            out["append"] = c.until(t)[0]
            out["select"] = c.command('SELECT "Sent"')[0]
            uid = find(c, mid)[0]
            child = "Sent/lock-%d" % int.from_bytes(os.urandom(4), "big")
            checks = [
                ("storeDeleted", "UID STORE %s +FLAGS (\\Deleted)" % uid),
                ("replaceDeleted", "UID STORE %s FLAGS (\\Seen \\Deleted)" % uid),
                ("storeSingle", "UID STORE %s +FLAGS.SILENT \\Deleted" % uid),
                ("expunge", "EXPUNGE"),
                ("uidExpunge", "UID EXPUNGE %s" % uid),
                ("move", 'UID MOVE %s "Trash"' % uid),
                ("deleteSent", 'DELETE "Sent"'),
                ("renameSent", 'RENAME "Sent" "Elsewhere"'),
                ("createChild", 'CREATE "%s"' % child),
                ("deleteChild", 'DELETE "%s"' % child),
                ("seen", "UID STORE %s +FLAGS (\\Seen)" % uid),
                ("flagged", "UID STORE %s +FLAGS (\\Flagged $Label1)" % uid),
                ("unflag", "UID STORE %s -FLAGS (\\Flagged)" % uid),
                ("copy", 'UID COPY %s "Trash"' % uid),
            ]
            for key, command in checks:
                out[key] = c.command(command)[0]
            t = c.tag()
            c.send(('%s APPEND "Sent" (\\Seen \\Deleted) {%d}\r\n' % (t, len(msg))).encode())
            lines, _ = c.response()
            out["appendDeleted"] = lines[0].decode("latin-1").strip()
            # Flag it \Deleted behind the gateway's back: CLOSE through the gateway must still not expunge it.
            m = imaplib.IMAP4_SSL("127.0.0.1", int(standin_port), ssl_context=ssl.create_default_context(cafile=ca))
            m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
            m.select('"%s"' % server_sent)
            m.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            m.logout()
            out["close"] = c.command("CLOSE")[0]
            c.command('SELECT "Sent"')
            out["stillThere"] = len(find(c, mid))
            status, untagged = c.command("UID FETCH %s (FLAGS)" % uid)
            out["flags"] = b"".join(l[0][0] for l in untagged).decode("latin-1")
            c.command("UID STORE %s -FLAGS (\\Deleted)" % uid)
            out["messageID"] = mid
            c.command("LOGOUT")
            # The gateway protects the child; remove it behind its back.
            m = imaplib.IMAP4_SSL("127.0.0.1", int(standin_port), ssl_context=ssl.create_default_context(cafile=ca))
            m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
            m.delete('"%s%s"' % (server_sent, child[4:]))
            m.logout()
        elif scenario == "appendfile":
            path = rest[0]
            msg = open(path, "rb").read()
            c = Client(port); c.login(user, password)
            t = c.tag()
            c.send(('%s APPEND "Sent" (\\Seen) {%d}\r\n' % (t, len(msg))).encode())
            lines, _ = c.response()
            if lines[0].startswith(b"+"):
                c.send(msg + b"\r\n")
                out["append"] = c.until(t)[0]
            else:
                out["append"] = lines[0].decode("latin-1").strip()
            c.command("LOGOUT")
        elif scenario == "rmdir":
            import imaplib, ssl
            ca, token, folder = rest[0], rest[1], rest[2]
            m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ssl.create_default_context(cafile=ca))
            m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
            out["delete"] = m.delete('"%s"' % folder)[0]
            m.logout()
        elif scenario == "count":
            # Directly at the stand-in with XOAUTH2: how many messages with this Message-ID are in a folder.
            import imaplib, ssl
            ca, token, folder, mid = rest[0], rest[1], rest[2], rest[3]
            m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ssl.create_default_context(cafile=ca))
            m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
            typ, data = m.select('"%s"' % folder, readonly=True)
            out["select"] = typ
            typ, data = m.uid("SEARCH", "HEADER", "Message-ID", mid)
            out["count"] = len(data[0].split()) if data and data[0] else 0
            m.logout()
        print(json.dumps(out))
        """#
}
