"""Harness of the end-to-end tests: real mail clients against the stand-in directly and through `mailgate serve`.

Every IMAP test runs against several *targets* (the `target` fixture):
- `dovecot`: the stand-in's Dovecot directly, XOAUTH2 with a token from the identity stand-in. Proves that the
  client invocation and the assertions are right without MailGate.
- `exchange`: the Exchange-shaped front (Exchange's CAPABILITY list, BYE at token expiry), XOAUTH2 directly.
- `gateway`, `gateway-exchange`, `gateway-exchange-bare`: a `mailgate serve` this harness starts in a temp state dir
  whose upstream is Dovecot, the Exchange-shaped front, or the front that strips LIST's special-use attributes
  (folders then found by name only); clients log in with a local password. Enabled when a `mailgate` binary is
  given in MAILGATE_BIN, skipped with that reason otherwise.

Test data is unique per run (random Message-IDs); nothing here resets the identity stand-in or counts whole
mailboxes, because other tests may share the stand-in (integration/README.md).
"""

import base64
import email.utils
import hashlib
import http.client
import imaplib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
HOST = "127.0.0.1"
ALICE, BOB, HANS = "alice@contoso.test", "bob@contoso.test", "hans@contoso.test"
REDIRECT = "http://localhost:53682/callback"

ENV_FILE = os.environ.get("MAILGATE_STANDIN_ENV") or os.path.join(INTEGRATION, "run", "env")


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value.strip('"')
    return env


if not os.path.exists(ENV_FILE):
    if os.environ.get("MAILGATE_REQUIRE_INTEGRATION") == "1":
        raise SystemExit(f"e2e: the stand-in is not running ({ENV_FILE} missing); run integration/up")
    pytest.skip(f"stand-in not running ({ENV_FILE} missing); run integration/up", allow_module_level=True)

E = load_env(ENV_FILE)
CA = E["MAILGATE_STANDIN_CA_FILE"]
CTX = ssl.create_default_context(cafile=CA)

# Folder names as the server has them (Unicode) and as the gateway shows them to clients.
SERVER_FOLDERS = {
    BOB: {"sent": "Sent Items", "trash": "Deleted Items", "junk": "Junk Email"},
    ALICE: {"sent": "Sent Items", "trash": "Deleted Items", "junk": "Junk Email"},
    HANS: {"sent": "Gesendete Elemente", "trash": "Gelöschte Elemente", "junk": "Junk-E-Mail"},
}
CLIENT_FOLDERS = {"sent": "Sent", "trash": "Trash", "junk": "Junk"}
ATTRIBUTE = {"sent": "\\Sent", "trash": "\\Trash", "junk": "\\Junk"}


def mutf7(name):
    """Modified UTF-7 of RFC 3501 §5.1.3 (the wire form of mailbox names)."""
    out, buf = [], []

    def flush():
        if buf:
            data = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- identity stand-in

def control(name, body=None):
    url = E["MAILGATE_STANDIN_CONTROL_URL"] + "/" + name
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=CTX, timeout=10) as r:
        return json.load(r)


_tokens = {}
_tokens_lock = threading.Lock()


def token(user):
    """An access token for `user` (authorization code + PKCE with login_hint), cached while it has 60 s left."""
    with _tokens_lock:
        cached = _tokens.get(user)
        if cached and cached[1] - time.time() > 60:
            return cached[0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"client_id": E["MAILGATE_STANDIN_CLIENT_ID"], "response_type": "code", "redirect_uri": REDIRECT,
              "scope": E["MAILGATE_STANDIN_SCOPES"], "state": "e2e", "code_challenge": challenge,
              "code_challenge_method": "S256", "login_hint": user}
    authorize = urllib.parse.urlsplit(E["MAILGATE_STANDIN_AUTHORIZE_URL"])
    conn = http.client.HTTPSConnection(authorize.hostname, authorize.port, context=CTX, timeout=10)
    conn.request("GET", authorize.path + "?" + urllib.parse.urlencode(params))
    resp = conn.getresponse()
    resp.read()
    location = resp.getheader("Location") or ""
    conn.close()
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    body = urllib.parse.urlencode({"client_id": E["MAILGATE_STANDIN_CLIENT_ID"], "grant_type": "authorization_code",
                                   "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}).encode()
    with urllib.request.urlopen(E["MAILGATE_STANDIN_TOKEN_URL"], body, context=CTX, timeout=10) as r:
        answer = json.load(r)
    with _tokens_lock:
        _tokens[user] = (answer["access_token"], time.time() + answer["expires_in"])
    return answer["access_token"]


def xoauth2(user, access_token):
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


class OnceThenEmpty:
    """SASL answer for imaplib: the initial response, then an empty line to any error challenge."""

    def __init__(self, text):
        self.text, self.calls = text, 0

    def __call__(self, challenge):
        self.calls += 1
        return self.text.encode() if self.calls == 1 else b""


def dovecot(user):
    """A logged-in imaplib session straight to the stand-in's Dovecot: the checks' view of the server."""
    m = imaplib.IMAP4_SSL(HOST, int(E["MAILGATE_STANDIN_IMAPS_PORT"]), ssl_context=CTX, timeout=30)
    m.authenticate("XOAUTH2", OnceThenEmpty(xoauth2(user, token(user))))
    return m


def make_message(sender, recipient, subject, body_bytes=b"Hello from the end-to-end tests.\r\n"):
    msg_id = email.utils.make_msgid(idstring=secrets.token_hex(6), domain="e2e.contoso.test")
    head = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\nMessage-ID: {msg_id}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            "\r\n").encode()
    return msg_id, head + body_bytes


def big_body(size):
    """`size` bytes of 76-column text lines (CRLF), deterministic but not repetitive."""
    raw = hashlib.shake_256(b"mailgate-e2e-%d" % size).digest(size)
    text = base64.b64encode(raw)
    lines = b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))
    return lines[:size - 2] + b"\r\n"


