#!/usr/bin/env python3
"""POP3 benchmark: direct to the stand-in's Dovecot POP3 vs. through `mailgate serve` vs. through emailproxy (issue 10).

Prints numbers, asserts nothing. Each round, interleaved over the paths: one session that logs in, sends STAT and
RETRs every message of the maildrop (N x 100 KiB, APPENDed once, directly, into alice's INBOX and removed at the
end), bytes checked against what was appended; per RETR the time from the command to the terminating "." line.
MailGate runs three times: served from the INBOX over IMAP (incoming = "imap"), relaying Dovecot's POP3
(incoming = "pop3"), and from the local download store (incoming = "imap-download" with forbid_manual_refresh: the
schedule inside serve downloads the maildrop once at start, then POP3 needs no upstream connection). The proxies'
CPU seconds and peak RSS are read from /proc. The stand-in, token, emailproxy, MailGate and the POP3 session are benchlib.py's
(shared with smtp_bench.py, imap_bench.py and `bench`).
"""

import argparse
import imaplib
import json
import os
import platform
import secrets
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402

HOST, ALICE = bl.HOST, bl.ALICE
KIB, MIB = bl.KIB, bl.MIB
log = bl.make_log("pop3-bench")


def body(size, seed, tag):
    return bl.pop3_body(size, seed, tag)


class Path:
    """One way to alice's maildrop: a benchlib Endpoint and, for a proxy, the process serving it."""

    owner = None

    def pid(self):
        return self.owner.pid() if self.owner else None

    def stop(self):
        if self.owner:
            self.owner.stop()

    def cleanup(self):
        if self.owner:
            self.owner.cleanup()


class Direct(Path):
    name, label = "direct", "direct (XOAUTH2, TLS)"

    def __init__(self, env):
        self.token = bl.oauth_tokens(env, ALICE)["access_token"]
        self.ep = bl.direct_endpoints(env, self.token)["pop3"]

    def prepare(self):
        return None


class MailGate(Path):
    def __init__(self, env, args, incoming):
        self.name = f"mailgate-{incoming}"
        self.label = {"imap": "MailGate, served from IMAP", "pop3": "MailGate, POP3 relayed",
                      "local-store": "MailGate, from the local store"}[incoming]
        self.incoming, self.messages = incoming, args.messages
        extra, sections = [], ""
        if incoming == "pop3":
            extra = ['incoming = "pop3"', f'pop3 = "{HOST}:{env["MAILGATE_STANDIN_POP3S_PORT"]}"',
                     'pop3_security = "tls"']
        elif incoming == "local-store":
            extra = ['incoming = "imap-download"']
            sections = '\n[download]\nevery = "1h"\nforbid_manual_refresh = true\n'
        self.owner = bl.MailGate(env, args.mailgate_bin, name=self.name, label=self.label, listen=("smtp", "pop3"),
                                 server_extra=extra, toml_extra=sections)
        self.ep = self.owner.endpoint("pop3")

    def prepare(self):
        reason = self.owner.prepare() or self.owner.start()
        if reason is None and self.incoming == "local-store":
            reason = self.wait_downloaded(120)
        return reason

    def wait_downloaded(self, timeout):
        """The schedule's first run (at start) fills the store; STAT shows it once every message is in."""
        deadline, count = time.time() + timeout, 0
        while time.time() < deadline:
            count = bl.pop3_stat_count(self.ep)
            if count >= self.messages:
                log(f"{self.name}: {count} messages downloaded into the local store")
                return None
            time.sleep(0.2)
        return f"the download schedule stored only {count} of {self.messages} messages in {timeout} s"


class EmailProxy(Path):
    name, label = "emailproxy", "emailproxy (plain loopback)"

    def __init__(self, env, args):
        self.owner = bl.EmailProxy(env, args.venv, sections=("POP",))
        self.ep = self.owner.endpoint("POP")

    def prepare(self):
        return self.owner.prepare() or self.owner.start()


def session(path, expected):
    return bl.pop3_session(path.ep, expected)


median = bl.median


def main():
    parser = argparse.ArgumentParser(description="POP3 benchmark: direct vs MailGate vs emailproxy (loopback).")
    parser.add_argument("--paths", default="direct,mailgate-imap,mailgate-pop3,mailgate-local-store,emailproxy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    parser.add_argument("--mailgate-bin")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "pop3-latest.json"))
    args = parser.parse_args()

    stand_in = bl.StandIn(bl.default_env_file(), prefix="pop3-bench")
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
                cpu0 = bl.proc_cpu_s(p.pid()) if p.pid() else None
                res = session(p, expected)
                cpu1 = bl.proc_cpu_s(p.pid()) if p.pid() else None
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
                p.hwm = bl.proc_status_kib(p.pid(), "VmHWM") if p.pid() else None
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
        line = {"mib_s": median(row["mib_s"]), "retr_p50_ms": bl.percentile(lat, 50) * 1e3,
                "retr_p99_ms": bl.percentile(lat, 99) * 1e3, "retr_max_ms": lat[-1] * 1e3,
                "retr_stalls_10ms": sum(1 for x in lat if x >= 0.010), "retrs": len(lat),
                "login_p50_ms": median(row["login"]) * 1e3, "cpu_s_per_round": median(row["cpu"]),
                "peak_rss_mib": (p.hwm / 1024) if getattr(p, "hwm", None) else None, "bad_sessions": row["bad"]}
        out[p.name] = line
        table.append([p.label, bl.fmt(line["mib_s"]), bl.fmt(line["retr_p50_ms"], 2), bl.fmt(line["retr_p99_ms"], 2),
                      bl.fmt(line["retr_max_ms"], 2), f"{line['retr_stalls_10ms']} of {line['retrs']}",
                      bl.fmt(line["login_p50_ms"]), bl.fmt(line["cpu_s_per_round"], 3), bl.fmt(line["peak_rss_mib"]),
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
        json.dump({"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": bl.machine_info(),
                   "params": {"rounds": args.rounds, "messages": args.messages}, "results": out,
                   "load_average": {"before": load_before, "after": load_after},
                   "skipped": skipped}, f, indent=2)
    print(f"\nJSON: {args.json}")
    stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
