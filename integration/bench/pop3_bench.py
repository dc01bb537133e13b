#!/usr/bin/env python3
"""POP3 benchmark: direct to the stand-in's Dovecot POP3 vs. through `mailgate serve` vs. through emailproxy (issue 10).

Prints numbers, asserts nothing. Each round, interleaved over the paths: one session that logs in, sends STAT and
RETRs every message of the maildrop (N x 100 KiB, APPENDed once, directly, into alice's INBOX and removed at the
end), bytes checked against what was appended; per RETR the time from the command to the terminating "." line.
MailGate runs three times: served from the INBOX over IMAP (incoming = "imap"), relaying Dovecot's POP3
(incoming = "pop3"), and from the local download store (incoming = "imap-download" with forbid_manual_refresh: the
schedule inside serve downloads the maildrop once at start, then POP3 needs no upstream connection). The
proxies' CPU seconds and peak RSS are read from /proc. Shares stand-in, token, emailproxy and MailGate helpers
with smtp_bench.py. Only the standard library here (emailproxy lives in the venv the pop3-bench wrapper makes).
"""

import argparse
import base64
import configparser
import imaplib
import json
import os
import platform
import poplib
import secrets
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_bench as sb  # noqa: E402

HOST, ALICE = sb.HOST, sb.ALICE
KIB, MIB = 1024, 1024 * 1024


def log(*parts):
    print("pop3-bench:", *parts, file=sys.stderr, flush=True)


def body(size, seed, tag):
    import hashlib
    raw = hashlib.shake_256(b"pop3-bench-%d-%d" % (size, seed)).digest(size)
    text = base64.b64encode(raw)
    lines = b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))
    head = (f"From: {ALICE}\r\nTo: {ALICE}\r\nSubject: pop3 bench {tag} #{seed}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@bench.contoso.test>\r\n\r\n").encode()
    return head + lines[:size - len(head) - 2] + b"\r\n"


class Direct:
    name, label = "direct", "direct (XOAUTH2, TLS)"
    proc = None

    def __init__(self, env):
        self.env = env
        self.port = int(env["MAILGATE_STANDIN_POP3S_PORT"])
        self.ctx = ssl.create_default_context(cafile=env["MAILGATE_STANDIN_CA_FILE"])
        self.token = sb.oauth_tokens(env, ALICE)["access_token"]

    def pid(self):
        return None

    def prepare(self):
        return None

    def login(self):
        p = poplib.POP3_SSL(HOST, self.port, context=self.ctx, timeout=120)
        p._putcmd("AUTH XOAUTH2")
        line, _ = p._getline()
        assert line.startswith(b"+"), line
        p._putcmd(base64.b64encode(f"user={ALICE}\x01auth=Bearer {self.token}\x01\x01".encode()).decode())
        line, _ = p._getline()
        assert line.startswith(b"+OK"), line
        return p

    def stop(self):
        pass

    def cleanup(self):
        pass


class Local:
    """A proxy on plain loopback with USER/PASS and a local password."""

    def pid(self):
        return self.proc.pid if self.proc else None

    def login(self):
        p = poplib.POP3(HOST, self.pop3_port, timeout=120)
        p.user(ALICE)
        p.pass_(self.password)
        return p

    def stop(self):
        sb.stop_process(self.proc, self.name)
        self.proc = None


class MailGate(Local):
    def __init__(self, env, args, incoming):
        self.inner = sb.MailGate(env, args, lock_after_send=False)
        self.name = f"mailgate-{incoming}"
        self.label = {"imap": "MailGate, served from IMAP", "pop3": "MailGate, POP3 relayed",
                      "local-store": "MailGate, from the local store"}[incoming]
        self.incoming = incoming
        self.messages = args.messages
        self.pop3_port = sb.free_port()
        self.password = self.inner.password
        self.proc = None
        original = self.inner.toml
        extra, sections = "", ""
        if incoming == "pop3":
            extra = (f'incoming = "pop3"\npop3 = "{HOST}:{env["MAILGATE_STANDIN_POP3S_PORT"]}"\n'
                     'pop3_security = "tls"\n')
        elif incoming == "local-store":
            extra = 'incoming = "imap-download"\n'
            sections = '\n[download]\nevery = "1h"\nforbid_manual_refresh = true\n'

        def toml():
            text = original().replace("[listen]\n", f'[listen]\npop3 = "{HOST}:{self.pop3_port}"\n', 1)
            return text.replace('imap_security = "tls"\n', 'imap_security = "tls"\n' + extra, 1) + sections
        self.inner.toml = toml

    def prepare(self):
        reason = self.inner.prepare()
        if reason:
            return reason
        reason = self.inner.start()
        self.proc = self.inner.proc
        if reason is None and not sb.wait_port(self.pop3_port, 10, self.proc):
            reason = "mailgate serve does not listen for POP3 (is the POP3 gateway there yet?)"
        if reason is None and self.incoming == "local-store":
            reason = self.wait_downloaded(120)
        return reason

    def wait_downloaded(self, timeout):
        """The schedule's first run (at start) fills the store; POP3 STAT shows it once every message is in."""
        deadline, count = time.time() + timeout, 0
        while time.time() < deadline:
            p = self.login()
            count = p.stat()[0]
            p.quit()
            if count >= self.messages:
                log(f"{self.name}: {count} messages downloaded into the local store")
                return None
            time.sleep(0.2)
        return f"the download schedule stored only {count} of {self.messages} messages in {timeout} s"

    def cleanup(self):
        self.inner.cleanup()


