#!/usr/bin/env python3
"""IMAP benchmark: direct to the stand-in's Dovecot vs. through `mailgate serve` vs. through emailproxy (issue 8).

Prints numbers, asserts nothing. Workloads, interleaved per round over the paths (medians over rounds):
- FETCH of 200 x 100 KiB and of 5 x 20 MiB (one `UID FETCH 1:* (BODY.PEEK[])` each, bytes checked),
- 2000 NOOP round trips (p50 / p99 / max, and how many took >= 10 ms),
- 20 logins (connect + greeting + login until the tagged OK; p50).
The proxies' CPU seconds (per workload) and peak RSS are read from /proc. The messages are APPENDed once, directly,
into two fresh folders of alice's mailbox, which are deleted at the end. The stand-in, token, emailproxy, MailGate
and the IMAP workloads are benchlib.py's (shared with smtp_bench.py, pop3_bench.py and `bench`).
"""

import argparse
import json
import os
import platform
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402

HOST, ALICE = bl.HOST, bl.ALICE
KIB, MIB = bl.KIB, bl.MIB
log = bl.make_log("imap-bench")
quote = bl.imap_quote


def body(size, seed):
    return bl.imap_body(size, seed)


class Path:
    """One way to alice's mailbox: a benchlib Endpoint and, for a proxy, the process serving it."""

    owner = None

    def pid(self):
        return self.owner.pid() if self.owner else None

    def login(self):
        return bl.imap_login(self.ep)

    def stop(self):
        if self.owner:
            self.owner.stop()

    def cleanup(self):
        if self.owner:
            self.owner.cleanup()


class Direct(Path):
    name, label = "direct", "direct (XOAUTH2, TLS)"

    def __init__(self, env):
        self.ep = bl.direct_endpoints(env, bl.oauth_tokens(env, ALICE)["access_token"])["imap"]

    def prepare(self):
        return None


class EmailProxy(Path):
    name, label = "emailproxy", "emailproxy (plain loopback)"

    def __init__(self, env, args):
        self.owner = bl.EmailProxy(env, args.venv, sections=("IMAP",))
        self.ep = self.owner.endpoint("IMAP")

    def prepare(self):
        return self.owner.prepare() or self.owner.start()


class MailGate(Path):
    name, label = "mailgate", "MailGate (plain loopback)"

    def __init__(self, env, args):
        idle = getattr(args, "idle", 0)
        # --idle N: room for N upstream sessions of one mailbox (Exchange would refuse; the stand-in does not);
        # imap_upstream_sessions stops at 100, so one mailbox gives at most ~95 idle pairs.
        extra = f"[limits]\nimap_upstream_sessions = {min(100, idle + 5)}\n" if idle else ""
        self.owner = bl.MailGate(env, args.mailgate_bin, listen=("smtp", "imap"), toml_extra=extra)
        self.ep = self.owner.endpoint("imap")

    def prepare(self):
        return self.owner.prepare() or self.owner.start()


# ------------------------------------------------------------------ workloads

def fetch_all(path, folder, expected):
    return bl.imap_fetch_all(path.ep, folder, expected)


def noops(path, count):
    return bl.imap_noops(path.ep, count)


def logins(path, count):
    return bl.imap_logins(path.ep, count)


