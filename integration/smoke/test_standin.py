"""Smoke tests of the Microsoft 365 stand-in: real clients against the IdP, Dovecot and Postfix.

Run after integration/up (integration/smoke/run does both). Standard library clients only,
plus curl as a $BROWSER.
"""

import base64
import email.utils
import hashlib
import http.client
import http.server
import imaplib
import json
import os
import poplib
import secrets
import smtplib
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_FILE = os.path.join(HERE, "..", "run", "env")


def load_env():
    env = {}
    with open(ENV_FILE) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value.strip('"')
    return env


if not os.path.exists(ENV_FILE):
    pytest.skip("stand-in not running (no integration/run/env); run integration/up", allow_module_level=True)

E = load_env()
HOST = E["MAILGATE_STANDIN_HOST"]
CTX = ssl.create_default_context(cafile=E["MAILGATE_STANDIN_CA_FILE"])
TENANT = E["MAILGATE_STANDIN_TENANT"]
CLIENT = E["MAILGATE_STANDIN_CLIENT_ID"]
SCOPES = E["MAILGATE_STANDIN_SCOPES"]
IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
ALICE, BOB, HANS, INFO = "alice@contoso.test", "bob@contoso.test", "hans@contoso.test", "info@contoso.test"
REDIRECT = "http://localhost:53682/callback"


# ---------------------------------------------------------------- helpers

def control(name, body=None):
    url = E["MAILGATE_STANDIN_CONTROL_URL"] + "/" + name
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=CTX, timeout=10) as r:
        return json.load(r)


def post_form(url, fields):
    data = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(url, data, context=CTX, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def token_request(fields, tenant=TENANT):
    return post_form(f"{E['MAILGATE_STANDIN_AUTHORITY']}/{tenant}/oauth2/v2.0/token", fields)


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(params, tenant=TENANT):
    """GET /authorize without following redirects; returns (status, location or body)."""
    conn = http.client.HTTPSConnection(HOST, int(E["MAILGATE_STANDIN_IDP_PORT"]), context=CTX, timeout=10)
    conn.request("GET", f"/{tenant}/oauth2/v2.0/authorize?" + urllib.parse.urlencode(params))
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, resp.getheader("Location") or body


def auth_code_tokens(user, scope=SCOPES):
    verifier, challenge = pkce()
    state = secrets.token_hex(8)
    status, location = authorize({"client_id": CLIENT, "response_type": "code", "redirect_uri": REDIRECT,
                                  "scope": scope, "state": state, "code_challenge": challenge,
                                  "code_challenge_method": "S256", "login_hint": user})
    assert status == 302, location
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == [state]
    status, tokens = token_request({"client_id": CLIENT, "grant_type": "authorization_code",
                                    "code": query["code"][0], "redirect_uri": REDIRECT,
                                    "code_verifier": verifier})
    assert status == 200, tokens
    return tokens


def xoauth2(user, token):
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user, token, port):
    return f"n,a={user},\x01host={HOST}\x01port={port}\x01auth=Bearer {token}\x01\x01"


class OnceThenEmpty:
    """SASL answer for imaplib: the initial response, then an empty line to any error challenge."""

    def __init__(self, text):
        self.text = text
        self.calls = 0

    def __call__(self, challenge):
        self.calls += 1
        return self.text.encode() if self.calls == 1 else b""


def imap_connect(starttls=False):
    if starttls:
        m = imaplib.IMAP4(HOST, int(E["MAILGATE_STANDIN_IMAP_PORT"]), timeout=10)
        m.starttls(ssl_context=CTX)
        return m
    return imaplib.IMAP4_SSL(HOST, int(E["MAILGATE_STANDIN_IMAPS_PORT"]), ssl_context=CTX, timeout=10)


def imap_login(user, token, starttls=False, mech="XOAUTH2"):
    m = imap_connect(starttls)
    port = E["MAILGATE_STANDIN_IMAP_PORT" if starttls else "MAILGATE_STANDIN_IMAPS_PORT"]
    text = xoauth2(user, token) if mech == "XOAUTH2" else oauthbearer(user, token, port)
    typ, _ = m.authenticate(mech, OnceThenEmpty(text))
    assert typ == "OK"
    return m


def imap_refused(user, token, starttls=False, mech="XOAUTH2"):
    try:
        m = imap_login(user, token, starttls, mech)
    except imaplib.IMAP4.error:
        return True
    m.logout()
    return False