def uids_with_message_id(m, msg_id):
    typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", quote(msg_id))
    assert typ == "OK", data
    return [int(u) for u in data[0].split()]


def wait_for(predicate, seconds, step=0.25):
    deadline = time.time() + seconds
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def count_in(user, folder, msg_id):
    """How many copies with this Message-ID `user`'s server folder (Unicode name) holds, seen directly."""
    m = dovecot(user)
    try:
        typ, _ = m.select(quote(mutf7(folder)), readonly=True)
        assert typ == "OK", folder
        return len(uids_with_message_id(m, msg_id))
    finally:
        m.logout()


def smtp_deliver(sender, recipient, msg):
    """Submits straight to the stand-in's Postfix with XOAUTH2 (not through MailGate)."""
    import smtplib
    s = smtplib.SMTP(HOST, int(E["MAILGATE_STANDIN_SUBMISSION_PORT"]), timeout=30)
    s.ehlo("e2e.contoso.test")
    s.starttls(context=CTX)
    s.ehlo("e2e.contoso.test")
    code, text = s.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(sender, token(sender)).encode()).decode())
    assert code == 235, (code, text)
    s.sendmail(sender, [recipient], msg)
    s.quit()


# ---------------------------------------------------------------- mailgate serve

def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def mailgate_binary():
    path = os.environ.get("MAILGATE_BIN")
    if not path:
        return None, "no mailgate binary given (set MAILGATE_BIN=/path/to/mailgate to run the gateway variants)"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None, f"MAILGATE_BIN={path} is not an executable file"
    return os.path.abspath(path), None


