#!/usr/bin/env python3
"""Shared scaffolding of MailGate's benchmarks (integration/bench): stand-in, tokens, emailproxy, `mailgate serve`,
/proc CPU + RSS sampling, the SMTP / IMAP / POP3 client workloads and the pure statistics they report.

Used by `bench` (all protocols in one run) and by the three per-protocol harnesses (smtp_bench.py, imap_bench.py,
pop3_bench.py). Only the Python standard library is imported here; emailproxy and its `cryptography` live in the
venv the wrappers make, and `python benchlib.py --seed-emailproxy` runs in that venv to write emailproxy's token
cache. Everything talks to 127.0.0.1 only. Processes are stopped by their own pid, never by name.
"""

import base64
import email.utils
import hashlib
import http.client
import imaplib
import json
import os
import platform
import poplib
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
REPO = os.path.dirname(INTEGRATION)
HOST = "127.0.0.1"
ALICE, BOB = "alice@contoso.test", "bob@contoso.test"
KIB, MIB = 1024, 1024 * 1024
EHLO_NAME = "bench.contoso.test"
SMTP_TIMEOUT = 60  # seconds for any single SMTP socket operation
STALL_S = 0.010    # a round trip at or above this counts as a stall


def make_log(prefix):
    def log(*parts):
        print(prefix + ":", *parts, file=sys.stderr, flush=True)
    return log


log = make_log("bench")


# ------------------------------------------------------------------ pure statistics (unit-tested)

def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-p * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values):
    """Upper median of the values that are not None (None when there are none)."""
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def ratio(a, b):
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def stall_count(latencies_s, threshold_s=STALL_S):
    """How many round trips took at least threshold_s seconds."""
    return sum(1 for x in latencies_s if x >= threshold_s)


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def rotated(items, k):
    """items rotated left by k: round r of workload w runs the paths in rotated(paths, r + w), so no path is
    always first (or last) and drift of the machine hits every path alike."""
    items = list(items)
    if not items:
        return items
    k %= len(items)
    return items[k:] + items[:k]


# ------------------------------------------------------------------ stand-in

def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value.strip('"')
    return env