def pop3_xoauth2(user, token):
    """Two-line AUTH XOAUTH2 as Exchange requires; returns the final status line."""
    p = poplib.POP3_SSL(HOST, int(E["MAILGATE_STANDIN_POP3S_PORT"]), context=CTX, timeout=10)
    p._putcmd("AUTH XOAUTH2")
    line, _ = p._getline()
    assert line.startswith(b"+"), line
    p._putcmd(base64.b64encode(xoauth2(user, token).encode()).decode())
    line, _ = p._getline()
    if line.startswith(b"+ "):  # error challenge: answer with an empty line
        p._putcmd("")
        line, _ = p._getline()
    return p, line


def smtp_connect():
    s = smtplib.SMTP(HOST, int(E["MAILGATE_STANDIN_SUBMISSION_PORT"]), timeout=10)
    s.ehlo("client.contoso.test")
    s.starttls(context=CTX)
    s.ehlo("client.contoso.test")
    return s


def smtp_xoauth2(s, user, token):
    """Two-step AUTH XOAUTH2 (AUTH -> 334 -> base64); returns the final (code, text)."""
    code, text = s.docmd("AUTH", "XOAUTH2")
    assert code == 334, (code, text)
    code, text = s.docmd(base64.b64encode(xoauth2(user, token).encode()).decode())
    if code == 334:  # error challenge
        code, text = s.docmd("")
    return code, text


def make_message(sender, recipient, subject):
    msg_id = email.utils.make_msgid(domain="contoso.test")
    body = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\nMessage-ID: {msg_id}\r\n"
            f"Date: {email.utils.formatdate()}\r\n\r\nHello from the smoke test.\r\n")
    return msg_id, body


def find_message(user, token, folder, msg_id, timeout=15):
    deadline = time.time() + timeout
    while True:
        m = imap_login(user, token)
        try:
            typ, _ = m.select(imaplib_quote(folder), readonly=True)
            assert typ == "OK"
            typ, data = m.search(None, "HEADER", "Message-ID", msg_id)
            if data[0].split():
                return True
        finally:
            m.logout()
        if time.time() > deadline:
            return False
        time.sleep(0.3)


def imaplib_quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(autouse=True)
def fresh_idp():
    control("reset", {})
    yield
    # and again after: a test's short token lifetime must not outlive it (later suites share this stand-in)
    control("reset", {})


# ---------------------------------------------------------------- identity platform

def test_auth_code_pkce_tokens_are_microsoft_shaped():
    tokens = auth_code_tokens(ALICE)
    assert tokens["token_type"] == "Bearer"
    assert len(tokens["access_token"]) >= 2048
    assert tokens["refresh_token"]
    assert tokens["expires_in"] > 0 and tokens["ext_expires_in"] > 0
    assert IMAP_SCOPE in tokens["scope"].split()


