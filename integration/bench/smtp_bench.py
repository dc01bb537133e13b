#!/usr/bin/env python3
"""SMTP submission benchmark: direct to the Microsoft 365 stand-in vs. through emailproxy vs. through MailGate.

Prints numbers, asserts nothing (issue 5). Sends N messages of 10 KB and N of 1 MB from alice to bob over
each path, once in one SMTP session ("session reuse") and once with a new session per message, and reports
messages/s, MiB/s, p50/p95 latency per message, the client's peak RSS and the proxy process's peak RSS.

Every client run happens in a fresh child process (this file with --worker), so that the client's peak RSS
(getrusage) belongs to that one run; every proxy is started fresh for each run for the same reason
(/proc/<pid>/status VmHWM). The stand-in, token, emailproxy, MailGate and the SMTP client itself are benchlib.py's
(shared with imap_bench.py, pop3_bench.py and `bench`). Everything talks to 127.0.0.1 only.
"""

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
from benchlib import (ALICE, INTEGRATION, SMTP_TIMEOUT, percentile, StandIn, oauth_tokens, proc_status_kib,  # noqa: E402
                      proc_cpu_s, machine_info, fmt, mib)

SIZES = {"10KB": 10 * 1024, "1MB": 1024 * 1024}
MODES = ("reuse", "per-message")
MODE_LABEL = {"reuse": "session reuse", "per-message": "new session per message"}

log = bl.make_log("smtp-bench")


# ------------------------------------------------------------------ worker (one client run, own process)

def run_worker(spec):
    """Sends spec['count'] messages; prints one JSON object. Bounded by count and by spec['budget'] seconds."""
    ep = bl.Endpoint(spec["port"], starttls=spec["starttls"], ca_file=spec["ca_file"],
                     token=os.environ["BENCH_TOKEN"] if spec["auth"] == "xoauth2" else None,
                     password=os.environ.get("BENCH_PASSWORD"), user=spec["user"])
    raw = bl.smtp_run(ep, spec["size"], spec["count"], spec["mode"], spec["budget"], spec["tag"])
    ru = resource.getrusage(resource.RUSAGE_SELF)
    raw.update(client_maxrss_kib=ru.ru_maxrss, client_cpu_s=ru.ru_utime + ru.ru_stime)
    print(json.dumps(raw))


# ------------------------------------------------------------------ paths

class Direct:
    name = "direct"
    label = "direct (XOAUTH2 to stand-in)"

    def __init__(self, env, args):
        self.env = env
        self.token = oauth_tokens(env, ALICE)["access_token"]

    def prepare(self):
        return None

    def start(self):
        return None  # no proxy process

    def stop(self):
        pass

    def spec(self):
        return {"port": int(self.env["MAILGATE_STANDIN_SUBMISSION_PORT"]), "starttls": True, "auth": "xoauth2",
                "user": ALICE, "ca_file": self.env["MAILGATE_STANDIN_CA_FILE"]}

    def child_env(self):
        return {"BENCH_TOKEN": self.token}

    def describe(self):
        return {}


class LocalSpec:
    """A proxy the clients reach on loopback with AUTH PLAIN and a local password (emailproxy, mailgate serve)."""

    def spec(self):
        return {"port": self.port, "starttls": False, "auth": "plain", "user": ALICE, "ca_file": None}

    def child_env(self):
        return {"BENCH_PASSWORD": self.password}


class EmailProxy(LocalSpec, bl.EmailProxy):
    def __init__(self, env, args):
        bl.EmailProxy.__init__(self, env, args.venv, sections=("SMTP",))


class MailGate(LocalSpec, bl.MailGate):
    def __init__(self, env, args, lock_after_send, sent_copy="never"):
        if sent_copy != "never":
            # The shipped defaults: sent_copy = "auto", lock_after_send = true.
            name, label = "mailgate-default", f"MailGate (defaults: sent_copy {sent_copy}, lock_after_send)"
        else:
            name = "mailgate-lock" if lock_after_send else "mailgate"
            label = "MailGate (lock_after_send)" if lock_after_send else "MailGate"
        bl.MailGate.__init__(self, env, args.mailgate_bin, name=name, label=label, listen=("smtp",),
                             sent_copy=sent_copy, lock_after_send=lock_after_send)


