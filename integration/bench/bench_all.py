#!/usr/bin/env python3
"""One benchmark for every protocol (issue 13 point 1): direct to the stand-in vs. through `mailgate serve` vs.
through emailproxy, the same workloads, interleaved in one run.

Workloads (ids as in the JSON): SMTP messages/s for 10 KB and 1 MB, one session and a session per message; IMAP
FETCH MiB/s of 100 KiB and 20 MiB messages; IMAP NOOP round trip p50 (p99, max and stalls >= 10 ms alongside);
IMAP login time; POP3 STAT + RETR MiB/s. Per workload and proxy: CPU seconds (user + system, /proc/<pid>/stat) and
peak RSS (VmRSS sampled every 20 ms). Round r runs workload w over the paths in the order benchlib.rotated(paths,
r + w), so no path always goes first. One `mailgate serve` (SMTP, IMAP and POP3 listeners, the sample's defaults
sent_copy = "auto", lock_after_send = true) and one emailproxy (SMTP, IMAP and POP sections) serve the whole run.

Prints a table with MailGate/direct and MailGate/emailproxy and the issue's targets (met / missed / n/a), writes
JSON (schema "mailgate-bench/1", see README.md) and a PNG chart (benchchart.py, matplotlib from the venv).
Prints numbers; exits 0 whether or not targets are met (it is a measurement, not a test).
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402

log = bl.make_log("bench")
SCHEMA = "mailgate-bench/1"
PATHS = ("direct", "mailgate", "emailproxy")
KB, MB = 10 * 1024, 1024 * 1024

# id, protocol, title, unit, higher_is_better, target: (kind, value, text)
#   kinds: "min_ratio" mailgate/direct >= value; "max_ratio" mailgate/direct <= value;
#          "max_added_no_stall" mailgate <= direct + value and no stall through MailGate.
WORKLOADS = [
    {"id": "smtp-10KB-reuse", "protocol": "SMTP", "title": "SMTP 10 KB, one session", "unit": "msg/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "smtp-10KB-per-message", "protocol": "SMTP", "title": "SMTP 10 KB, session per message", "unit": "msg/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "smtp-1MB-reuse", "protocol": "SMTP", "title": "SMTP 1 MB, one session", "unit": "msg/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "smtp-1MB-per-message", "protocol": "SMTP", "title": "SMTP 1 MB, session per message", "unit": "msg/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "imap-fetch-100KiB", "protocol": "IMAP", "title": "IMAP FETCH 100 KiB messages", "unit": "MiB/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "imap-fetch-20MiB", "protocol": "IMAP", "title": "IMAP FETCH 20 MiB messages", "unit": "MiB/s",
     "higher_is_better": True, "target": ("min_ratio", 0.95, ">= 0.95 x direct")},
    {"id": "imap-noop", "protocol": "IMAP", "title": "IMAP NOOP round trip p50", "unit": "us",
     "higher_is_better": False, "target": ("max_added_no_stall", 30.0, "<= direct + 30 us, no stall")},
    {"id": "imap-login", "protocol": "IMAP", "title": "IMAP login p50", "unit": "ms",
     "higher_is_better": False, "target": ("max_ratio", 1.5, "<= 1.5 x direct")},
    {"id": "pop3-retr", "protocol": "POP3", "title": "POP3 STAT + RETR 100 KiB", "unit": "MiB/s",
     "higher_is_better": True, "target": ("min_ratio", 0.9, ">= 0.9 x direct")},
]
CPU_TARGET = 0.2  # gateway CPU <= 1/5 of emailproxy's for the same work
# --lean: the SMTP rows again with MailGate's recorder off (a second `serve`), to show what the defaults cost;
# direct and emailproxy run them again too, interleaved like every other row.
LEAN = {"sent_copy": "never", "lock_after_send": False}
LEAN_WORKLOADS = [dict(w, id=w["id"] + "-lean", title=w["title"] + " [MG: no sent copy, no lock]", mailgate="lean")
                  for w in WORKLOADS if w["protocol"] == "SMTP"]
ALL_WORKLOADS = WORKLOADS + LEAN_WORKLOADS


def workload_by_id(wid):
    return next(w for w in ALL_WORKLOADS if w["id"] == wid)

FULL = {"rounds": 5, "smtp_10KB_reuse": 200, "smtp_10KB_per": 50, "smtp_1MB_reuse": 20, "smtp_1MB_per": 10,
        "fetch_100KiB": 200, "fetch_20MiB": 5, "noops": 2000, "logins": 20, "pop3_messages": 50}
QUICK = {"rounds": 2, "smtp_10KB_reuse": 40, "smtp_10KB_per": 10, "smtp_1MB_reuse": 4, "smtp_1MB_per": 3,
         "fetch_100KiB": 40, "fetch_20MiB": 1, "noops": 500, "logins": 6, "pop3_messages": 20}


# ------------------------------------------------------------------ pure parts (unit-tested in test_bench_all.py)

def verdict(kind, goal, direct, mailgate, mailgate_stalls=None):
    """"met" / "missed" for one target, "n/a" when a side has no number."""
    if direct is None or mailgate is None:
        return "n/a"
    if kind == "min_ratio":
        return "met" if direct > 0 and mailgate / direct >= goal else "missed"
    if kind == "max_ratio":
        return "met" if direct > 0 and mailgate / direct <= goal else "missed"
    if kind == "max_added_no_stall":
        if mailgate_stalls is None:
            return "n/a"
        return "met" if mailgate <= direct + goal and mailgate_stalls == 0 else "missed"
    raise ValueError(f"unknown target kind {kind!r}")


def cpu_verdict(mailgate_cpu, emailproxy_cpu, goal=CPU_TARGET):
    """Gateway CPU <= goal x emailproxy's; "n/a" without both figures or when emailproxy used no measurable CPU."""
    if mailgate_cpu is None or emailproxy_cpu is None or emailproxy_cpu <= 0:
        return "n/a"
    return "met" if mailgate_cpu <= goal * emailproxy_cpu else "missed"


