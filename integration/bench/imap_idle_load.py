#!/usr/bin/env python3
"""Many IMAP sessions in IDLE through `mailgate serve`, plus concurrent SMTP submitters (issue 8 point 7/targets,
issue 13 point 2). Python standard library only; prints one JSON object (the last line of stdout).

Steps, each measured on serve's /proc/PID (RSS, threads, open descriptors):
  1. before: serve as it is (warm: one session was opened and closed first, so lazily built state is not counted)
  2. open --sessions sessions (LOGIN, SELECT INBOX, IDLE until `+`), at most --window logging in at once; then
     `idle`: RSS, threads, descriptors with all of them idling -> KiB per session pair
  3. --submitters SMTP clients (smtplib, AUTH with the local password, through serve) each send --messages
     messages to --recipient, all at once, while the sessions idle; a control session counts them in that INBOX
     (SEARCH by the run's token, Message-IDs distinct); with a --recipient other than --user, one more message
     then goes to --user (every delivery to the IDLE mailbox costs Dovecot a sync in each of the N sessions)
  4. every idling session must see `* N EXISTS` with N at least the INBOX's final count (the IDLE wake-up), then
     DONE -> tagged OK, NOOP -> tagged OK, LOGOUT
  5. after: serve once every session is gone (descriptors back, threads bounded, RSS growth)

Used by Tests/GatewayTests/IMAP/IMAPIdleLoadEndToEndTests.swift (N = 1,000) and by integration/bench/imap-idle
(N up to what the machine allows; see the README's Performance section).
"""
import argparse
import errno
import json
import os
import selectors
import smtplib
import socket
import sys
import threading
import time
import uuid

HOST = "127.0.0.1"


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def snapshot(pid):
    if not pid:
        return None
    sockets, files = 0, []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            files.append(target)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_kib": proc_status(pid, "VmRSS"), "threads": proc_status(pid, "Threads"),
            "fds": sockets + len(files), "sockets": sockets, "other_fds": sorted(files), "cpu_s": cpu}


def settle(pid, seconds):
    """Waits `seconds`, then a snapshot (Dispatch threads and freed memory settle)."""
    time.sleep(seconds)
    return snapshot(pid)


class Session:
    __slots__ = ("sock", "state", "buf", "exists", "error", "opened", "exists_at")

    def __init__(self, sock):
        self.sock, self.state, self.buf, self.exists, self.error = sock, "connecting", b"", -1, None
        self.opened = time.monotonic()
        self.exists_at = None