# ------------------------------------------------------------------ driver

def run_client(path, size_name, mode, count, budget, tag):
    spec = dict(path.spec(), size=SIZES[size_name], count=count, mode=mode, budget=budget, tag=tag)
    env = dict(os.environ, **path.child_env())
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                              capture_output=True, text=True, env=env, timeout=budget + 2 * SMTP_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        return {"sent": 0, "elapsed": 0, "latencies": [], "setup": None, "errors": ["client timed out"],
                "client_maxrss_kib": None, "client_cpu_s": None}
    if done.returncode != 0 or not done.stdout.strip():
        return {"sent": 0, "elapsed": 0, "latencies": [], "setup": None,
                "errors": ["client crashed: " + done.stderr.strip()[-500:]], "client_maxrss_kib": None,
                "client_cpu_s": None}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(path, size_name, mode, count, raw, proxy_hwm_kib, proxy_cpu):
    lat = sorted(raw["latencies"])
    size = SIZES[size_name]
    elapsed = raw["elapsed"] or None
    mps = raw["sent"] / elapsed if elapsed and raw["sent"] else None
    return {
        "path": path.name, "label": path.label, "size": size_name, "size_bytes": size, "mode": mode,
        "requested": count, "sent": raw["sent"], "elapsed_s": raw["elapsed"],
        "messages_per_s": mps, "mib_per_s": mps * size / 2 ** 20 if mps else None,
        "latency_p50_ms": percentile(lat, 50) * 1000 if lat else None,
        "latency_p95_ms": percentile(lat, 95) * 1000 if lat else None,
        "latency_mean_ms": sum(lat) / len(lat) * 1000 if lat else None,
        "session_setup_ms": raw["setup"] * 1000 if raw.get("setup") is not None else None,
        "client_peak_rss_kib": raw["client_maxrss_kib"], "client_cpu_s": raw["client_cpu_s"],
        "proxy_peak_rss_kib": proxy_hwm_kib, "proxy_cpu_s": proxy_cpu, "errors": raw["errors"],
    }


def bench_path(path, plan, stand_in, budget, results, skipped):
    reason = path.prepare()
    if reason:
        skipped[path.name] = reason
        log(f"{path.name}: skipped: {reason}")
        return
    for size_name, count in plan:
        for mode in MODES:
            stand_in.wait_queue_empty()
            reason = path.start()
            if reason:
                skipped[path.name] = reason
                log(f"{path.name}: skipped: {reason}")
                path.stop()
                return
            pid = getattr(path, "pid", lambda: None)()
            # One warm-up message (not counted) proves EHLO/AUTH/DATA work before anything is measured.
            warm = run_client(path, "10KB", "reuse", 1, 60, "warm-up")
            if warm["sent"] != 1:
                path.stop()
                skipped[path.name] = "warm-up message failed (EHLO/AUTH/DATA): " + "; ".join(warm["errors"])
                log(f"{path.name}: skipped: {skipped[path.name]}")
                return
            stand_in.wait_queue_empty()
            cpu0 = proc_cpu_s(pid) if pid else None
            log(f"{path.name}: {count} x {size_name}, {MODE_LABEL[mode]}")
            raw = run_client(path, size_name, mode, count, budget, path.name)
            hwm = proc_status_kib(pid, "VmHWM") if pid else None
            cpu1 = proc_cpu_s(pid) if pid else None
            path.stop()
            row = summarize(path, size_name, mode, count, raw, hwm,
                            cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)
            results.append(row)
            if raw["errors"]:
                log(f"{path.name}: {size_name} {mode}: " + "; ".join(raw["errors"]))