class EmailProxy(Local):
    name, label = "emailproxy", "emailproxy (plain loopback)"

    def __init__(self, env, args):
        self.inner = sb.EmailProxy(env, args)
        self.pop3_port, self.password, self.env, self.proc = self.inner.port, self.inner.password, env, None

    def prepare(self):
        reason = self.inner.prepare()
        if reason:
            return reason
        cfg = configparser.ConfigParser()
        cfg.read(self.inner.config)
        cfg.remove_section(f"SMTP-{self.pop3_port}")
        cfg[f"POP-{self.pop3_port}"] = {"local_address": HOST, "server_address": HOST,
                                        "server_port": self.env["MAILGATE_STANDIN_POP3S_PORT"]}
        with open(self.inner.config, "w") as f:
            cfg.write(f)
        reason = self.inner.start()
        self.proc = self.inner.proc
        return reason

    def cleanup(self):
        self.inner.cleanup()


def read_response(sock, buffer, multiline):
    """One response from `sock` (bytes left over from the last read in `buffer`): the status line and, for a
    multi-line +OK, the raw body through the terminating ".", found by scanning only the newest bytes."""
    while b"\r\n" not in buffer:
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    end = buffer.index(b"\r\n") + 2
    status = bytes(buffer[:end])
    if not multiline or not status.startswith(b"+OK"):
        return status, b"", buffer[end:]
    body = buffer[end:]
    if body.startswith(b".\r\n"):
        return status, b"", body[3:]
    scanned = 0
    while True:
        found = body.find(b"\r\n.\r\n", max(0, scanned - 4))
        if found >= 0:
            return status, bytes(body[:found + 2]), body[found + 5:]
        scanned = len(body)
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection in a multi-line response")
        body += chunk