def port_open(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port, seconds, proc=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(port):
            return True
        time.sleep(0.1)
    return False


def standin_healthy(env):
    try:
        ctx = ssl.create_default_context(cafile=env["MAILGATE_STANDIN_CA_FILE"])
        with urllib.request.urlopen(env["MAILGATE_STANDIN_CONTROL_URL"] + "/health", context=ctx, timeout=5) as r:
            ok = json.load(r).get("ok") is True
        return ok and port_open(int(env["MAILGATE_STANDIN_SUBMISSION_PORT"]))
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return False


def default_env_file():
    return os.environ.get("MAILGATE_STANDIN_ENV", os.path.join(INTEGRATION, "run", "env"))


class StandIn:
    """Finds a running stand-in or starts integration/up (on $MAILGATE_STANDIN_PORT_BASE, default 24000); stops it
    at the end only if it started it."""

    def __init__(self, env_file=None, prefix="bench"):
        self.env_file = env_file or default_env_file()
        self.started = False
        self.env = None
        self.prefix = prefix

    def ensure(self):
        log = make_log(self.prefix)
        if os.path.exists(self.env_file):
            env = load_env(self.env_file)
            if standin_healthy(env):
                self.env = env
                log("using the running stand-in from", self.env_file)
                return
        base = int(os.environ.get("MAILGATE_STANDIN_PORT_BASE", "24000"))
        if port_open(base + 587) or port_open(base + 443):
            raise SystemExit(f"{self.prefix}: ports {base + 587}/{base + 443} are held by a stand-in whose env file "
                             f"is not {self.env_file}; set MAILGATE_STANDIN_ENV to that env file or stop it.")
        if os.geteuid() != 0:
            raise SystemExit(f"{self.prefix}: the stand-in is not running and integration/up needs root; "
                             "run `sudo integration/up` first.")
        log(f"starting the stand-in (integration/up, port base {base})")
        up = subprocess.run([os.path.join(INTEGRATION, "up")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=180)
        if up.returncode != 0:
            raise SystemExit(f"{self.prefix}: integration/up failed:\n" + up.stderr[-2000:])
        self.started = True
        self.env_file = up.stdout.strip().splitlines()[-1]
        self.env = load_env(self.env_file)

    def stop(self):
        if self.started:
            make_log(self.prefix)("stopping the stand-in this run started (integration/down)")
            subprocess.run([os.path.join(INTEGRATION, "down")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=120)
            self.started = False

    def wait_queue_empty(self, seconds=120):
        """Waits (bounded) until Postfix has delivered everything, so one run's deliveries don't load the next."""
        queue = os.path.join(self.env["MAILGATE_STANDIN_RUN_DIR"], "postfix", "queue")
        if not os.path.isdir(queue):
            return True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pending = 0
            for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
                for _, _, files in os.walk(os.path.join(queue, sub)):
                    pending += len(files)
            if pending == 0:
                return True
            time.sleep(0.2)
        make_log(self.prefix)("warning: the Postfix queue did not drain within", seconds, "s")
        return False


def oauth_tokens(env, user, redirect="http://localhost:53682/callback"):
    """Authorization code + PKCE with login_hint (the stand-in signs the user in at once); returns the token JSON."""
    ctx = ssl.create_default_context(cafile=env["MAILGATE_STANDIN_CA_FILE"])
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_hex(8)
    params = {"client_id": env["MAILGATE_STANDIN_CLIENT_ID"], "response_type": "code", "redirect_uri": redirect,
              "scope": env["MAILGATE_STANDIN_SCOPES"], "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256", "login_hint": user}
    authorize = urllib.parse.urlsplit(env["MAILGATE_STANDIN_AUTHORIZE_URL"])
    conn = http.client.HTTPSConnection(authorize.hostname, authorize.port, context=ctx, timeout=10)
    conn.request("GET", authorize.path + "?" + urllib.parse.urlencode(params))
    resp = conn.getresponse()
    resp.read()
    location = resp.getheader("Location") or ""
    conn.close()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if resp.status != 302 or query.get("state") != [state] or "code" not in query:
        raise SystemExit(f"bench: the stand-in's authorize endpoint answered {resp.status} {location!r}")
    body = urllib.parse.urlencode({"client_id": env["MAILGATE_STANDIN_CLIENT_ID"], "grant_type": "authorization_code",
                                   "code": query["code"][0], "redirect_uri": redirect,
                                   "code_verifier": verifier}).encode()
    try:
        with urllib.request.urlopen(env["MAILGATE_STANDIN_TOKEN_URL"], body, context=ctx, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"bench: the token endpoint refused the code: {e.code} {e.read()[:300]!r}")


# ------------------------------------------------------------------ process measurements

def proc_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Sampler:
    """CPU seconds (user + system, from /proc/<pid>/stat) of one process over a block, and its peak VmRSS sampled
    every `interval` seconds by a thread (VmHWM is a lifetime peak, so it cannot give a per-workload figure).
    Without a pid (the direct path) the thread still wakes and reads a /proc file at the same rate, results
    discarded, so the client in this process sees the same sampling cost on every path."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval = pid, interval
        self.cpu_s = None
        self.peak_rss_kib = None
        self._stop = threading.Event()
        self._thread = None
        self._cpu0 = None

    def _sample(self):
        rss = proc_status_kib(self.pid, "VmRSS")
        if rss is not None and (self.peak_rss_kib is None or rss > self.peak_rss_kib):
            self.peak_rss_kib = rss

    def _run(self):
        while not self._stop.wait(self.interval):
            if self.pid:
                self._sample()
            else:
                proc_status_kib("self", "VmRSS")  # the same work, thrown away

    def __enter__(self):
        if self.pid:
            self._cpu0 = proc_cpu_s(self.pid)
            self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.pid:
            self._sample()
            cpu1 = proc_cpu_s(self.pid)
            if self._cpu0 is not None and cpu1 is not None:
                self.cpu_s = cpu1 - self._cpu0
        return False


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def stop_process(proc, name):
    """Stops one process this harness started, by its pid: SIGTERM, then SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) ignored SIGTERM; killing it")
        proc.kill()
        proc.wait(timeout=10)


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def machine_info():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"nproc": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "python": platform.python_version(), "python_implementation": platform.python_implementation(),
            "openssl": ssl.OPENSSL_VERSION, "kernel": platform.release(), "platform": platform.platform(),
            "loadavg": load}


# ------------------------------------------------------------------ endpoints: how a client reaches a server

class Endpoint:
    """One protocol's door of one path: port, TLS (implicit / STARTTLS / none) and credentials (an XOAUTH2 token
    for direct, else alice's local password)."""

    def __init__(self, port, tls=False, starttls=False, ca_file=None, token=None, password=None, user=ALICE):
        self.port, self.tls, self.starttls, self.ca_file = port, tls, starttls, ca_file
        self.token, self.password, self.user = token, password, user
        self.ctx = ssl.create_default_context(cafile=ca_file) if (tls or starttls) else None

    def xoauth2(self):
        return f"user={self.user}\x01auth=Bearer {self.token}\x01\x01"


# ------------------------------------------------------------------ SMTP workload

def message_factory(size):
    """Returns f(seq, tag) -> bytes of exactly `size` bytes: RFC 5322 headers + 76-column base64-like body."""
    raw = hashlib.shake_256(b"mailgate-bench-%d" % size).digest(size)
    text = base64.b64encode(raw)
    pool = b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))

    def make(seq, tag):
        header = (f"From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: bench {tag} {size} #{seq}\r\n"
                  f"Message-ID: {email.utils.make_msgid(domain='contoso.test')}\r\n"
                  f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\n"
                  f"Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
        body_len = size - len(header)
        body = pool[:body_len - 2]
        if body.endswith(b"\r"):
            body = body[:-1] + b"A"
        return header + body + b"\r\n"

    return make


def smtp_connect(ep):
    s = smtplib.SMTP(HOST, ep.port, local_hostname=EHLO_NAME, timeout=SMTP_TIMEOUT)
    s.ehlo()
    if ep.starttls:
        s.starttls(context=ep.ctx)
        s.ehlo()
    if ep.token is not None:
        code, text = s.docmd("AUTH", "XOAUTH2 " + base64.b64encode(ep.xoauth2().encode()).decode())
        if code == 334:  # error challenge: an empty line fetches the final 535
            code, text = s.docmd("")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, text)
    else:
        s.user, s.password = ep.user, ep.password
        s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
    return s