def print_table(results, skipped, order):
    header = ["path", "size", "mode", "sent", "msg/s", "MiB/s", "p50 ms", "p95 ms", "setup ms", "client RSS MiB",
              "proxy RSS MiB", "proxy CPU s"]
    rows = []
    for r in results:
        rows.append([r["label"], r["size"], MODE_LABEL[r["mode"]], f"{r['sent']}/{r['requested']}",
                     fmt(r["messages_per_s"]), fmt(r["mib_per_s"], 2), fmt(r["latency_p50_ms"]),
                     fmt(r["latency_p95_ms"]), fmt(r["session_setup_ms"]), mib(r["client_peak_rss_kib"]), mib(r["proxy_peak_rss_kib"]),
                     fmt(r["proxy_cpu_s"], 2)])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    for name in order:
        if name in skipped:
            print(f"{name}: skipped: {skipped[name]}")


def find_row(results, path, size, mode):
    for r in results:
        if r["path"] == path and r["size"] == size and r["mode"] == mode and r["messages_per_s"]:
            return r
    return None


def targets(results, skipped):
    """The issue's two targets, on 10 KB messages/s; session reuse decides, per-message is reported alongside."""
    out = {}
    for mode in MODES:
        direct = find_row(results, "direct", "10KB", mode)
        proxy = find_row(results, "emailproxy", "10KB", mode)
        gate = find_row(results, "mailgate", "10KB", mode)
        out[mode] = {
            "mailgate_vs_direct": gate["messages_per_s"] / direct["messages_per_s"] if gate and direct else None,
            "mailgate_vs_emailproxy": gate["messages_per_s"] / proxy["messages_per_s"] if gate and proxy else None,
            "emailproxy_vs_direct": proxy["messages_per_s"] / direct["messages_per_s"] if proxy and direct else None,
        }
    why = "n/a (MailGate skipped, see above)" if "mailgate" in skipped else "n/a (no numbers for both sides)"

    def verdict(ratio, ok):
        return why if ratio is None else f"{'yes' if ok(ratio) else 'no'} ({ratio:.2f}x)"

    reuse, per = out["reuse"], out["per-message"]

    def both(key, ok):
        text = verdict(reuse[key], ok)
        if per[key] is not None:
            text += f"   [new session per message: {verdict(per[key], ok)}]"
        return text

    lines = [
        "MailGate within 15% of direct (10 KB): " + both("mailgate_vs_direct", lambda x: x >= 0.85),
        "MailGate ≥ 2× emailproxy (10 KB): " + both("mailgate_vs_emailproxy", lambda x: x >= 2.0),
    ]
    if reuse["emailproxy_vs_direct"] is not None:
        lines.append(f"(for reference: emailproxy / direct, 10 KB, session reuse: {reuse['emailproxy_vs_direct']:.2f}x"
                     + (f"; new session per message: {per['emailproxy_vs_direct']:.2f}x"
                        if per["emailproxy_vs_direct"] is not None else "") + ")")
    # Issue 9's targets, for the shipped defaults (sent_copy = "auto", lock_after_send = true).
    issue9 = {("10KB", "reuse"): 0.95, ("10KB", "per-message"): 0.9, ("1MB", "reuse"): 0.95, ("1MB", "per-message"): 0.95}
    for (size, mode), goal in issue9.items():
        direct = find_row(results, "direct", size, mode)
        gate = find_row(results, "mailgate-default", size, mode)
        if direct and gate:
            ratio = gate["messages_per_s"] / direct["messages_per_s"]
            out[f"defaults_vs_direct_{size}_{mode}"] = ratio
            lines.append(f"MailGate defaults / direct, {size}, {MODE_LABEL[mode]}: {ratio:.2f}x "
                         f"(issue 9 target >= {goal}: {'met' if ratio >= goal else 'missed'})")
    out["mailgate_within_15pct_of_direct_10kb"] = (reuse["mailgate_vs_direct"] >= 0.85
                                                   if reuse["mailgate_vs_direct"] is not None else None)
    out["mailgate_2x_emailproxy_10kb"] = (reuse["mailgate_vs_emailproxy"] >= 2.0
                                          if reuse["mailgate_vs_emailproxy"] is not None else None)
    return out, lines