def idle_sessions(path, count, pid):
    """Opens `count` sessions (login, SELECT INBOX, IDLE until `+`) at once; the gateway's RSS before and with
    them all idling, then DONE and LOGOUT. Raw sockets in one thread: 1,000 imaplib objects would be the cost."""
    import select
    import socket
    import ssl as ssl_module

    before = bl.proc_status_kib(pid, "VmRSS") if pid else None
    socks, state, buffers = [], {}, {}
    ok = 0
    t0 = time.perf_counter()
    for i in range(count):
        s = socket.create_connection((HOST, path.ep.port), timeout=60)
        if path.ep.tls:
            s = path.ep.ctx.wrap_socket(s, server_hostname=HOST)
        s.setblocking(False)
        socks.append(s)
        state[s.fileno()] = "greeting"
        buffers[s.fileno()] = b""
    by_fd = {s.fileno(): s for s in socks}
    pending = set(by_fd)
    deadline = time.time() + 300
    while pending and time.time() < deadline:
        readable, _, _ = select.select([by_fd[f] for f in list(pending)[:1000]], [], [], 1.0)
        for s in readable:
            fd = s.fileno()
            try:
                data = s.recv(65536)
            except (BlockingIOError, ssl_module.SSLWantReadError):
                continue
            if not data:
                pending.discard(fd)
                continue
            buffers[fd] += data
            while b"\r\n" in buffers[fd]:
                line, buffers[fd] = buffers[fd].split(b"\r\n", 1)
                st = state[fd]
                if st == "greeting":
                    if path.ep.token is not None:
                        import base64
                        sasl = base64.b64encode(f"user={ALICE}\x01auth=Bearer {path.ep.token}\x01\x01".encode())
                        s.sendall(b"L AUTHENTICATE XOAUTH2 " + sasl + b"\r\n")
                    else:
                        s.sendall(b'L LOGIN "' + ALICE.encode() + b'" "' + path.ep.password.encode() + b'"\r\n')
                    state[fd] = "login"
                elif st == "login" and line.startswith(b"L "):
                    if not line.startswith(b"L OK"):
                        pending.discard(fd)
                        continue
                    s.sendall(b"S SELECT INBOX\r\n")
                    state[fd] = "select"
                elif st == "select" and line.startswith(b"S "):
                    s.sendall(b"I IDLE\r\n")
                    state[fd] = "idle"
                elif st == "idle" and line.startswith(b"+"):
                    state[fd] = "idling"
                    ok += 1
                    pending.discard(fd)
    setup = time.perf_counter() - t0
    time.sleep(2)
    during = bl.proc_status_kib(pid, "VmRSS") if pid else None
    for s in socks:
        try:
            s.setblocking(True)
            s.sendall(b"DONE\r\nO LOGOUT\r\n")
        except OSError:
            pass
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    per_pair = ((during - before) / ok) if before is not None and during is not None and ok else None
    return {"sessions": count, "idling": ok, "setup_s": setup, "rss_before_kib": before, "rss_idle_kib": during,
            "kib_per_pair": per_pair}


median = bl.median