def summarize_runs(workload, runs):
    """One path's runs of one workload -> value (median of throughput runs; p50 of the pooled latencies for NOOP and
    login), median CPU seconds per run, peak RSS over the runs, and latency details where there are latencies."""
    good = [r for r in runs if r.get("value") is not None]
    cpu = bl.median([r.get("cpu_s") for r in runs])
    rss = max((r["peak_rss_kib"] for r in runs if r.get("peak_rss_kib") is not None), default=None)
    out = {"value": None, "cpu_s": cpu, "peak_rss_kib": rss, "runs": len(runs), "failed_runs": len(runs) - len(good),
           "errors": sorted({e for r in runs for e in r.get("errors", [])})}
    if workload["id"] in ("imap-noop", "imap-login"):
        lat = sorted(x for r in good for x in r.get("latencies", []))
        scale = 1e6 if workload["unit"] == "us" else 1e3
        if lat:
            out["value"] = bl.percentile(lat, 50) * scale
            out["p99"] = bl.percentile(lat, 99) * scale
            out["max"] = lat[-1] * scale
            out["samples"] = len(lat)
            out["stalls_10ms"] = bl.stall_count(lat)
    else:
        out["value"] = bl.median([r["value"] for r in good])
        out["round_values"] = [r["value"] for r in good]
    return out


def evaluate(workload, results):
    """Ratios and verdicts of one workload from its per-path summaries ({path: summarize_runs(...)})."""
    d = results.get("direct", {}).get("value")
    m = results.get("mailgate", {}).get("value")
    e = results.get("emailproxy", {}).get("value")
    kind, goal, text = workload["target"]
    mg_cpu = results.get("mailgate", {}).get("cpu_s")
    ep_cpu = results.get("emailproxy", {}).get("cpu_s")
    return {
        "ratios": {"mailgate_vs_direct": bl.ratio(m, d), "mailgate_vs_emailproxy": bl.ratio(m, e),
                   "emailproxy_vs_direct": bl.ratio(e, d)},
        "target": {"kind": kind, "value": goal, "text": text,
                   "verdict": verdict(kind, goal, d, m, results.get("mailgate", {}).get("stalls_10ms"))},
        "cpu_target": {"text": "MailGate CPU <= 1/5 x emailproxy", "mailgate_vs_emailproxy": bl.ratio(mg_cpu, ep_cpu),
                       "verdict": cpu_verdict(mg_cpu, ep_cpu)},
    }