def smtp_run(ep, size, count, mode, budget, tag):
    """Sends `count` messages of `size` bytes alice -> bob, in one session (mode "reuse") or a new session per
    message ("per-message"); bounded by count and by `budget` seconds. Messages are built before their timer."""
    make = message_factory(size)
    latencies, errors = [], []
    setup = None
    deadline = time.monotonic() + budget
    started = time.perf_counter()
    sent = 0
    try:
        if mode == "reuse":
            t0 = time.perf_counter()
            s = smtp_connect(ep)
            setup = time.perf_counter() - t0
            for seq in range(count):
                if time.monotonic() > deadline:
                    errors.append("time budget reached")
                    break
                msg = make(seq, tag)
                t0 = time.perf_counter()
                s.sendmail(ep.user, [BOB], msg)
                latencies.append(time.perf_counter() - t0)
                sent += 1
            s.quit()
        else:
            for seq in range(count):
                if time.monotonic() > deadline:
                    errors.append("time budget reached")
                    break
                msg = make(seq, tag)
                t0 = time.perf_counter()
                s = smtp_connect(ep)
                s.sendmail(ep.user, [BOB], msg)
                s.quit()
                latencies.append(time.perf_counter() - t0)
                sent += 1
    except (smtplib.SMTPException, OSError) as e:
        errors.append(f"{type(e).__name__}: {e}")
    return {"sent": sent, "elapsed": time.perf_counter() - started, "latencies": latencies, "setup": setup,
            "errors": errors}


# ------------------------------------------------------------------ IMAP workloads

def imap_quote(name):
    return '"' + name + '"'


def imap_body(size, seed, prefix=b"imap-bench"):
    raw = hashlib.shake_256(prefix + b"-%d-%d" % (size, seed)).digest(size)
    text = base64.b64encode(raw)
    lines = b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))
    head = (f"From: {ALICE}\r\nTo: {ALICE}\r\nSubject: imap bench {size} #{seed}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@bench.contoso.test>\r\n\r\n").encode()
    return head + lines[:size - len(head) - 2] + b"\r\n"


def imap_connect(ep):
    if ep.tls:
        return imaplib.IMAP4_SSL(HOST, ep.port, ssl_context=ep.ctx, timeout=120)
    return imaplib.IMAP4(HOST, ep.port, timeout=120)