def test_auth_code_is_one_shot_and_pkce_checked():
    verifier, challenge = pkce()
    params = {"client_id": CLIENT, "response_type": "code", "redirect_uri": REDIRECT, "scope": SCOPES,
              "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256", "login_hint": BOB}
    _, location = authorize(params)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    status, err = token_request({"client_id": CLIENT, "grant_type": "authorization_code", "code": code,
                                 "redirect_uri": REDIRECT, "code_verifier": verifier + "x"})
    assert status == 400 and err["error"] == "invalid_grant" and err["error_codes"] == [501481]
    for key in ("error_description", "timestamp", "trace_id", "correlation_id"):
        assert err[key]
    # The code was consumed by the failed attempt, as at Microsoft: a second try is refused.
    status, err = token_request({"client_id": CLIENT, "grant_type": "authorization_code", "code": code,
                                 "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert status == 400 and err["error_codes"] == [54005]


def test_authorize_rejects_graph_scope_bad_redirect_and_unknown_client():
    status, location = authorize({"client_id": CLIENT, "response_type": "code", "redirect_uri": REDIRECT,
                                  "scope": "https://graph.microsoft.com/IMAP.AccessAsUser.All offline_access",
                                  "state": "g", "login_hint": ALICE})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert status == 302 and query["error"] == ["invalid_scope"] and query["state"] == ["g"]
    status, body = authorize({"client_id": CLIENT, "response_type": "code", "redirect_uri": "https://evil.test/cb",
                              "scope": SCOPES, "login_hint": ALICE})
    assert status == 400 and "AADSTS50011" in body
    status, body = authorize({"client_id": "nope", "response_type": "code", "redirect_uri": REDIRECT,
                              "scope": SCOPES, "login_hint": ALICE})
    assert status == 400 and "AADSTS700016" in body


def test_browser_script_with_curl_completes_sign_in():
    got = {}

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            got.update(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    verifier, challenge = pkce()
    redirect = f"http://127.0.0.1:{server.server_port}/"
    url = f"{E['MAILGATE_STANDIN_AUTHORIZE_URL']}?" + urllib.parse.urlencode({
        "client_id": CLIENT, "response_type": "code", "redirect_uri": redirect, "scope": SCOPES,
        "state": "browser-state", "code_challenge": challenge, "code_challenge_method": "S256",
        "login_hint": HANS})
    subprocess.run([os.path.join(HERE, "..", "bin", "browser-curl"), url], check=True, timeout=20)
    thread.join(10)
    server.server_close()
    assert got["state"] == ["browser-state"]
    status, tokens = token_request({"client_id": CLIENT, "grant_type": "authorization_code", "code": got["code"][0],
                                    "redirect_uri": redirect, "code_verifier": verifier})
    assert status == 200 and tokens["access_token"]


def test_refresh_rotation_old_token_refused():
    first = auth_code_tokens(ALICE)
    status, second = token_request({"client_id": CLIENT, "grant_type": "refresh_token",
                                    "refresh_token": first["refresh_token"], "scope": SCOPES})
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    status, err = token_request({"client_id": CLIENT, "grant_type": "refresh_token",
                                 "refresh_token": first["refresh_token"]})
    assert status == 400 and err["error"] == "invalid_grant" and err["error_codes"] == [70008]
    imap_login(ALICE, second["access_token"]).logout()
    counters = control("counters")
    assert counters["authorization_code"] == 1 and counters["refresh_token"] == 2


def device_start(scope=SCOPES):
    status, body = post_form(E["MAILGATE_STANDIN_DEVICECODE_URL"], {"client_id": CLIENT, "scope": scope})
    assert status == 200, body
    return body


def device_poll(device_code):
    return token_request({"client_id": CLIENT, "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                          "device_code": device_code})


def test_device_code_approved_through_control_api():
    control("config", {"device_code_interval": 1})
    start = device_start()
    assert start["interval"] == 1 and start["user_code"] in start["message"]
    status, err = device_poll(start["device_code"])
    assert status == 400 and err["error"] == "authorization_pending"
    assert control("device/approve", {"user_code": start["user_code"], "user": BOB})["ok"]
    time.sleep(1.1)
    status, tokens = device_poll(start["device_code"])
    assert status == 200, tokens
    imap_login(BOB, tokens["access_token"]).logout()


def test_device_code_slow_down_declined_expired():
    control("config", {"device_code_interval": 1})
    start = device_start()
    device_poll(start["device_code"])
    status, err = device_poll(start["device_code"])
    assert status == 400 and err["error"] == "slow_down"
    declined = device_start()
    control("device/deny", {"user_code": declined["user_code"]})
    status, err = device_poll(declined["device_code"])
    assert err["error"] == "authorization_declined"
    control("config", {"device_code_lifetime": 1})
    short = device_start()
    time.sleep(1.5)
    status, err = device_poll(short["device_code"])
    assert status == 400 and err["error"] == "expired_token"


def test_client_credentials_needs_concrete_tenant_and_default_scope():
    fields = {"client_id": E["MAILGATE_STANDIN_CONFIDENTIAL_CLIENT_ID"], "grant_type": "client_credentials",
              "client_secret": E["MAILGATE_STANDIN_CONFIDENTIAL_CLIENT_SECRET"],
              "scope": E["MAILGATE_STANDIN_APP_SCOPE"]}
    status, err = token_request(fields, tenant="common")
    assert status == 400 and err["error"] == "invalid_request"
    status, err = token_request({**fields, "scope": IMAP_SCOPE})
    assert status == 400 and err["error"] == "invalid_scope"
    status, err = token_request({**fields, "client_secret": "wrong"})
    assert status == 401 and err["error"] == "invalid_client"
    status, tokens = token_request(fields)
    assert status == 200 and "refresh_token" not in tokens
    # App-only token opens any mailbox named in user= (FullAccess granted to the app).
    imap_login(BOB, tokens["access_token"]).logout()


# ---------------------------------------------------------------- IMAP / POP3 / SMTP with tokens

def test_imap_xoauth2_implicit_tls_and_starttls():
    token = auth_code_tokens(ALICE)["access_token"]
    m = imap_login(ALICE, token)
    assert "AUTH=XOAUTH2" in m.capabilities
    m.logout()
    imap_login(ALICE, token, starttls=True).logout()


def test_imap_oauthbearer():
    token = auth_code_tokens(BOB)["access_token"]
    imap_login(BOB, token, mech="OAUTHBEARER").logout()
    assert imap_refused(ALICE, token, mech="OAUTHBEARER")


def test_token_of_one_user_does_not_open_another_mailbox():
    token = auth_code_tokens(BOB)["access_token"]
    assert imap_refused(ALICE, token)


def test_shared_mailbox_with_delegate_token():
    imap_login(INFO, auth_code_tokens(ALICE)["access_token"]).logout()
    assert imap_refused(INFO, auth_code_tokens(BOB)["access_token"])


def test_pop3_xoauth2_two_step():
    token = auth_code_tokens(ALICE)["access_token"]
    p, line = pop3_xoauth2(ALICE, token)
    assert line.startswith(b"+OK"), line
    p.stat()
    p.quit()


def test_smtp_xoauth2_two_step_and_capabilities():
    token = auth_code_tokens(ALICE)["access_token"]
    plain = smtplib.SMTP(HOST, int(E["MAILGATE_STANDIN_SUBMISSION_PORT"]), timeout=10)
    plain.ehlo("client")
    assert not plain.has_extn("auth") and plain.has_extn("starttls")
    plain.quit()
    s = smtp_connect()
    assert s.esmtp_features["auth"].split() == ["LOGIN", "XOAUTH2"]
    code, text = smtp_xoauth2(s, ALICE, token)
    assert code == 235, text
    s.quit()


def test_scope_limits_protocols():
    token = auth_code_tokens(ALICE, scope=IMAP_SCOPE + " offline_access")["access_token"]
    imap_login(ALICE, token).logout()
    p, line = pop3_xoauth2(ALICE, token)
    assert line.startswith(b"-ERR"), line
    p.close()
    s = smtp_connect()
    assert smtp_xoauth2(s, ALICE, token)[0] == 535
    s.close()


def test_passwords_refused_everywhere():
    token = auth_code_tokens(ALICE)["access_token"]
    for secret in ("Passw0rd!", token):  # neither a password nor a token passed as one
        m = imap_connect()
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, secret)
        m.logout()
        m = imap_connect(starttls=True)
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate("PLAIN", OnceThenEmpty(f"\0{ALICE}\0{secret}"))
        m.logout()
        p = poplib.POP3_SSL(HOST, int(E["MAILGATE_STANDIN_POP3S_PORT"]), context=CTX, timeout=10)
        p.user(ALICE)
        with pytest.raises(poplib.error_proto):
            p.pass_(secret)
        p.close()
        s = smtp_connect()
        with pytest.raises(smtplib.SMTPException):
            s.login(ALICE, secret)
        s.close()


def test_expired_token_refused():
    control("token_lifetime", {"seconds": 2})
    tokens = auth_code_tokens(ALICE)
    assert tokens["expires_in"] == 2
    imap_login(ALICE, tokens["access_token"]).logout()
    time.sleep(3)
    assert imap_refused(ALICE, tokens["access_token"])
    s = smtp_connect()
    assert smtp_xoauth2(s, ALICE, tokens["access_token"])[0] == 535
    s.close()


def test_revoked_tokens_refused():
    tokens = auth_code_tokens(ALICE)
    imap_login(ALICE, tokens["access_token"]).logout()
    result = control("revoke", {"user": ALICE})
    assert result["revoked_refresh_tokens"] == 1 and result["revoked_access_tokens"] == 1
    assert imap_refused(ALICE, tokens["access_token"])
    p, line = pop3_xoauth2(ALICE, tokens["access_token"])
    assert line.startswith(b"-ERR")
    p.close()
    s = smtp_connect()
    assert smtp_xoauth2(s, ALICE, tokens["access_token"])[0] == 535
    s.close()
    status, err = token_request({"client_id": CLIENT, "grant_type": "refresh_token",
                                 "refresh_token": tokens["refresh_token"]})
    assert status == 400 and err["error"] == "invalid_grant" and err["error_codes"] == [50173]


def test_smtp_auth_disabled_for_user():
    token = auth_code_tokens(ALICE)["access_token"]
    control("smtp_auth", {"user": ALICE, "disabled": True})
    s = smtp_connect()
    code, text = smtp_xoauth2(s, ALICE, token)
    assert code == 535, text
    s.close()
    imap_login(ALICE, token).logout()  # only SMTP AUTH is off


# ---------------------------------------------------------------- mailboxes and delivery

def test_folders_with_special_use_english_and_german():
    m = imap_login(HANS, auth_code_tokens(HANS)["access_token"])
    typ, lines = m.list()
    m.logout()
    listing = b"\n".join(lines).decode()
    assert '(\\HasNoChildren \\Trash) "/" "Gel&APY-schte Elemente"' in listing
    assert '(\\HasNoChildren \\Drafts) "/" Entw&APw-rfe' in listing
    assert '(\\HasNoChildren \\Sent) "/" "Gesendete Elemente"' in listing
    assert '(\\HasNoChildren \\Junk) "/" Junk-E-Mail' in listing
    assert '(\\HasNoChildren \\Archive) "/" Archiv' in listing
    m = imap_login(ALICE, auth_code_tokens(ALICE)["access_token"])
    listing = b"\n".join(m.list()[1]).decode()
    m.logout()
    assert '(\\HasNoChildren \\Sent) "/" "Sent Items"' in listing
    assert '(\\HasNoChildren \\Trash) "/" "Deleted Items"' in listing
    assert '(\\HasNoChildren \\Junk) "/" "Junk Email"' in listing


def send(user, token, sender, recipient, subject):
    msg_id, body = make_message(sender, recipient, subject)
    s = smtp_connect()
    code, text = smtp_xoauth2(s, user, token)
    assert code == 235, text
    s.sendmail(sender, [recipient], body)
    s.quit()
    return msg_id


def test_submission_delivers_and_autofile_off_by_default():
    alice = auth_code_tokens(ALICE)["access_token"]
    bob = auth_code_tokens(BOB)["access_token"]
    msg_id = send(ALICE, alice, ALICE, BOB, "to bob")
    assert find_message(BOB, bob, "INBOX", msg_id)
    time.sleep(1)
    assert not find_message(ALICE, alice, "Sent Items", msg_id, timeout=0)


def test_autofile_on_files_copy_in_sent_items():
    assert control("autofile", {"enabled": True})["enabled"]
    alice = auth_code_tokens(ALICE)["access_token"]
    msg_id = send(ALICE, alice, ALICE, BOB, "filed")
    assert find_message(ALICE, alice, "Sent Items", msg_id)
    hans = auth_code_tokens(HANS)["access_token"]
    msg_id = send(HANS, hans, HANS, ALICE, "abgelegt")
    assert find_message(HANS, hans, "Gesendete Elemente", msg_id)


def test_foreign_sender_refused_send_as_allowed():
    alice = auth_code_tokens(ALICE)["access_token"]
    bob = auth_code_tokens(BOB)["access_token"]
    s = smtp_connect()
    assert smtp_xoauth2(s, ALICE, alice)[0] == 235
    code, text = s.mail(BOB)
    assert 500 <= code < 600, text
    s.rset()
    _, body = make_message(BOB, ALICE, "forged")
    with pytest.raises(smtplib.SMTPSenderRefused):
        s.sendmail(BOB, [ALICE], body)
    s.rset()
    msg_id, body = make_message(INFO, BOB, "as info")  # alice has Send As on the shared mailbox
    s.sendmail(INFO, [BOB], body)
    s.quit()
    assert find_message(BOB, bob, "INBOX", msg_id)


# ---------------------------------------------------------------- Exchange-shaped IMAP (exchange/imap_front.py)

EXCHANGE_PRE = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
EXCHANGE_POST = ("IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES "
                 "CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+")


def exchange_connect(bare=False):
    key = "MAILGATE_STANDIN_EXCHANGE_BARE_IMAPS_PORT" if bare else "MAILGATE_STANDIN_EXCHANGE_IMAPS_PORT"
    return imaplib.IMAP4_SSL(HOST, int(E[key]), ssl_context=CTX, timeout=10)


def exchange_login(user, token, bare=False):
    m = exchange_connect(bare)
    typ, _ = m.authenticate("XOAUTH2", OnceThenEmpty(xoauth2(user, token)))
    assert typ == "OK"
    return m


def test_exchange_capabilities_before_and_after_login():
    m = exchange_connect()
    assert b"CAPABILITY" not in m.welcome and m.welcome.startswith(b"* OK ")
    assert " ".join(m.capabilities) == EXCHANGE_PRE.upper()   # imaplib upper-cases what it parsed
    typ, data = m.capability()
    assert data == [EXCHANGE_PRE.encode()]
    typ, _ = m.authenticate("XOAUTH2", OnceThenEmpty(xoauth2(ALICE, auth_code_tokens(ALICE)["access_token"])))
    assert typ == "OK"
    typ, data = m.capability()
    assert data == [EXCHANGE_POST.encode()]
    for absent in (b"SPECIAL-USE", b"LIST-EXTENDED", b"ENABLE", b"CONDSTORE", b"OAUTHBEARER", b"STARTTLS"):
        assert absent not in data[0]
    m.logout()


def test_exchange_refuses_what_it_does_not_advertise():
    m = exchange_login(ALICE, auth_code_tokens(ALICE)["access_token"])
    for command in ('ENABLE UTF8=ACCEPT', 'LIST (SPECIAL-USE) "" "*"', 'LIST "" "*" RETURN (SPECIAL-USE)',
                    'COMPRESS DEFLATE', 'SELECT INBOX (CONDSTORE)'):
        tag = m._new_tag().decode()
        m.send(f"{tag} {command}\r\n".encode())
        line = m.readline()
        assert line.startswith(f"{tag} BAD ".encode()), (command, line)
    typ, _ = m.select("INBOX")
    assert typ == "OK"
    m.logout()


def test_exchange_list_with_and_without_attributes():
    token = auth_code_tokens(HANS)["access_token"]
    m = exchange_login(HANS, token)
    listing = b"\n".join(m.list()[1]).decode()
    m.logout()
    assert '(\\HasNoChildren \\Trash) "/" "Gel&APY-schte Elemente"' in listing
    assert '(\\HasNoChildren \\Sent) "/" "Gesendete Elemente"' in listing
    m = exchange_login(HANS, token, bare=True)
    listing = b"\n".join(m.list()[1]).decode()
    m.logout()
    assert '(\\HasNoChildren) "/" "Gel&APY-schte Elemente"' in listing
    assert '(\\HasNoChildren) "/" "Gesendete Elemente"' in listing
    assert '(\\HasNoChildren) "/" Junk-E-Mail' in listing
    for attribute in ("\\Sent", "\\Trash", "\\Junk", "\\Drafts", "\\Archive"):
        assert attribute not in listing


def test_exchange_literals_pass_byte_exact():
    token = auth_code_tokens(BOB)["access_token"]
    m = exchange_login(BOB, token)
    msg_id = email.utils.make_msgid(domain="contoso.test")
    body = (f"From: {BOB}\r\nTo: {BOB}\r\nSubject: literal\r\nMessage-ID: {msg_id}\r\n\r\n").encode()
    body += b"".join(b"line %07d {5}\r\n" % i for i in range(20000))   # literal-looking text inside a literal
    typ, data = m.append("INBOX", None, None, body)
    assert typ == "OK"
    m.select("INBOX")
    typ, data = m.search(None, "HEADER", "Message-ID", msg_id)
    uid_seq = data[0].split()[-1]
    typ, data = m.fetch(uid_seq, "(BODY.PEEK[])")
    assert data[0][1] == body
    m.logout()


def test_exchange_idle_continuation_text():
    m = exchange_login(BOB, auth_code_tokens(BOB)["access_token"])
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline() == b"+ IDLE accepted, awaiting DONE command.\r\n"
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag.encode()):
            break
    assert line.startswith(f"{tag} OK".encode())
    m.logout()


def test_exchange_session_ends_with_bye_when_token_expires():
    control("token_lifetime", {"seconds": 3})
    tokens = auth_code_tokens(ALICE)
    m = exchange_login(ALICE, tokens["access_token"])
    m.select("INBOX")
    typ, _ = m.noop()
    assert typ == "OK"
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+ ")
    started = time.time()
    lines = []
    while True:
        line = m.readline()
        if not line:
            break
        lines.append(line)
    assert b"* BYE Session invalidated - AccessTokenExpired\r\n" in lines, lines
    assert time.time() - started < 6
    time.sleep(1)
    with pytest.raises(imaplib.IMAP4.error):
        exchange_login(ALICE, tokens["access_token"])
