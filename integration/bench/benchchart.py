#!/usr/bin/env python3
"""Draws the PNG of a `bench` JSON report (schema mailgate-bench/1): left, each workload relative to direct (higher
is better: throughput / direct, or direct / latency) for MailGate and emailproxy with the target marked; right, CPU
seconds per workload of the two proxies. Runs in the bench venv (matplotlib from PyPI); exits 3 without it."""

import json
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    print(f"matplotlib is not installed in this venv ({e}); pip install matplotlib", file=sys.stderr)
    sys.exit(3)


def relative(w, name):
    """Relative to direct, oriented so that higher is better."""
    d = w["results"].get("direct", {}).get("value")
    v = w["results"].get(name, {}).get("value")
    if not d or not v:
        return 0.0
    return v / d if w["higher_is_better"] else d / v


def target_line(w):
    kind, goal = w["target"]["kind"], w["target"]["value"]
    if kind == "min_ratio":
        return goal
    if kind == "max_ratio":
        return 1 / goal
    d = w["results"].get("direct", {}).get("value")
    return d / (d + goal) if d else None  # max_added: direct / (direct + allowance)


def main(src, dst):
    with open(src) as f:
        report = json.load(f)
    if report.get("schema") != "mailgate-bench/1":
        print(f"{src}: not a mailgate-bench/1 report", file=sys.stderr)
        return 2
    ws = report["workloads"]
    labels = [w["title"] for w in ws]
    ys = range(len(ws))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.6 * len(ws) + 2.5), sharey=True)
    h = 0.38
    left.barh([y - h / 2 for y in ys], [relative(w, "mailgate") for w in ws], h, label="MailGate", color="#1f77b4")
    left.barh([y + h / 2 for y in ys], [relative(w, "emailproxy") for w in ws], h, label="emailproxy",
              color="#ff7f0e")
    for y, w in zip(ys, ws):
        t = target_line(w)
        if t:
            left.plot([t, t], [y - 0.45, y + 0.45], color="black", linewidth=1.5)
            left.text(t + 0.01, y - 0.3, w["target"]["verdict"], va="center", fontsize=7)
    left.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    left.set_yticks(list(ys))
    left.set_yticklabels(labels)
    left.invert_yaxis()
    left.set_xlabel("relative to direct (higher is better; black bar = target)")
    left.legend(loc="lower right")
    cpu = lambda w, n: w["results"].get(n, {}).get("cpu_s") or 0.0
    right.barh([y - h / 2 for y in ys], [cpu(w, "mailgate") for w in ws], h, label="MailGate", color="#1f77b4")
    right.barh([y + h / 2 for y in ys], [cpu(w, "emailproxy") for w in ws], h, label="emailproxy", color="#ff7f0e")
    right.set_xlabel("CPU seconds per run (median)")
    m = report["machine"]
    fig.suptitle(f"MailGate benchmark {report['generated_at']} - {report['params']['rounds']} rounds"
                 f"{' (quick)' if report['params'].get('quick') else ''}, {m.get('nproc')} CPUs, load {m.get('loadavg')}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: benchchart.py REPORT.json OUT.png", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