def imap_login(ep):
    m = imap_connect(ep)
    if ep.token is not None:
        m.authenticate("XOAUTH2", lambda _: ep.xoauth2().encode())
    else:
        m.login(ep.user, ep.password)
    return m


def imap_fetch_all(ep, folder, expected):
    """One `UID FETCH 1:* (BODY.PEEK[])` of a folder; seconds, bytes, and whether the bodies are the expected ones."""
    m = imap_login(ep)
    try:
        m.select(imap_quote(folder), readonly=True)
        t0 = time.perf_counter()
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
        elapsed = time.perf_counter() - t0
        got = [part[1] for part in data if isinstance(part, tuple)]
        ok = typ == "OK" and sorted(map(len, got)) == sorted(map(len, expected)) and set(got) == set(expected)
        return {"seconds": elapsed, "bytes": sum(map(len, got)), "ok": ok}
    finally:
        m.logout()


def imap_noops(ep, count):
    """`count` NOOP round trips in one session; the latency of each (command written to tagged answer read)."""
    m = imap_login(ep)
    try:
        lat = []
        for i in range(count):
            tag = b"N%05d" % i
            t0 = time.perf_counter()
            m.send(tag + b" NOOP\r\n")
            while True:
                line = m.readline()
                if line.startswith(tag) or not line:
                    break
            lat.append(time.perf_counter() - t0)
        return lat
    finally:
        m.logout()


def imap_logins(ep, count):
    """Connect + greeting + login until the tagged OK, `count` times; the seconds of each."""
    lat = []
    for _ in range(count):
        t0 = time.perf_counter()
        m = imap_login(ep)
        lat.append(time.perf_counter() - t0)
        m.logout()
    return lat


# ------------------------------------------------------------------ POP3 workload

def pop3_body(size, seed, tag):
    raw = hashlib.shake_256(b"pop3-bench-%d-%d" % (size, seed)).digest(size)
    text = base64.b64encode(raw)
    lines = b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))
    head = (f"From: {ALICE}\r\nTo: {ALICE}\r\nSubject: pop3 bench {tag} #{seed}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@bench.contoso.test>\r\n\r\n").encode()
    return head + lines[:size - len(head) - 2] + b"\r\n"


def pop3_login(ep):
    if ep.token is not None:
        p = poplib.POP3_SSL(HOST, ep.port, context=ep.ctx, timeout=120) if ep.tls else poplib.POP3(HOST, ep.port,
                                                                                                    timeout=120)
        p._putcmd("AUTH XOAUTH2")
        line, _ = p._getline()
        if not line.startswith(b"+"):
            raise poplib.error_proto(line)
        p._putcmd(base64.b64encode(ep.xoauth2().encode()).decode())
        line, _ = p._getline()
        if not line.startswith(b"+OK"):
            raise poplib.error_proto(line)
        return p
    p = poplib.POP3_SSL(HOST, ep.port, context=ep.ctx, timeout=120) if ep.tls else poplib.POP3(HOST, ep.port,
                                                                                                timeout=120)
    p.user(ep.user)
    p.pass_(ep.password)
    return p


def pop3_read_response(sock, buffer, multiline):
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


def pop3_stat_count(ep):
    """How many messages the maildrop behind `ep` holds now (login, STAT, QUIT)."""
    p = pop3_login(ep)
    try:
        return p.stat()[0]
    finally:
        p.quit()


def pop3_session(ep, expected):
    """Login, STAT, RETR 1..n on the raw socket (poplib's line-by-line reading would be the bottleneck): seconds
    for STAT + RETRs, per-RETR latencies (command sent to terminator read), bytes, whether all matched."""
    t_login = time.perf_counter()
    p = pop3_login(ep)
    login_s = time.perf_counter() - t_login
    sock, buffer = p.sock, bytearray()
    try:
        t0 = time.perf_counter()
        sock.sendall(b"STAT\r\n")
        status, _, buffer = pop3_read_response(sock, buffer, False)
        count = int(status.split()[1])
        latencies, total, got = [], 0, []
        for n in range(1, count + 1):
            t = time.perf_counter()
            sock.sendall(b"RETR %d\r\n" % n)
            status, data, buffer = pop3_read_response(sock, buffer, True)
            latencies.append(time.perf_counter() - t)
            if not status.startswith(b"+OK"):
                raise poplib.error_proto(status)
            total += len(data)
            got.append((b"\r\n" + data).replace(b"\r\n..", b"\r\n.")[2:])
        elapsed = time.perf_counter() - t0
        sock.sendall(b"QUIT\r\n")
        pop3_read_response(sock, buffer, False)
    finally:
        p.close()
    ok = sorted(got) == sorted(expected)
    return {"seconds": elapsed, "bytes": total, "latencies": latencies, "ok": ok, "login_s": login_s}


