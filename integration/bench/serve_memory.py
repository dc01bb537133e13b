#!/usr/bin/env python3
"""serve's memory (issue 9): RSS right after start (idle) and peak while relaying one 20 MiB message.

Runs `mailgate serve` with the shipped defaults (sent_copy = "auto", lock_after_send = true) against the running
stand-in, set up the way smtp_bench.py sets up its MailGate paths, and prints VmRSS split into anonymous
(private) and file-backed (shared libraries: Swift runtime, Foundation, OpenSSL) pages, VmHWM after the first
login (its scrypt check of the local password, N=2^15 r=8, needs 32 MiB for a moment) and after the 20 MiB message. Prints numbers; asserts nothing. Usage: serve_memory.py [--mailgate-bin PATH] [--mib 20]
"""

import argparse
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_bench as bench  # noqa: E402


def status(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                values[key] = int(rest.split()[0])
    return values


def show(label, values):
    mib = lambda key: f"{values.get(key, 0) / 1024:.1f}"
    print(f"{label:<34} VmRSS {mib('VmRSS'):>6} MiB  (anon {mib('RssAnon'):>5}, file {mib('RssFile'):>5})  "
          f"VmHWM {mib('VmHWM'):>6} MiB  threads {values.get('Threads')}")


def top_mappings(pid, count=6):
    """The mappings holding the most resident memory: [(KiB, name)]."""
    sizes, name = {}, "?"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else "[anon]"
            elif head and head[0] == "Rss:":
                sizes[name] = sizes.get(name, 0) + int(head[1])
    return sorted(((kib, n) for n, kib in sizes.items()), reverse=True)[:count]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailgate-bin")
    parser.add_argument("--mib", type=int, default=20)
    args = parser.parse_args()
    env_file = os.environ.get("MAILGATE_STANDIN_ENV", os.path.join(bench.INTEGRATION, "run", "env"))
    env = bench.load_env(env_file)
    gate = bench.MailGate(env, argparse.Namespace(mailgate_bin=args.mailgate_bin), True, sent_copy="auto")
    try:
        problem = gate.prepare() or gate.start()
        if problem:
            print("serve_memory: " + problem, file=sys.stderr)
            return 1
        time.sleep(2)
        show("idle, 2 s after start", status(gate.pid()))
        for kib, name in top_mappings(gate.pid()):
            print(f"    {kib / 1024:6.1f} MiB  {name}")
        body = b"".join(b"%075d\r\n" % i for i in range(args.mib * 1024 * 1024 // 77))
        message = (b"From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: memory\r\n\r\n" + body)
        with smtplib.SMTP(bench.HOST, gate.port, timeout=120) as client:
            client.ehlo("memory.contoso.test")
            client.login(bench.ALICE, gate.password)
            show("after the first login (scrypt)", status(gate.pid()))
            client.sendmail(bench.ALICE, [bench.BOB], message)
        show(f"after relaying {len(message) / 2**20:.1f} MiB", status(gate.pid()))
        return 0
    finally:
        gate.stop()
        gate.cleanup()


if __name__ == "__main__":
    sys.exit(main())