def build_report(workload_results, params, paths, skipped, machine, started, finished):
    """The JSON document (schema mailgate-bench/1; README.md documents every key)."""
    workloads, counts = [], {"met": 0, "missed": 0, "n/a": 0}
    cpu_totals = {"mailgate": 0.0, "emailproxy": 0.0}
    cpu_complete = True
    for w in ALL_WORKLOADS:
        if w["id"] not in workload_results:
            continue
        results = workload_results[w["id"]]
        ev = evaluate(w, results)
        counts[ev["target"]["verdict"]] += 1
        counts[ev["cpu_target"]["verdict"]] += 1
        for name in cpu_totals:
            cpu = results.get(name, {}).get("cpu_s")
            if cpu is None:
                cpu_complete = False
            else:
                cpu_totals[name] += cpu
        workloads.append({"id": w["id"], "protocol": w["protocol"], "title": w["title"], "unit": w["unit"],
                          "higher_is_better": w["higher_is_better"], "results": results, **ev})
    total = {"mailgate_cpu_s": cpu_totals["mailgate"] if cpu_complete else None,
             "emailproxy_cpu_s": cpu_totals["emailproxy"] if cpu_complete else None}
    total["verdict"] = cpu_verdict(total["mailgate_cpu_s"], total["emailproxy_cpu_s"])
    return {"schema": SCHEMA, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
            "duration_s": round(finished - started, 1), "machine": machine, "params": params, "paths": paths,
            "skipped": skipped, "workloads": workloads, "cpu_total": total, "verdicts": counts}


def render_table(report):
    """The printed table: one row per workload, then the CPU total and the verdict counts."""
    header = ["workload", "unit", "direct", "MailGate", "emailproxy", "MG/direct", "MG/emailproxy", "target",
              "verdict", "MG CPU s", "EP CPU s", "CPU <= 1/5", "MG RSS MiB", "EP RSS MiB"]
    rows = []
    for w in report["workloads"]:
        r = w["results"]
        digits = 0 if w["unit"] == "us" else 1
        val = lambda name: bl.fmt(r.get(name, {}).get("value"), digits)
        ratio = lambda key: "-" if w["ratios"][key] is None else f"{w['ratios'][key]:.2f}x"
        rows.append([w["title"], w["unit"], val("direct"), val("mailgate"), val("emailproxy"),
                     ratio("mailgate_vs_direct"), ratio("mailgate_vs_emailproxy"), w["target"]["text"],
                     w["target"]["verdict"], bl.fmt(r.get("mailgate", {}).get("cpu_s"), 2),
                     bl.fmt(r.get("emailproxy", {}).get("cpu_s"), 2), w["cpu_target"]["verdict"],
                     bl.mib(r.get("mailgate", {}).get("peak_rss_kib")),
                     bl.mib(r.get("emailproxy", {}).get("peak_rss_kib"))])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    left = {0, 1, 7, 8, 11}
    line = lambda cells: "  ".join(c.ljust(w) if i in left else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]
    for w in report["workloads"]:
        if w["id"] == "imap-noop":
            for name in PATHS:
                s = w["results"].get(name)
                if s and s.get("value") is not None:
                    out.append(f"  NOOP {name}: p50 {s['value']:.0f} us, p99 {s['p99']:.0f} us, max {s['max'] / 1000:.1f} ms, "
                               f"{s['stalls_10ms']} of {s['samples']} >= 10 ms")
    t = report["cpu_total"]
    out.append(f"CPU over all workloads: MailGate {bl.fmt(t['mailgate_cpu_s'], 2)} s, emailproxy "
               f"{bl.fmt(t['emailproxy_cpu_s'], 2)} s (target MailGate <= 1/5: {t['verdict']})")
    v = report["verdicts"]
    out.append(f"targets: {v['met']} met, {v['missed']} missed, {v['n/a']} n/a")
    for name, reason in report["skipped"].items():
        out.append(f"skipped {name}: {reason}")
    return "\n".join(out)


# ------------------------------------------------------------------ paths and runners

class DirectPath:
    name, label = "direct", "direct (XOAUTH2, TLS end to end)"

    def __init__(self, env, token):
        self.endpoints = bl.direct_endpoints(env, token)

    def pid(self):
        return None

    def prepare(self):
        return None

    def stop(self):
        pass

    def cleanup(self):
        pass

    def describe(self):
        return {"label": self.label}


class ProxyPath:
    """MailGate or emailproxy: one long-lived process with a listener per protocol."""

    def __init__(self, owner, endpoints):
        self.owner, self.endpoints = owner, endpoints
        self.name, self.label = owner.name, owner.label

    def pid(self):
        return self.owner.pid()

    def prepare(self):
        return self.owner.prepare() or self.owner.start()

    def stop(self):
        self.owner.stop()

    def cleanup(self):
        self.owner.cleanup()

    def describe(self):
        return dict(self.owner.describe(), label=self.label)