def main():
    parser = argparse.ArgumentParser(description="SMTP benchmark: direct vs emailproxy vs MailGate (loopback).")
    parser.add_argument("--quick", action="store_true", help="N=20 for 10 KB and N=3 for 1 MB")
    parser.add_argument("--n-small", type=int, help="messages of 10 KB per run (default 200, --quick 20)")
    parser.add_argument("--n-large", type=int, help="messages of 1 MB per run (default 20, --quick 3)")
    parser.add_argument("--paths", default="direct,emailproxy,mailgate,mailgate-lock",
                        help="comma-separated subset of direct,emailproxy,mailgate,mailgate-lock,mailgate-default "
                             "(mailgate-default: sent_copy = \"auto\", lock_after_send = true)")
    parser.add_argument("--budget", type=float, default=240, help="seconds per client run before it stops early")
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv"), help="venv holding emailproxy")
    parser.add_argument("--mailgate-bin", help="the mailgate binary (default: $MAILGATE_BIN, .build/release, debug)")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"), help="where to write JSON")
    parser.add_argument("--keep-temp", action="store_true", help="keep the proxies' temp dirs (configs, logs)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed-emailproxy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        return run_worker(json.loads(args.worker))
    if args.seed_emailproxy:
        return bl.seed_emailproxy()

    n_small = args.n_small or (20 if args.quick else 200)
    n_large = args.n_large or (3 if args.quick else 20)
    if not (1 <= n_small <= 100000 and 1 <= n_large <= 10000):
        parser.error("N must be between 1 and 100000 (10 KB) / 10000 (1 MB)")
    plan = [("10KB", n_small), ("1MB", n_large)]
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    known = ["direct", "emailproxy", "mailgate", "mailgate-lock", "mailgate-default"]
    if any(p not in known for p in wanted):
        parser.error("--paths takes " + ",".join(known))

    env_file = os.environ.get("MAILGATE_STANDIN_ENV", os.path.join(INTEGRATION, "run", "env"))
    stand_in = StandIn(env_file)
    results, skipped, paths = [], {}, []

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    try:
        stand_in.ensure()
        for name in wanted:
            if name == "direct":
                path = Direct(stand_in.env, args)
            elif name == "emailproxy":
                path = EmailProxy(stand_in.env, args)
            else:
                path = MailGate(stand_in.env, args, lock_after_send=(name != "mailgate"),
                                sent_copy="auto" if name == "mailgate-default" else "never")
            paths.append(path)
            try:
                bench_path(path, plan, stand_in, args.budget, results, skipped)
            finally:
                path.stop()
    finally:
        for path in paths:
            if not args.keep_temp and hasattr(path, "cleanup"):
                path.cleanup()
        stand_in.stop()

    print()
    print(f"SMTP submission benchmark, alice -> bob, loopback; 10 KB x {n_small}, 1 MB x {n_large}; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print_table(results, skipped, wanted)
    target_numbers, target_lines = targets(results, skipped)
    print()
    for line in target_lines:
        print(line)

    ep = next((p for p in paths if p.name == "emailproxy"), None)
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "duration_s": time.time() - started,
        "machine": machine_info(),
        "params": {"n_10kb": n_small, "n_1mb": n_large, "sizes_bytes": SIZES, "budget_s": args.budget,
                   "paths": wanted, "quick": args.quick},
        "emailproxy_version": ep.version if ep else None,
        "paths": {p.name: p.describe() for p in paths},
        "results": results, "skipped": skipped, "targets": target_numbers,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        log("interrupted; the proxies and the stand-in this run started have been stopped")
        sys.exit(130)