def session(path, expected):
    """Login, STAT, RETR 1..n on the raw socket (poplib's line-by-line reading would be the bottleneck): seconds
    for STAT + RETRs, per-RETR latencies (command sent to terminator read), bytes, whether all matched."""
    t_login = time.perf_counter()
    p = path.login()
    login_s = time.perf_counter() - t_login
    sock, buffer = p.sock, bytearray()
    try:
        t0 = time.perf_counter()
        sock.sendall(b"STAT\r\n")
        status, _, buffer = read_response(sock, buffer, False)
        count = int(status.split()[1])
        latencies, total, got = [], 0, []
        for n in range(1, count + 1):
            t = time.perf_counter()
            sock.sendall(b"RETR %d\r\n" % n)
            status, data, buffer = read_response(sock, buffer, True)
            latencies.append(time.perf_counter() - t)
            assert status.startswith(b"+OK"), status
            total += len(data)
            got.append((b"\r\n" + data).replace(b"\r\n..", b"\r\n.")[2:])
        elapsed = time.perf_counter() - t0
        sock.sendall(b"QUIT\r\n")
        read_response(sock, buffer, False)
    finally:
        p.close()
    ok = sorted(got) == sorted(expected)
    return {"seconds": elapsed, "bytes": total, "latencies": latencies, "ok": ok, "login_s": login_s}


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def main():
    parser = argparse.ArgumentParser(description="POP3 benchmark: direct vs MailGate vs emailproxy (loopback).")
    parser.add_argument("--paths", default="direct,mailgate-imap,mailgate-pop3,mailgate-local-store,emailproxy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    parser.add_argument("--mailgate-bin")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "pop3-latest.json"))
    args = parser.parse_args()

    env_file = os.environ.get("MAILGATE_STANDIN_ENV", os.path.join(sb.INTEGRATION, "run", "env"))
    stand_in = sb.StandIn(env_file)
    stand_in.ensure()
    env = stand_in.env
    direct = Direct(env)

    # The maildrop must hold only the benchmark's messages: refuse to run on an INBOX with other mail.
    ctx = ssl.create_default_context(cafile=env["MAILGATE_STANDIN_CA_FILE"])
    m = imaplib.IMAP4_SSL(HOST, int(env["MAILGATE_STANDIN_IMAPS_PORT"]), ssl_context=ctx, timeout=60)
    sasl = f"user={ALICE}\x01auth=Bearer {direct.token}\x01\x01"
    m.authenticate("XOAUTH2", lambda _: sasl.encode())
    typ, data = m.select("INBOX")
    if int(data[0]) != 0:
        log(f"alice's INBOX holds {int(data[0])} messages; the benchmark needs it empty (POP3 sees the whole INBOX)")
        return 2
    tag = secrets.token_hex(4)
    expected = [body(100 * KIB, i, tag) for i in range(args.messages)]
    for msg in expected:
        m.append("INBOX", None, None, msg)
    log(f"seeded {args.messages} x 100 KiB into alice's INBOX")

    paths, skipped = [], {}
    for name in [p.strip() for p in args.paths.split(",") if p.strip()]:
        if name == "direct":
            path = direct
        elif name == "emailproxy":
            path = EmailProxy(env, args)
        else:
            path = MailGate(env, args, name.removeprefix("mailgate-"))
        reason = path.prepare()
        if reason:
            skipped[name] = reason
            log(f"{name}: skipped: {reason}")
            path.stop()
        else:
            paths.append(path)

    load_before = os.getloadavg()
    rows = {p.name: {"mib_s": [], "lat": [], "login": [], "cpu": [], "bad": 0} for p in paths}
    try:
        for r in range(args.rounds):
            for p in paths:
                row = rows[p.name]
                cpu0 = sb.proc_cpu_s(p.pid()) if p.pid() else None
                res = session(p, expected)
                cpu1 = sb.proc_cpu_s(p.pid()) if p.pid() else None
                row["mib_s"].append(res["bytes"] / MIB / res["seconds"])
                row["lat"].extend(res["latencies"])
                row["login"].append(res["login_s"])
                row["bad"] += 0 if res["ok"] else 1
                if cpu0 is not None and cpu1 is not None:
                    row["cpu"].append(cpu1 - cpu0)
            log(f"round {r + 1}/{args.rounds} done")
    finally:
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "SUBJECT", f"\"pop3 bench {tag}\"")
        uids = data[0].split()
        if uids:
            m.uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT", "(\\Deleted)")
            m.expunge()
        m.logout()
        for p in paths:
            if p is not direct:
                p.hwm = sb.proc_status_kib(p.pid(), "VmHWM") if p.pid() else None
                p.stop()
                p.cleanup()

    load_after = os.getloadavg()
    print()
    print(f"POP3 benchmark, alice, loopback; {args.rounds} rounds of STAT + RETR {args.messages} x 100 KiB; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("load average (1/5/15 min) before %.2f %.2f %.2f, after %.2f %.2f %.2f" % (load_before + load_after))
    header = ["path", "MiB/s", "RETR p50 ms", "p99 ms", "max ms", ">=10ms", "login p50 ms", "CPU s/round",
              "peak RSS MiB", "bad"]
    table, out = [], {}
    for p in paths:
        row = rows[p.name]
        lat = sorted(row["lat"])
        line = {"mib_s": median(row["mib_s"]), "retr_p50_ms": sb.percentile(lat, 50) * 1e3,
                "retr_p99_ms": sb.percentile(lat, 99) * 1e3, "retr_max_ms": lat[-1] * 1e3,
                "retr_stalls_10ms": sum(1 for x in lat if x >= 0.010), "retrs": len(lat),
                "login_p50_ms": median(row["login"]) * 1e3, "cpu_s_per_round": median(row["cpu"]),
                "peak_rss_mib": (p.hwm / 1024) if getattr(p, "hwm", None) else None, "bad_sessions": row["bad"]}
        out[p.name] = line
        table.append([p.label, sb.fmt(line["mib_s"]), sb.fmt(line["retr_p50_ms"], 2), sb.fmt(line["retr_p99_ms"], 2),
                      sb.fmt(line["retr_max_ms"], 2), f"{line['retr_stalls_10ms']} of {line['retrs']}",
                      sb.fmt(line["login_p50_ms"]), sb.fmt(line["cpu_s_per_round"], 3), sb.fmt(line["peak_rss_mib"]),
                      str(line["bad_sessions"])])
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    fmt_line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt_line(header))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(fmt_line(r))
    if "direct" in out:
        for name, line in out.items():
            if name != "direct":
                print(f"{name} / direct: {line['mib_s'] / out['direct']['mib_s']:.2f}x throughput, "
                      f"RETR p50 {line['retr_p50_ms'] / out['direct']['retr_p50_ms']:.2f}x")
    for name, reason in skipped.items():
        print(f"{name}: skipped: {reason}")
    print("(direct is TLS end to end; the proxies' client side is plain loopback, their upstream side TLS)")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": sb.machine_info(),
                   "params": {"rounds": args.rounds, "messages": args.messages}, "results": out,
                   "load_average": {"before": load_before, "after": load_after},
                   "skipped": skipped}, f, indent=2)
    print(f"\nJSON: {args.json}")
    stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