def make_mailgate(env, args, variant=None):
    """The shipped defaults with all three listeners; variant "lean": SMTP only, the recorder off (LEAN)."""
    if variant == "lean":
        owner = bl.MailGate(env, args.mailgate_bin, name="mailgate-lean",
                            label='MailGate (sent_copy "never", no lock_after_send)', listen=("smtp",), **LEAN)
        return ProxyPath(owner, {"smtp": owner.endpoint("smtp")})
    owner = bl.MailGate(env, args.mailgate_bin, name="mailgate",
                        label='MailGate (sent_copy "auto", lock_after_send)', listen=("smtp", "imap", "pop3"),
                        sent_copy="auto", lock_after_send=True)
    return ProxyPath(owner, {kind: owner.endpoint(kind) for kind in ("smtp", "imap", "pop3")})


def make_emailproxy(env, args):
    owner = bl.EmailProxy(env, args.venv, sections=("SMTP", "IMAP", "POP"), label="emailproxy")
    return ProxyPath(owner, {"smtp": owner.endpoint("SMTP"), "imap": owner.endpoint("IMAP"),
                             "pop3": owner.endpoint("POP")})


class Run:
    """The data one run needs: sizes, seeded folders and messages, the stand-in (to drain Postfix between SMTP runs)."""

    def __init__(self, n, stand_in, budget):
        self.n, self.stand_in, self.budget = n, stand_in, budget
        self.folders, self.sets, self.pop3_expected = {}, {}, []

    def workload(self, wid, path):
        """Runs one workload once over one path; returns {value, errors, ...} (value None when it failed)."""
        ep = path.endpoints
        if wid.startswith("smtp-"):
            size = KB if "10KB" in wid else MB
            mode = "reuse" if wid.removesuffix("-lean").endswith("reuse") else "per-message"
            count = self.n[f"smtp_{'10KB' if size == KB else '1MB'}_{'reuse' if mode == 'reuse' else 'per'}"]
            self.stand_in.wait_queue_empty()
            raw = bl.smtp_run(ep["smtp"], size, count, mode, self.budget, path.name)
            value = raw["sent"] / raw["elapsed"] if raw["sent"] and raw["elapsed"] else None
            if raw["sent"] != count:
                value = None
            return {"value": value, "errors": raw["errors"], "sent": raw["sent"], "requested": count,
                    "p50_ms": (bl.percentile(sorted(raw["latencies"]), 50) or 0) * 1e3 if raw["latencies"] else None}
        if wid.startswith("imap-fetch-"):
            key = wid.removeprefix("imap-fetch-")
            res = bl.imap_fetch_all(ep["imap"], self.folders[key], self.sets[key])
            value = res["bytes"] / bl.MIB / res["seconds"] if res["ok"] and res["seconds"] > 0 else None
            return {"value": value, "errors": [] if res["ok"] else ["fetched bytes differ from the appended ones"]}
        if wid == "imap-noop":
            lat = bl.imap_noops(ep["imap"], self.n["noops"])
            return {"value": bl.percentile(sorted(lat), 50), "latencies": lat, "errors": []}
        if wid == "imap-login":
            lat = bl.imap_logins(ep["imap"], self.n["logins"])
            return {"value": bl.percentile(sorted(lat), 50), "latencies": lat, "errors": []}
        if wid == "pop3-retr":
            res = bl.pop3_session(ep["pop3"], self.pop3_expected)
            value = res["bytes"] / bl.MIB / res["seconds"] if res["ok"] and res["seconds"] > 0 else None
            return {"value": value, "login_ms": res["login_s"] * 1e3,
                    "errors": [] if res["ok"] else ["retrieved messages differ from the appended ones"]}
        raise ValueError(wid)