def run_sessions(args, log):
    sel = selectors.DefaultSelector()
    sessions = []
    counts = {"idling": 0, "failed": 0, "done": 0}
    login = b'L LOGIN "%s" "%s"\r\n' % (args.user.encode(), args.password.encode())
    state = {"phase": "setup", "target": None}

    def fail(s, why):
        if s.state not in ("failed", "closed"):
            if s.state == "idling":
                counts["idling"] -= 1
            s.state, s.error = "failed", why
            counts["failed"] += 1
            try:
                sel.unregister(s.sock)
            except (KeyError, ValueError):
                pass
            s.sock.close()

    def send(s, data):
        try:
            s.sock.send(data)  # tiny commands: the socket buffer always takes them whole
        except OSError as e:
            fail(s, f"send: {e}")

    def handle_line(s, line):
        if line.startswith(b"* ") and line.endswith(b" EXISTS"):
            try:
                s.exists = max(s.exists, int(line.split()[1]))
                s.exists_at = time.monotonic()
            except ValueError:
                pass
            return
        if line.startswith(b"* BYE") and s.state != "logout":
            fail(s, line.decode("latin-1"))
            return
        st = s.state
        if st == "greeting":
            if not line.startswith(b"* OK"):
                fail(s, "greeting: " + line.decode("latin-1"))
                return
            send(s, login)
            s.state = "login"
        elif st == "login" and line.startswith(b"L "):
            if not line.startswith(b"L OK"):
                fail(s, "login: " + line.decode("latin-1"))
                return
            send(s, b"S SELECT INBOX\r\n")
            s.state = "select"
        elif st == "select" and line.startswith(b"S "):
            if not line.startswith(b"S OK"):
                fail(s, "select: " + line.decode("latin-1"))
                return
            send(s, b"I IDLE\r\n")
            s.state = "idle"
        elif st == "idle":
            if line.startswith(b"+"):
                s.state = "idling"
                counts["idling"] += 1
            elif line.startswith(b"I "):
                fail(s, "idle: " + line.decode("latin-1"))
        elif st == "done" and line.startswith(b"I "):
            if not line.startswith(b"I OK"):
                fail(s, "done: " + line.decode("latin-1"))
                return
            send(s, b"N NOOP\r\n")
            s.state = "noop"
        elif st == "noop" and line.startswith(b"N "):
            if not line.startswith(b"N OK"):
                fail(s, "noop: " + line.decode("latin-1"))
                return
            send(s, b"O LOGOUT\r\n")
            s.state = "logout"
        elif st == "logout" and line.startswith(b"O "):
            s.state = "closed"
            counts["done"] += 1
            sel.unregister(s.sock)
            s.sock.close()

    def readable(s):
        try:
            data = s.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(s, f"recv: {e}")
            return
        if not data:
            if s.state != "closed":
                fail(s, f"closed by the gateway in state {s.state}")
            return
        s.buf += data
        while s.state not in ("failed", "closed"):
            i = s.buf.find(b"\r\n")
            if i < 0:
                if len(s.buf) > 100_000:
                    fail(s, "line over 100 KB")
                break
            line, s.buf = s.buf[:i], s.buf[i + 2:]
            handle_line(s, line)

    def event(key, mask):
        s = key.data
        if s.state == "connecting":
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail(s, f"connect: {os.strerror(err)}")
                return
            s.state = "greeting"
            sel.modify(s.sock, selectors.EVENT_READ, s)
            return
        readable(s)

    def open_one():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        s = Session(sock)
        sessions.append(s)
        rc = sock.connect_ex((HOST, args.imap_port))
        if rc not in (0, errno.EINPROGRESS):
            fail(s, f"connect: {os.strerror(rc)}")
            return
        sel.register(sock, selectors.EVENT_WRITE, s)

    def in_setup():
        return sum(1 for s in sessions[-args.window * 2:] if s.state in ("connecting", "greeting", "login", "select", "idle"))

    def pump(until, deadline):
        while not until() and time.monotonic() < deadline:
            for key, mask in sel.select(timeout=0.5):
                event(key, mask)

    # 2. open the sessions, at most `window` in set-up at once
    t0 = time.monotonic()
    deadline = t0 + args.setup_timeout
    setting_up = 0
    while len(sessions) < args.sessions and time.monotonic() < deadline:
        setting_up = in_setup()
        for _ in range(max(0, min(args.window - setting_up, args.sessions - len(sessions)))):
            open_one()
        for key, mask in sel.select(timeout=0.2):
            event(key, mask)
    pump(lambda: counts["idling"] + counts["failed"] >= args.sessions, deadline)
    setup_seconds = time.monotonic() - t0
    log(f"{counts['idling']} of {args.sessions} idling after {setup_seconds:.1f} s ({counts['failed']} failed)")
    return sel, sessions, counts, setup_seconds, pump, fail, send