def main():
    parser = argparse.ArgumentParser(description="IMAP benchmark: direct vs MailGate vs emailproxy (loopback).")
    parser.add_argument("--paths", default="direct,mailgate,emailproxy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 x 100 KiB, 1 x 20 MiB, 200 NOOPs, 5 logins")
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    parser.add_argument("--mailgate-bin")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "imap-latest.json"))
    parser.add_argument("--idle", type=int, default=0,
                        help="after the rounds: this many sessions in IDLE through MailGate, its memory per pair")
    args = parser.parse_args()
    n_small, n_large, n_noop, n_login = (20, 1, 200, 5) if args.quick else (200, 5, 2000, 20)

    stand_in = bl.StandIn(bl.default_env_file(), prefix="imap-bench")
    stand_in.ensure()
    env = stand_in.env
    direct = Direct(env)
    paths, skipped = [], {}
    for name in [p.strip() for p in args.paths.split(",") if p.strip()]:
        path = direct if name == "direct" else EmailProxy(env, args) if name == "emailproxy" else MailGate(env, args)
        reason = path.prepare()
        if reason:
            skipped[name] = reason
            log(f"{name}: skipped: {reason}")
            path.stop()
        else:
            paths.append(path)

    suffix = secrets.token_hex(4)
    folders = {"100KiB": f"bench-100k-{suffix}", "20MiB": f"bench-20m-{suffix}"}
    sets = {"100KiB": [body(100 * KIB, i) for i in range(n_small)], "20MiB": [body(20 * MIB, i) for i in range(n_large)]}
    m = direct.login()
    for key, folder in folders.items():
        m.create(quote(folder))
        for msg in sets[key]:
            m.append(quote(folder), None, None, msg)
    m.logout()
    log(f"seeded {n_small} x 100 KiB and {n_large} x 20 MiB")

    rows = {p.name: {"fetch_100KiB": [], "fetch_20MiB": [], "noop": [], "login": [], "cpu": {}, "bad": 0}
            for p in paths}
    idle_result = None
    try:
        for r in range(args.rounds):
            for p in paths:
                row = rows[p.name]
                for key in ("100KiB", "20MiB"):
                    cpu0 = bl.proc_cpu_s(p.pid()) if p.pid() else None
                    res = fetch_all(p, folders[key], sets[key])
                    cpu1 = bl.proc_cpu_s(p.pid()) if p.pid() else None
                    row["fetch_" + key].append(res["bytes"] / MIB / res["seconds"])
                    row["bad"] += 0 if res["ok"] else 1
                    if cpu0 is not None and cpu1 is not None:
                        row["cpu"].setdefault(key, []).append(cpu1 - cpu0)
                row["noop"].extend(noops(p, n_noop))
                row["login"].extend(logins(p, n_login))
            log(f"round {r + 1}/{args.rounds} done")
        if args.idle:
            for p in paths:
                if p.name == "mailgate":
                    idle_result = idle_sessions(p, args.idle, p.pid())
                    log(f"idle: {idle_result}")
    finally:
        m = direct.login()
        for folder in folders.values():
            m.delete(quote(folder))
        m.logout()
        for p in paths:
            if p is not direct:
                p.hwm = bl.proc_status_kib(p.pid(), "VmHWM") if p.pid() else None
                p.stop()
                p.cleanup()

    print()
    print(f"IMAP benchmark, alice, loopback; {args.rounds} rounds; FETCH {n_small} x 100 KiB and {n_large} x 20 MiB, "
          f"{n_noop} NOOPs, {n_login} logins per round; {os.cpu_count()} CPUs, Python {platform.python_version()}")
    header = ["path", "100KiB MiB/s", "20MiB MiB/s", "NOOP p50 us", "p99 us", "max ms", ">=10ms", "login p50 ms",
              "CPU s 100KiB", "CPU s 20MiB", "peak RSS MiB", "bad"]
    table = []
    out = {}
    base = rows.get("direct")
    for p in paths:
        row = rows[p.name]
        noop = sorted(row["noop"])
        line = {
            "fetch_100KiB_mib_s": median(row["fetch_100KiB"]), "fetch_20MiB_mib_s": median(row["fetch_20MiB"]),
            "noop_p50_us": bl.percentile(noop, 50) * 1e6, "noop_p99_us": bl.percentile(noop, 99) * 1e6,
            "noop_max_ms": noop[-1] * 1e3, "noop_stalls_10ms": sum(1 for x in noop if x >= 0.010),
            "login_p50_ms": median(row["login"]) * 1e3,
            "cpu_100KiB_s": median(row["cpu"].get("100KiB", [])), "cpu_20MiB_s": median(row["cpu"].get("20MiB", [])),
            "peak_rss_mib": (p.hwm / 1024) if getattr(p, "hwm", None) else None, "bad_fetches": row["bad"],
        }
        out[p.name] = line
        table.append([p.label, bl.fmt(line["fetch_100KiB_mib_s"]), bl.fmt(line["fetch_20MiB_mib_s"]),
                      bl.fmt(line["noop_p50_us"], 0), bl.fmt(line["noop_p99_us"], 0), bl.fmt(line["noop_max_ms"]),
                      str(line["noop_stalls_10ms"]), bl.fmt(line["login_p50_ms"]), bl.fmt(line["cpu_100KiB_s"], 2),
                      bl.fmt(line["cpu_20MiB_s"], 2), bl.fmt(line["peak_rss_mib"]), str(line["bad_fetches"])])
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    fmt_line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt_line(header))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(fmt_line(r))
    if "direct" in out:
        for name, line in out.items():
            if name != "direct":
                d = out["direct"]
                print(f"{name} / direct: FETCH 100 KiB {line['fetch_100KiB_mib_s'] / d['fetch_100KiB_mib_s']:.2f}x, "
                      f"20 MiB {line['fetch_20MiB_mib_s'] / d['fetch_20MiB_mib_s']:.2f}x, "
                      f"NOOP p50 +{line['noop_p50_us'] - d['noop_p50_us']:.0f} us, "
                      f"login p50 {line['login_p50_ms'] / d['login_p50_ms']:.2f}x")
    for name, reason in skipped.items():
        print(f"{name}: skipped: {reason}")
    print("(direct is TLS end to end; the proxies' client side is plain loopback, their upstream side TLS)")
    if args.idle and idle_result:
        r = idle_result
        print(f"idle: {r['idling']}/{r['sessions']} sessions in IDLE through MailGate (set up in {r['setup_s']:.1f} s); "
              f"gateway RSS {r['rss_before_kib']} KiB before, {r['rss_idle_kib']} KiB idling: "
              f"{bl.fmt(r['kib_per_pair'])} KiB per session pair")
        out["mailgate_idle"] = r
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": bl.machine_info(),
                   "params": {"rounds": args.rounds, "n_100KiB": n_small, "n_20MiB": n_large, "noops": n_noop,
                              "logins": n_login}, "results": out, "skipped": skipped}, f, indent=2)
    print(f"\nJSON: {args.json}")
    stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