def seed(run, direct, wanted, log_):
    """APPENDs the FETCH sets into two fresh folders and the POP3 maildrop into alice's (empty) INBOX, directly.
    Returns {workload id: reason} for workloads that cannot run."""
    cannot = {}
    m = bl.imap_login(direct.endpoints["imap"])
    try:
        suffix = secrets.token_hex(4)
        for key, size, count in (("100KiB", 100 * bl.KIB, run.n["fetch_100KiB"]),
                                 ("20MiB", 20 * bl.MIB, run.n["fetch_20MiB"])):
            if f"imap-fetch-{key}" not in wanted:
                continue
            folder = f"bench-{key}-{suffix}"
            m.create(bl.imap_quote(folder))
            run.folders[key] = folder
            run.sets[key] = [bl.imap_body(size, i) for i in range(count)]
            for msg in run.sets[key]:
                m.append(bl.imap_quote(folder), None, None, msg)
        if "pop3-retr" in wanted:
            typ, data = m.select("INBOX")
            held = int(data[0])
            if held:
                cannot["pop3-retr"] = (f"alice's INBOX holds {held} messages; POP3 sees the whole INBOX, so the "
                                       "benchmark needs it empty (a fresh integration/up)")
            else:
                run.pop3_tag = secrets.token_hex(4)
                run.pop3_expected = [bl.pop3_body(100 * bl.KIB, i, run.pop3_tag) for i in range(run.n["pop3_messages"])]
                for msg in run.pop3_expected:
                    m.append("INBOX", None, None, msg)
    finally:
        m.logout()
    log_(f"seeded {len(run.sets.get('100KiB', []))} x 100 KiB, {len(run.sets.get('20MiB', []))} x 20 MiB, "
         f"{len(run.pop3_expected)} x 100 KiB in the INBOX")
    return cannot


def unseed(run, direct):
    m = bl.imap_login(direct.endpoints["imap"])
    try:
        for folder in run.folders.values():
            m.delete(bl.imap_quote(folder))
        if run.pop3_expected:
            m.select("INBOX")
            typ, data = m.uid("SEARCH", None, "SUBJECT", f"\"pop3 bench {run.pop3_tag}\"")
            uids = data[0].split()
            if uids:
                m.uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT", "(\\Deleted)")
                m.expunge()
    finally:
        m.logout()


def warm_up(path, imap=True):
    """One message, one IMAP login: proves each door works (and pays first-use costs) before anything counts."""
    ep = path.endpoints
    raw = bl.smtp_run(ep["smtp"], KB, 1, "reuse", 60, "warm-up")
    if raw["sent"] != 1:
        return "warm-up message failed: " + "; ".join(raw["errors"])
    if not imap:
        return None
    try:
        bl.imap_logins(ep["imap"], 1)
    except Exception as e:  # noqa: BLE001 - any failure of the door is a reason to skip the path
        return f"warm-up IMAP login failed: {type(e).__name__}: {e}"
    return None