class MailGate:
    """`mailgate serve` with its own config and state dir, accounts added and connected through the CLI."""

    def __init__(self, binary, imap_upstream_port, users, extra_server=""):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="mailgate-e2e-")
        self.config = os.path.join(self.dir, "mailgate.toml")
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "serve.log")
        self.smtp_port, self.imap_port = free_port(), free_port()
        self.passwords = {u: secrets.token_urlsafe(15) for u in users}
        self.proc = None
        q = json.dumps
        with open(self.config, "w") as f:
            f.write("\n".join([
                "# generated by integration/e2e",
                f"state_dir = {q(self.state)}",
                "[listen]",
                f"smtp = {q(f'{HOST}:{self.smtp_port}')}",
                f"imap = {q(f'{HOST}:{self.imap_port}')}",
                "[oauth.standin]",
                'provider = "microsoft365"',
                f"client_id = {q(E['MAILGATE_STANDIN_CLIENT_ID'])}",
                f"authority = {q(E['MAILGATE_STANDIN_AUTHORITY'])}",
                f"tenant = {q(E['MAILGATE_STANDIN_TENANT'])}",
                f"ca_file = {q(CA)}",
                "[server.standin]",
                'oauth = "standin"',
                f"smtp = {q(HOST + ':' + E['MAILGATE_STANDIN_SUBMISSION_PORT'])}",
                'smtp_security = "starttls"',
                f"imap = {q(f'{HOST}:{imap_upstream_port}')}",
                'imap_security = "tls"',
                f"ca_file = {q(CA)}",
                extra_server,
                "",
            ]))
        for user, password in self.passwords.items():
            self.cli("account", "add", user, "--password-stdin", stdin=password + "\n")
            self.cli("account", "connect", user, "--timeout", "60", timeout=90,
                     env=dict(os.environ, BROWSER=os.path.join(INTEGRATION, "bin", "browser-curl"),
                              MAILGATE_STANDIN_CA_FILE=CA))

    def cli(self, *argv, stdin="", env=None, timeout=60, check=True):
        done = subprocess.run([self.binary, *argv, "--config", self.config], input=stdin, capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=self.dir)
        if check and done.returncode != 0:
            raise AssertionError(f"mailgate {' '.join(argv[:3])} failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        out.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if "mailgate serve: listening on" in self.output():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError("mailgate serve did not start listening: " + self.output()[-1500:])

    def keep_log(self):
        """Copies serve's log, and the local passwords it was tested with, to .build/test-logs for
        integration/check-logs (which greps every kept log for every secret of the run)."""
        kept = os.path.join(os.path.dirname(INTEGRATION), ".build", "test-logs")
        os.makedirs(kept, exist_ok=True)
        name = os.path.basename(self.dir)
        if os.path.exists(self.log):
            shutil.copyfile(self.log, os.path.join(kept, name + "-serve.log"))
        with open(os.path.join(kept, "secrets-" + name + ".txt"), "w") as f:
            f.write("".join(p + "\n" for p in self.passwords.values()))

    def output(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM to the one process this harness started, SIGKILL after 30 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.stop()
        self.keep_log()
        if os.environ.get("E2E_KEEP_STATE") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- targets

class Target:
    """Where a client connects, how it logs in and which folder names it should see."""

    def __init__(self, name, kind, port, tls, gateway=None):
        self.name, self.kind, self.port, self.tls, self.gateway = name, kind, port, tls, gateway
        self.strips_attributes = name == "exchange-bare"

    @property
    def is_gateway(self):
        return self.kind == "gateway"

    def folder(self, user, role):
        """The folder's name as this target's clients see it (Unicode)."""
        return CLIENT_FOLDERS[role] if self.is_gateway else SERVER_FOLDERS[user][role]

    def password(self, user):
        return self.gateway.passwords[user]

    def imap(self, user, timeout=60):
        if self.tls:
            m = imaplib.IMAP4_SSL(HOST, self.port, ssl_context=CTX, timeout=timeout)
        else:
            m = imaplib.IMAP4(HOST, self.port, timeout=timeout)
        if self.is_gateway:
            typ, _ = m.login(user, self.password(user))
        else:
            typ, _ = m.authenticate("XOAUTH2", OnceThenEmpty(xoauth2(user, token(user))))
        assert typ == "OK"
        return m


TARGET_NAMES = ["dovecot", "exchange", "gateway", "gateway-exchange", "gateway-exchange-bare"]
UPSTREAM_KEYS = {
    "dovecot": "MAILGATE_STANDIN_IMAPS_PORT",
    "exchange": "MAILGATE_STANDIN_EXCHANGE_IMAPS_PORT",
    "exchange-bare": "MAILGATE_STANDIN_EXCHANGE_BARE_IMAPS_PORT",
}


@pytest.fixture(scope="session")
def gateways():
    started = {}
    yield started
    for g in started.values():
        g.cleanup()


def gateway_for(gateways, upstream):
    """One `mailgate serve` per upstream variant, shared by the session's tests (bob and hans connected)."""
    if upstream not in gateways:
        binary, reason = mailgate_binary()
        if binary is None:
            pytest.skip(reason)
        g = MailGate(binary, int(E[UPSTREAM_KEYS[upstream]]), [BOB, HANS])
        gateways[upstream] = g.start()
    return gateways[upstream]


@pytest.fixture(params=TARGET_NAMES)
def target(request, gateways):
    name = request.param
    upstream = "dovecot" if name == "gateway" else name.removeprefix("gateway-")
    if UPSTREAM_KEYS[upstream] not in E:
        pytest.skip(f"the running stand-in has no {UPSTREAM_KEYS[upstream]} (started before the Exchange-shaped "
                    "front existed); restart it with integration/down && integration/up")
    if name.startswith("gateway"):
        g = gateway_for(gateways, upstream)
        t = Target(upstream, "gateway", g.imap_port, tls=False, gateway=g)
    else:
        t = Target(name, "direct", int(E[UPSTREAM_KEYS[upstream]]), tls=True)
    t.label = name
    return t