def submit(args, token, log):
    """`submitters` threads, each one SMTP session through serve sending `messages` messages; returns the results."""
    results = []
    lock = threading.Lock()
    start = threading.Barrier(args.submitters)

    def worker(k):
        sent, errors = 0, []
        try:
            start.wait(timeout=60)
            with smtplib.SMTP(HOST, args.smtp_port, timeout=120) as smtp:
                smtp.ehlo("load.test")
                smtp.login(args.submitter, args.password)
                for j in range(args.messages):
                    mid = f"<idle-load-{token}-{k}-{j}@contoso.test>"
                    body = (f"From: <{args.submitter}>\r\nTo: <{args.recipient}>\r\nSubject: idle-load {token} {k} {j}\r\n"
                            f"Message-ID: {mid}\r\n\r\nmessage {j} of submitter {k}\r\n")
                    refused = smtp.sendmail(args.submitter, [args.recipient], body.encode())
                    if refused:
                        errors.append(f"refused {refused}")
                    else:
                        sent += 1
        except Exception as e:  # noqa: BLE001 - reported in the JSON
            errors.append(f"{type(e).__name__}: {e}")
        with lock:
            results.append({"sent": sent, "errors": errors})

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(args.submitters)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.submit_timeout)
    elapsed = time.monotonic() - t0
    sent = sum(r["sent"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    log(f"{sent} messages sent by {args.submitters} submitters in {elapsed:.1f} s, {len(errors)} errors")
    return {"sent": sent, "errors": errors[:10], "error_count": len(errors), "seconds": elapsed,
            "finished": len(results)}


class Control:
    """A plain blocking IMAP session through serve for counting (imaplib would do; this keeps it one file)."""

    def __init__(self, args, user):
        self.s = socket.create_connection((HOST, args.imap_port), timeout=60)
        self.f = self.s.makefile("rb")
        self.n = 0
        self.f.readline()
        status, _ = self.command(b'LOGIN "%s" "%s"' % (user.encode(), args.password.encode()))
        if not status.startswith(b"OK"):
            raise RuntimeError("control login: %r" % status)

    def command(self, text):
        self.n += 1
        tag = b"C%d" % self.n
        self.s.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("control session closed")
            line = line.rstrip(b"\r\n")
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:], lines
            lines.append(line)

    def count(self, token):
        """(messages of this run in the INBOX, distinct Message-IDs among them, the INBOX's EXISTS)."""
        status, lines = self.command(b"EXAMINE INBOX")
        exists = max([int(l.split()[1]) for l in lines if l.endswith(b" EXISTS")] or [0])
        status, lines = self.command(b'UID SEARCH SUBJECT "idle-load %s"' % token.encode())
        uids = [u for l in lines if l.startswith(b"* SEARCH") for u in l.split()[2:]]
        distinct = 0
        if uids:
            status, lines = self.command(b"UID FETCH %s (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" % b",".join(uids))
            ids = [l.strip().lower() for l in lines if l.lower().startswith(b"message-id:")]
            distinct = len(set(ids))
        return len(uids), distinct, exists

    def close(self):
        try:
            self.command(b"LOGOUT")
        except (OSError, RuntimeError):
            pass
        self.s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imap-port", type=int, required=True)
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("--user", required=True, help="the mailbox whose INBOX the sessions IDLE on")
    p.add_argument("--submitter", required=True, help="the account the SMTP clients log in as")
    p.add_argument("--recipient", help="where the submitters' messages go (default: --user, waking every session per "
                   "message; another mailbox: one wake-up message to --user once they are delivered)")
    p.add_argument("--password", required=True, help="the local password (the same for both accounts)")
    p.add_argument("--pid", type=int, default=0, help="serve's process id, for /proc")
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--window", type=int, default=100, help="sessions logging in at once")
    p.add_argument("--submitters", type=int, default=100)
    p.add_argument("--messages", type=int, default=1, help="messages per submitter")
    p.add_argument("--setup-timeout", type=float, default=300)
    p.add_argument("--submit-timeout", type=float, default=120)
    p.add_argument("--wake-timeout", type=float, default=60)
    p.add_argument("--after-wait", type=float, default=8,
                   help="seconds between the last session's end and the `after` snapshot (serve trims every 5 s)")
    p.add_argument("--hold", type=float, default=0, help="keep the sessions idling this long before going on")
    p.add_argument("--diagnose-trim", action="store_true", help="after `idle`, malloc_trim(0) in serve via gdb")
    args = p.parse_args()
    args.recipient = args.recipient or args.user

    def log(text):
        print(f"imap_idle_load: {text}", file=sys.stderr, flush=True)

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = {"sessions": args.sessions, "submitters": args.submitters, "messages_per_submitter": args.messages,
           "client_nofile": hard}
    token = uuid.uuid4().hex[:12]

    # 1. warm-up: one IMAP session and one message (lazily opened files and caches are not counted), then before
    warm = Control(args, args.user)
    warm.close()
    with smtplib.SMTP(HOST, args.smtp_port, timeout=60) as smtp:
        smtp.login(args.submitter, args.password)
        smtp.sendmail(args.submitter, [args.user], b"Subject: idle-load warm-up\r\n\r\nwarm-up\r\n")
    out["before"] = settle(args.pid, 1.0)

    sel, sessions, counts, setup_seconds, pump, fail, send = run_sessions(args, log)
    out["setup_seconds"] = round(setup_seconds, 2)
    out["idling"] = counts["idling"]
    out["setup_failures"] = sorted({s.error for s in sessions if s.error})[:10]
    out["idle"] = settle(args.pid, 2.0)
    if out["before"] and out["idle"] and counts["idling"]:
        out["kib_per_pair"] = round((out["idle"]["rss_kib"] - out["before"]["rss_kib"]) / counts["idling"], 2)

    if args.hold:
        log(f"holding the sessions in IDLE for {args.hold} s")
        time.sleep(args.hold)
    if args.diagnose_trim and args.pid:
        # Diagnosis only: how much of the idle RSS is freed heap that glibc keeps (malloc_trim through gdb).
        import subprocess
        subprocess.run(["gdb", "-p", str(args.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                       capture_output=True, timeout=60)
        out["idle_after_malloc_trim"] = settle(args.pid, 1.0)
        out["kib_per_pair_after_malloc_trim"] = round(
            (out["idle_after_malloc_trim"]["rss_kib"] - out["before"]["rss_kib"]) / max(1, counts["idling"]), 2)

    # 3. submitters (their threads run while this thread keeps reading the sessions)
    submitted = {}
    submitter = threading.Thread(target=lambda: submitted.update(submit(args, token, log)), daemon=True)
    submitter.start()
    peak_threads = 0
    while submitter.is_alive():
        pump(lambda: not submitter.is_alive(), time.monotonic() + 0.5)
        if args.pid:
            peak_threads = max(peak_threads, proc_status(args.pid, "Threads") or 0)
    out["submit"] = submitted
    expected = args.submitters * args.messages

    control = Control(args, args.recipient)
    t0 = time.monotonic()
    found, distinct, exists = control.count(token)
    while found < expected and time.monotonic() - t0 < args.wake_timeout:
        pump(lambda: False, time.monotonic() + 0.5)
        found, distinct, exists = control.count(token)
    out["delivered"], out["distinct_message_ids"], out["recipient_exists"] = found, distinct, exists
    out["delivery_seconds"] = round(time.monotonic() - t0, 2)
    control.close()

    # the wake-up: when the submitters' messages went to another mailbox, one more message to the IDLE user
    if args.recipient.lower() != args.user.lower():
        wake_sent = time.monotonic()
        with smtplib.SMTP(HOST, args.smtp_port, timeout=60) as smtp:
            smtp.login(args.submitter, args.password)
            smtp.sendmail(args.submitter, [args.user],
                          f"Subject: idle-load {token} wake-up\r\nMessage-ID: <idle-load-{token}-wake@contoso.test>"
                          f"\r\n\r\nwake up\r\n".encode())
        control = Control(args, args.user)
        t1 = time.monotonic()
        woke, _, exists = control.count(token)
        while woke < 1 and time.monotonic() - t1 < args.wake_timeout:
            pump(lambda: False, time.monotonic() + 0.3)
            woke, _, exists = control.count(token)
        out["wake_delivered_s"] = round(time.monotonic() - wake_sent, 3)
        control.close()
    out["inbox_exists"] = exists

    # 4. every idling session sees the INBOX's final count
    t0 = time.monotonic()
    idling = [s for s in sessions if s.state == "idling"]
    pump(lambda: all(s.exists >= exists for s in idling if s.state == "idling"), t0 + args.wake_timeout)
    woken = sum(1 for s in idling if s.state == "idling" and s.exists >= exists)
    if args.recipient.lower() != args.user.lower():
        # how long after the wake-up message was sent each session saw it (the last EXISTS it got)
        lags = sorted(s.exists_at - wake_sent for s in idling if s.exists >= exists and s.exists_at)
        if lags:
            out["wake_lag_s"] = {"p50": round(lags[len(lags) // 2], 3), "p90": round(lags[len(lags) * 9 // 10], 3),
                                 "max": round(lags[-1], 3)}
    out["woken"], out["wake_seconds"] = woken, round(time.monotonic() - t0, 2)
    if args.pid:
        peak_threads = max(peak_threads, proc_status(args.pid, "Threads") or 0)
    out["peak_threads"] = peak_threads

    for s in idling:
        if s.state == "idling":
            s.state = "done"
            send(s, b"DONE\r\n")
    pump(lambda: all(s.state in ("closed", "failed") for s in sessions), time.monotonic() + args.wake_timeout)
    out["answered"] = counts["done"]
    out["failed"] = counts["failed"]
    out["failures"] = sorted({s.error for s in sessions if s.error})[:10]
    for s in sessions:
        if s.state not in ("closed", "failed"):
            s.sock.close()
    out["after"] = settle(args.pid, args.after_wait)
    if args.pid:
        out["sockets"] = {k: out[k]["sockets"] for k in ("before", "idle", "after")}
        out["serve_cpu_s"] = round(out["after"]["cpu_s"] - out["before"]["cpu_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