def chart(report_path, png_path, venv):
    """Writes the PNG with benchchart.py in the venv (matplotlib); returns a line saying what happened."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        return f"PNG skipped: no venv at {venv} (the bench wrapper makes it)"
    done = subprocess.run([python, os.path.join(HERE, "benchchart.py"), report_path, png_path],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return "PNG skipped: " + (done.stderr.strip().splitlines() or ["benchchart.py failed"])[-1]
    return f"PNG: {png_path}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="One benchmark for SMTP, IMAP and POP3: direct vs MailGate vs "
                                                 "emailproxy, interleaved (loopback).")
    parser.add_argument("--quick", action="store_true", help="small counts, 2 rounds (30 s to 1.5 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 2)")
    parser.add_argument("--paths", default=",".join(PATHS), help="subset of direct,mailgate,emailproxy")
    parser.add_argument("--workloads", help="subset of workload ids (default: all; with --lean also the -lean ones)")
    parser.add_argument("--lean", action="store_true",
                        help='also the SMTP rows through a second MailGate with sent_copy = "never", '
                             'lock_after_send = false')
    parser.add_argument("--mailgate-bin", help="default: $MAILGATE_BIN, .build-release/release/mailgate, "
                                               ".build/release/mailgate, .build/debug/mailgate")
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv"), help="venv with emailproxy and matplotlib")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "bench-latest.json"))
    parser.add_argument("--png", default=os.path.join(HERE, "results", "bench-latest.png"))
    parser.add_argument("--budget", type=float, default=180, help="seconds per SMTP client run before it stops early")
    parser.add_argument("--keep-temp", action="store_true", help="keep the proxies' temp dirs (configs, logs)")
    args = parser.parse_args(argv)

    n = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        if not 1 <= args.rounds <= 50:
            parser.error("--rounds takes 1..50")
        n["rounds"] = args.rounds
    wanted_paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    default_ids = [w["id"] for w in (ALL_WORKLOADS if args.lean else WORKLOADS)]
    wanted = [w.strip() for w in args.workloads.split(",") if w.strip()] if args.workloads else default_ids
    if any(p not in PATHS for p in wanted_paths) or "direct" not in wanted_paths:
        parser.error("--paths takes a subset of direct,mailgate,emailproxy that includes direct")
    known = [w["id"] for w in ALL_WORKLOADS]
    if any(w not in known for w in wanted):
        parser.error("--workloads takes " + ",".join(known))
    if any(workload_by_id(w).get("mailgate") == "lean" for w in wanted) and not args.lean:
        parser.error("the -lean workloads need --lean")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    stand_in = bl.StandIn(bl.default_env_file(), prefix="bench")
    paths, skipped, runs = [], {}, {}
    run = None
    direct = None
    lean = None
    try:
        stand_in.ensure()
        env = stand_in.env
        direct = DirectPath(env, bl.oauth_tokens(env, bl.ALICE)["access_token"])
        for name in wanted_paths:
            path = direct if name == "direct" else make_mailgate(env, args) if name == "mailgate" else \
                make_emailproxy(env, args)
            reason = path.prepare() or warm_up(path)
            if reason:
                skipped[name] = reason
                log(f"{name}: skipped: {reason}")
                path.stop()
                if path is not direct and not args.keep_temp:
                    path.cleanup()
                continue
            paths.append(path)
        if args.lean and any(p.name == "mailgate" for p in paths):
            lean = make_mailgate(env, args, variant="lean")
            reason = lean.prepare() or warm_up(lean, imap=False)
            if reason:
                skipped["mailgate-lean"] = reason
                log(f"mailgate-lean: skipped: {reason}")
                lean.stop()
                lean = None
        run = Run(n, stand_in, args.budget)
        for wid, reason in seed(run, direct, wanted, log).items():
            skipped[wid] = reason
            wanted.remove(wid)
        for r in range(n["rounds"]):
            for wi, wid in enumerate(wanted):
                variant = workload_by_id(wid).get("mailgate")
                for path in bl.rotated(paths, r + wi):
                    if variant == "lean" and path.name == "mailgate":
                        if lean is None:
                            continue
                        serving = lean
                    else:
                        serving = path
                    with bl.Sampler(serving.pid()) as sample:
                        try:
                            res = run.workload(wid, serving)
                        except Exception as e:  # noqa: BLE001 - one failed run is reported, the others go on
                            res = {"value": None, "errors": [f"{type(e).__name__}: {e}"]}
                    res.update(cpu_s=sample.cpu_s, peak_rss_kib=sample.peak_rss_kib)
                    runs.setdefault(wid, {}).setdefault(path.name, []).append(res)  # lean counts as "mailgate"
                    if res["errors"]:
                        log(f"{wid} {path.name}: " + "; ".join(res["errors"]))
            log(f"round {r + 1}/{n['rounds']} done ({time.time() - started:.0f} s)")
    except KeyboardInterrupt:
        log("interrupted; stopping what this run started")
        raise
    finally:
        if run is not None and direct is not None:
            try:
                unseed(run, direct)
            except Exception as e:  # noqa: BLE001
                log(f"could not remove the seeded messages: {e}")
        for path in paths + ([lean] if lean else []):
            path.stop()
            if path is not direct and not args.keep_temp:
                path.cleanup()
        stand_in.stop()

    workload_results = {wid: {name: summarize_runs(workload_by_id(wid), by_path[name])
                              for name in PATHS if name in by_path} for wid, by_path in runs.items()}
    params = dict(n, quick=args.quick, paths=wanted_paths, workloads=wanted, budget_s=args.budget,
                  mailgate_config={"sent_copy": "auto", "lock_after_send": True},
                  mailgate_lean_config=LEAN if args.lean else None)
    ep = next((p for p in paths if p.name == "emailproxy"), None)
    described = {p.name: p.describe() for p in paths}
    if lean:
        described["mailgate-lean"] = lean.describe()
    if ep:
        described["emailproxy"]["version"] = ep.owner.version
    report = build_report(workload_results, params, described, skipped, bl.machine_info(), started, time.time())
    print()
    rounds = f"{n['rounds']} round{'s' if n['rounds'] != 1 else ''}"
    print(f"MailGate benchmark, loopback, {rounds} interleaved{' (--quick)' if args.quick else ''}; "
          f"{os.cpu_count()} CPUs, load {report['machine']['loadavg']}")
    if "mailgate" in described:
        print(f"MailGate: {described['mailgate']['binary']} (sent_copy \"auto\", lock_after_send = true)")
    if ep:
        print(f"emailproxy: {ep.owner.version}")
    print(render_table(report))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nJSON: {args.json}")
    print(chart(args.json, args.png, args.venv))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        sys.exit(130)