# ------------------------------------------------------------------ emailproxy

class ServedProxy:
    """What EmailProxy and MailGate share: the serving process, its ports by kind and the local password."""

    process_name = "proxy"
    default_kind = "smtp"
    proc = None

    def stop(self):
        stop_process(self.proc, self.process_name)
        self.proc = None

    def pid(self):
        return self.proc.pid if self.proc else None

    def endpoint(self, kind=None):
        return Endpoint(self.ports[kind or self.default_kind], password=self.password)


class EmailProxy(ServedProxy):
    """emailproxy (PyPI) with a pre-seeded, encrypted token cache in its config file, run headless. `sections` are
    the server sections it gets, each on its own free local port: "SMTP" (STARTTLS to submission), "IMAP"
    (implicit TLS to IMAPS), "POP" (implicit TLS to POP3S)."""

    process_name = "emailproxy"
    default_kind = "SMTP"

    def __init__(self, env, venv, sections=("SMTP",), name="emailproxy", label="emailproxy"):
        self.env, self.venv, self.name, self.label = env, venv, name, label
        self.python = os.path.join(venv, "bin", "python")
        self.exe = os.path.join(venv, "bin", "emailproxy")
        self.dir = tempfile.mkdtemp(prefix="bench-emailproxy-")
        self.config = os.path.join(self.dir, "emailproxy.config")
        self.logfile = os.path.join(self.dir, "emailproxy.log")
        self.password = secrets.token_urlsafe(18)
        self.ports = {kind: free_port() for kind in sections}
        self.port = self.ports[sections[0]]
        self.proc = None
        self.version = None

    def server_sections(self):
        e = self.env
        upstream = {"SMTP": {"server_port": e["MAILGATE_STANDIN_SUBMISSION_PORT"], "server_starttls": "True"},
                    "IMAP": {"server_port": e["MAILGATE_STANDIN_IMAPS_PORT"]},
                    "POP": {"server_port": e["MAILGATE_STANDIN_POP3S_PORT"]}}
        return {f"{kind}-{port}": dict({"local_address": HOST, "server_address": HOST}, **upstream[kind])
                for kind, port in self.ports.items()}

    def prepare(self):
        """Writes the config with a token cache; returns None when ready, else the reason to skip."""
        if not os.path.exists(self.exe):
            return f"emailproxy is not installed in {self.venv} (the bench wrappers install it with pip)"
        probe = subprocess.run([self.python, "-c", "import importlib.metadata as m; print(m.version('emailproxy'))"],
                               capture_output=True, text=True, timeout=60)
        self.version = probe.stdout.strip() or None
        tokens = oauth_tokens(self.env, ALICE, redirect=f"http://localhost:{free_port()}/")
        # The token cache is written in emailproxy's own format by Cryptographer-compatible code (PBKDF2-SHA256 ->
        # Fernet), run in the venv where `cryptography` is installed; see seed_emailproxy().
        seed = {"config": self.config, "password": self.password, "sections": self.server_sections(),
                "env": self.env, "tokens": tokens}
        done = subprocess.run([self.python, os.path.abspath(__file__), "--seed-emailproxy"], input=json.dumps(seed),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            return "could not write emailproxy's config: " + done.stderr.strip()[-500:]
        return None

    def start(self):
        env = dict(os.environ)
        ca = self.env["MAILGATE_STANDIN_CA_FILE"]
        env.update({"SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca})  # token refreshes and upstream TLS
        self.proc = subprocess.Popen([self.exe, "--no-gui", "--external-auth", "--config-file", self.config,
                                      "--log-file", self.logfile], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        for port in self.ports.values():
            if not wait_port(port, 30, self.proc):
                stop_process(self.proc, "emailproxy")
                return "emailproxy did not listen on 127.0.0.1:%d within 30 s; log tail:\n%s" % (port,
                                                                                                 tail(self.logfile))
        return None


    def describe(self):
        return {"version": self.version, "config": self.config, "ports": self.ports}

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def seed_emailproxy():
    """(Runs in emailproxy's venv.) Writes emailproxy.config with the server sections and a token cache for alice.

    emailproxy keeps cached tokens in the account section: token_salt (base64 of 16 random bytes),
    token_iterations, and access_token / refresh_token each encrypted with Fernet under the key
    PBKDF2-HMAC-SHA256(password = the account's local password, salt, iterations, 32 bytes), urlsafe-base64.
    """
    import configparser
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    seed = json.load(sys.stdin)
    env, tokens = seed["env"], seed["tokens"]
    try:
        import emailproxy  # only to read its iteration count; importing it starts nothing
        iterations = emailproxy.Cryptographer.ITERATIONS
    except (ImportError, AttributeError):
        iterations = 1_200_000  # the value in emailproxy 2026.7.3
    salt = os.urandom(16)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(
        seed["password"].encode())
    fernet = Fernet(base64.urlsafe_b64encode(key))
    cfg = configparser.ConfigParser()
    for name, values in seed["sections"].items():
        cfg[name] = values
    cfg[ALICE] = {
        "permission_url": env["MAILGATE_STANDIN_AUTHORIZE_URL"],
        "token_url": env["MAILGATE_STANDIN_TOKEN_URL"],
        "oauth2_scope": env["MAILGATE_STANDIN_SCOPES"],
        "redirect_uri": "http://localhost:%d/" % free_port(),
        "client_id": env["MAILGATE_STANDIN_CLIENT_ID"],
        "use_pkce": "True",
        "token_salt": base64.b64encode(salt).decode(),
        "token_iterations": str(iterations),
        "access_token": fernet.encrypt(tokens["access_token"].encode()).decode(),
        "access_token_expiry": str(int(time.time()) + int(tokens["expires_in"])),
        "refresh_token": fernet.encrypt(tokens["refresh_token"].encode()).decode(),
    }
    # A wrong password must fail the login, not wipe the cache and wait for a browser.
    cfg["emailproxy"] = {"delete_account_token_on_password_error": "False"}
    with open(seed["config"], "w") as f:
        cfg.write(f)


# ------------------------------------------------------------------ mailgate serve

def find_mailgate(explicit):
    candidates = [explicit] if explicit else [os.environ.get("MAILGATE_BIN"),
                                               os.path.join(REPO, ".build-release", "release", "mailgate"),
                                               os.path.join(REPO, ".build", "release", "mailgate"),
                                               os.path.join(REPO, ".build", "debug", "mailgate")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


class MailGate(ServedProxy):
    """`mailgate serve` with a generated config in a temp state dir; alice added and connected through the CLI.
    `listen` names the listeners ("smtp", "imap", "pop3"), each on its own free port; `server_extra` lines go at
    the end of [server.standin], `toml_extra` at the end of the file."""

    process_name = "mailgate serve"

    def __init__(self, env, mailgate_bin, name="mailgate", label="MailGate", listen=("smtp",), sent_copy="never",
                 lock_after_send=False, server_extra=(), toml_extra=""):
        self.env, self.name, self.label = env, name, label
        self.binary = find_mailgate(mailgate_bin)
        self.lock, self.sent_copy = lock_after_send, sent_copy
        self.server_extra, self.toml_extra = list(server_extra), toml_extra
        self.dir = tempfile.mkdtemp(prefix=f"bench-{name}-")
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "mailgate.toml")
        self.logfile = os.path.join(self.dir, "serve.log")
        self.password = secrets.token_urlsafe(18)
        self.ports = {kind: free_port() for kind in listen}
        self.port = self.ports[listen[0]]
        self.proc = None

    def toml(self):
        q = json.dumps  # TOML basic strings accept JSON string escapes for these values
        e = self.env
        return "\n".join([
            "# generated by integration/bench/benchlib.py",
            f"state_dir = {q(self.state)}",
            "",
            "[listen]",
            *[f"{kind} = {q(f'{HOST}:{port}')}" for kind, port in self.ports.items()],
            "",
            "[oauth.standin]",
            'provider = "microsoft365"',
            f"client_id = {q(e['MAILGATE_STANDIN_CLIENT_ID'])}",
            f"authority = {q(e['MAILGATE_STANDIN_AUTHORITY'])}",
            f"tenant = {q(e['MAILGATE_STANDIN_TENANT'])}",
            f"ca_file = {q(e['MAILGATE_STANDIN_CA_FILE'])}",
            "",
            "[server.standin]",
            'oauth = "standin"',
            f"smtp = {q(HOST + ':' + e['MAILGATE_STANDIN_SUBMISSION_PORT'])}",
            'smtp_security = "starttls"',
            f"imap = {q(HOST + ':' + e['MAILGATE_STANDIN_IMAPS_PORT'])}",
            'imap_security = "tls"',
            f"ca_file = {q(e['MAILGATE_STANDIN_CA_FILE'])}",
            f"sent_copy = {q(self.sent_copy)}",
            f"lock_after_send = {'true' if self.lock else 'false'}",
            *self.server_extra,
            "",
            self.toml_extra,
        ])

    def cli(self, *argv, stdin=None, env=None, timeout=60):
        return subprocess.run([self.binary, *argv, "--config", self.config, "--state-dir", self.state],
                              input=stdin, capture_output=True, text=True, timeout=timeout, env=env)

    def prepare(self):
        """Writes the config, checks it, adds and connects alice; None when ready, else the reason to skip."""
        if not self.binary:
            return ("no mailgate binary (looked for --mailgate-bin, $MAILGATE_BIN, .build-release/release/mailgate, "
                    ".build/release/mailgate, .build/debug/mailgate); build it with "
                    "`swift build -c release --product mailgate --scratch-path .build-release`")
        os.makedirs(self.state, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(self.toml())
        try:
            step = self.cli("config", "check")
            if step.returncode != 0:
                return "`mailgate config check` failed: " + (step.stderr or step.stdout).strip()[-400:]
            step = self.cli("account", "add", ALICE, "--server", "standin", "--password-stdin",
                            stdin=self.password + "\n")
            if step.returncode != 0:
                return "`mailgate account add` failed: " + (step.stderr or step.stdout).strip()[-400:]
            env = dict(os.environ, BROWSER=os.path.join(INTEGRATION, "bin", "browser-curl"),
                       MAILGATE_STANDIN_CA_FILE=self.env["MAILGATE_STANDIN_CA_FILE"])
            step = self.cli("account", "connect", ALICE, stdin="", env=env, timeout=90)
            if step.returncode != 0:
                return "`mailgate account connect` failed: " + (step.stderr or step.stdout).strip()[-400:]
        except subprocess.TimeoutExpired as e:
            return f"`mailgate {' '.join(e.cmd[1:4])}` did not finish within {e.timeout} s"
        except OSError as e:
            return f"could not run {self.binary}: {e}"
        return None

    def start(self):
        """Starts `serve`; None when every listener accepts connections, else the reason to skip."""
        out = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config, "--state-dir", self.state],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except OSError as e:
            return f"could not start `mailgate serve`: {e}"
        finally:
            out.close()
        for kind, port in self.ports.items():
            if not wait_port(port, 30, self.proc):
                status = self.proc.poll()
                stop_process(self.proc, "mailgate serve")
                what = (f"exited with status {status} without listening on {HOST}:{port}" if status is not None
                        else f"did not listen on {HOST}:{port} ({kind}) within 30 s")
                return (f"`mailgate serve` {what}; log tail:\n" + (tail(self.logfile).rstrip() or "(empty)"))
        return None


    def describe(self):
        return {"binary": self.binary, "lock_after_send": self.lock, "sent_copy": self.sent_copy,
                "config": self.config, "ports": self.ports}

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def direct_endpoints(env, token):
    """The stand-in's own doors, as a client with its own XOAUTH2 token reaches them (TLS end to end)."""
    ca = env["MAILGATE_STANDIN_CA_FILE"]
    return {"smtp": Endpoint(int(env["MAILGATE_STANDIN_SUBMISSION_PORT"]), starttls=True, ca_file=ca, token=token),
            "imap": Endpoint(int(env["MAILGATE_STANDIN_IMAPS_PORT"]), tls=True, ca_file=ca, token=token),
            "pop3": Endpoint(int(env["MAILGATE_STANDIN_POP3S_PORT"]), tls=True, ca_file=ca, token=token)}


if __name__ == "__main__":
    if sys.argv[1:] == ["--seed-emailproxy"]:
        seed_emailproxy()
        sys.exit(0)
    print("benchlib.py is a library; run integration/bench/bench (or smtp-bench, imap-bench, pop3-bench)",
          file=sys.stderr)
    sys.exit(2)
