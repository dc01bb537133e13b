#!/usr/bin/env python3
"""Microsoft identity platform stand-in for MailGate's end-to-end tests.

Serves the v2.0 authorize / token / devicecode endpoints on HTTPS 127.0.0.1
with the checks Microsoft makes, plus a test-only control API under /_test/
and the token introspection endpoint Dovecot's oauth2 passdb calls.
Python 3 standard library only.
"""

import argparse
import base64
import hashlib
import html
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

TENANT_ID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
TENANT_DOMAIN = "contoso.test"
TENANT_NAME = "Contoso (MailGate stand-in)"

PUBLIC_CLIENT = "mailgate-test-client"
CONFIDENTIAL_CLIENT = "mailgate-test-confidential"
CONFIDENTIAL_SECRET = "mailgate-test-secret~0123456789"

CLIENTS = {
    PUBLIC_CLIENT: {"public": True, "secret": None},
    CONFIDENTIAL_CLIENT: {"public": False, "secret": CONFIDENTIAL_SECRET},
}

USERS = {
    "alice@contoso.test": {"name": "Alice Example", "oid": "a11ce000-0000-4000-8000-000000000001"},
    "bob@contoso.test": {"name": "Bob Example", "oid": "b0b00000-0000-4000-8000-000000000002"},
    "info@contoso.test": {"name": "Info (shared)", "oid": "1f000000-0000-4000-8000-000000000003"},
    "hans@contoso.test": {"name": "Hans Beispiel", "oid": "4a450000-0000-4000-8000-000000000004"},
    # Mailboxes only the download tests use (they delete what they download; nobody else's mail is touched).
    "dora@contoso.test": {"name": "Dora Download", "oid": "d0aa0000-0000-4000-8000-000000000005"},
    "dirk@contoso.test": {"name": "Dirk Download", "oid": "d1a00000-0000-4000-8000-000000000006"},
}

# Who may open which other mailbox with their own token (Exchange FullAccess).
FULL_ACCESS = {"info@contoso.test": {"alice@contoso.test"}}

OUTLOOK_HOSTS = ("https://outlook.office.com/", "https://outlook.office365.com/")
DELEGATED_SCOPES = {"IMAP.AccessAsUser.All": "imap", "POP.AccessAsUser.All": "pop3", "SMTP.Send": "smtp"}
OIDC_SCOPES = {"offline_access", "openid", "profile", "email"}
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"

LOOPBACK_REDIRECT = re.compile(r"^http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?(/[^?#]*)?$")
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"

DEFAULT_CONFIG = {
    "access_token_lifetime": 3599,
    "auth_code_lifetime": 600,
    "device_code_lifetime": 900,
    "device_code_interval": 5,
}


class OAuthError(Exception):
    """An error answered in Microsoft's JSON shape."""

    def __init__(self, error, code, text, status=400, extra=None):
        super().__init__(text)
        self.error = error
        self.code = code
        self.text = text
        self.status = status
        self.extra = extra or {}


def now():
    return time.time()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def scope_suffix(scope):
    for host in OUTLOOK_HOSTS:
        if scope.startswith(host):
            return scope[len(host):]
    return None


class State:
    """All mutable state of the stand-in, guarded by one lock."""

    def __init__(self, run_dir):
        self.lock = threading.RLock()
        self.run_dir = run_dir
        self.reset()

    def reset(self):
        with self.lock:
            self.config = dict(DEFAULT_CONFIG)
            # user -> access-token lifetime overriding the global one (tests of token expiry that must not shorten
            # the tokens of other tests sharing the stand-in)
            self.user_lifetimes = {}
            self.codes = {}
            self.refresh_tokens = {}
            self.access_tokens = {}
            self.device_codes = {}
            self.user_codes = {}
            self.smtp_disabled = set()
            self.interactive = {"user": None, "outcome": "approve"}
            self.counters = {}
            self.set_autofile(False)

    def count(self, name):
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def autofile_path(self):
        return os.path.join(self.run_dir, "autofile") if self.run_dir else None

    def set_autofile(self, enabled):
        path = self.autofile_path()
        if path is None:
            return
        if enabled:
            with open(path, "w") as f:
                f.write("on\n")
        elif os.path.exists(path):
            os.unlink(path)

    def autofile(self):
        path = self.autofile_path()
        return bool(path) and os.path.exists(path)


STATE = State(None)


def error_body(err):
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    description = (f"AADSTS{err.code}: {err.text} Trace ID: {trace_id} "
                   f"Correlation ID: {correlation_id} Timestamp: {stamp}")
    body = {
        "error": err.error,
        "error_description": description,
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }
    body.update(err.extra)
    return body


def check_tenant(tenant, for_app=False):
    known = {TENANT_ID, TENANT_DOMAIN, "contoso.onmicrosoft.com"}
    if tenant in ("common", "organizations"):
        if for_app:
            raise OAuthError("invalid_request", 50194,
                             f"Application is not configured as a multi-tenant application. Usage of the /{tenant} "
                             "endpoint is not supported for such applications. Use a tenant-specific endpoint "
                             "or configure the application to be multi-tenant.")
        return
    if tenant == "consumers":
        raise OAuthError("invalid_request", 9002331,
                         "Application is configured for use by Microsoft Account users only. "
                         "This stand-in knows only work accounts; use the tenant id, domain or 'organizations'.")
    if tenant.lower() not in known:
        raise OAuthError("invalid_request", 90002,
                         f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                         "and are signing into the correct cloud.")


def check_client(client_id):
    if not client_id:
        raise OAuthError("invalid_request", 900144,
                         "The request body must contain the following parameter: 'client_id'.")
    if client_id not in CLIENTS:
        raise OAuthError("unauthorized_client", 700016,
                         f"Application with identifier '{client_id}' was not found in the directory "
                         f"'{TENANT_NAME}'. This can happen if the application has not been installed by the "
                         "administrator of the tenant or consented to by any user in the tenant.")
    return CLIENTS[client_id]


def authenticate_client(client_id, params, headers):
    """Applies Microsoft's public/confidential client rules at the token endpoint."""
    secret = params.get("client_secret")
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            raw = base64.b64decode(auth[6:].strip()).decode("utf-8")
            basic_id, basic_secret = raw.split(":", 1)
        except Exception:
            raise OAuthError("invalid_client", 7000215, "Invalid client secret provided.", 401)
        client_id = client_id or basic_id
        secret = basic_secret
    client = check_client(client_id)
    assertion = params.get("client_assertion")
    if client["public"]:
        if secret or assertion:
            raise OAuthError("invalid_request", 700025,
                             "Client is public so neither 'client_assertion' nor 'client_secret' "
                             "should be presented.")
    else:
        if not secret and not assertion:
            raise OAuthError("invalid_client", 7000218,
                             "The request body must contain the following parameter: 'client_assertion' "
                             "or 'client_secret'.", 401)
        if assertion or not secrets.compare_digest(secret, client["secret"]):
            raise OAuthError("invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in the request is the "
                             f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                             401)
    return client_id, client


def parse_delegated_scopes(raw):
    """Returns (resource scopes, has offline_access) or raises invalid_scope like Microsoft."""
    if not raw or not raw.strip():
        raise OAuthError("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
    resource = []
    offline = False
    hosts = set()
    for scope in raw.split():
        if scope in OIDC_SCOPES:
            offline = offline or scope == "offline_access"
            continue
        suffix = scope_suffix(scope)
        if suffix is None:
            if "://" in scope and "graph.microsoft.com" in scope:
                raise OAuthError("invalid_scope", 70011,
                                 f"The provided request must include a 'scope' input parameter. The provided value "
                                 f"for the input parameter 'scope' is not valid: '{scope}' is a Microsoft Graph scope; "
                                 "IMAP, POP and SMTP need the Outlook resource (https://outlook.office.com/...).")
            raise OAuthError("invalid_scope", 70011,
                             f"The provided value for the input parameter 'scope' is not valid. The scope '{scope}' "
                             "does not exist on the Outlook resource.")
        if suffix == ".default":
            raise OAuthError("invalid_scope", 70011,
                             "The provided value for the input parameter 'scope' is not valid: '.default' is "
                             "registered for client credentials in this stand-in; ask for the delegated scopes.")
        if suffix not in DELEGATED_SCOPES:
            raise OAuthError("invalid_scope", 70011,
                             f"The provided value for the input parameter 'scope' is not valid. The scope '{scope}' "
                             "does not exist on the Outlook resource.")
        hosts.add(scope[: len(scope) - len(suffix)])
        resource.append(scope)
    if len(hosts) > 1:
        raise OAuthError("invalid_scope", 28000,
                         "Provided value for the input parameter scope is not valid because it contains more than "
                         "one resource.")
    if not resource:
        raise OAuthError("invalid_scope", 70011,
                         "The provided value for the input parameter 'scope' is not valid. Name at least one "
                         "Outlook scope (IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send).")
    return resource, offline


def services_for(scopes, app=False):
    if app:
        return ["imap", "pop3", "smtp"]
    out = []
    for scope in scopes:
        service = DELEGATED_SCOPES.get(scope_suffix(scope) or "")
        if service and service not in out:
            out.append(service)
    return out


def make_access_token(user, client_id, scopes, app, lifetime):
    issued = int(now())
    header = {"typ": "JWT", "nonce": b64url(secrets.token_bytes(32)), "alg": "RS256",
              "x5t": "standin-key", "kid": "standin-key"}
    claims = {
        "aud": "https://outlook.office.com", "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "iat": issued, "nbf": issued, "exp": issued + lifetime, "appid": client_id,
        "tid": TENANT_ID, "ver": "1.0", "uti": b64url(secrets.token_bytes(16)),
    }
    if app:
        claims["roles"] = ["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"]
    else:
        claims.update({"upn": user, "unique_name": user, "name": USERS[user]["name"], "oid": USERS[user]["oid"],
                       "scp": " ".join(scope_suffix(s) for s in scopes)})
    # Microsoft's tokens are 1.5-3 KB; pad so clients meet realistic sizes.
    claims["xms_standin_pad"] = b64url(secrets.token_bytes(1200))
    signature = secrets.token_bytes(256)
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)])


def issue_tokens(user, client_id, scopes, offline, app=False, family=None):
    with STATE.lock:
        lifetime = int(STATE.user_lifetimes.get(user, STATE.config["access_token_lifetime"]))
        token = make_access_token(user, client_id, scopes, app, lifetime)
        STATE.access_tokens[token] = {"user": user, "client_id": client_id, "scopes": list(scopes), "app": app,
                                      "exp": now() + lifetime, "revoked": False}
        response = {"token_type": "Bearer", "scope": " ".join(scopes), "expires_in": lifetime,
                    "ext_expires_in": lifetime, "access_token": token}
        if offline and not app:
            refresh = "1.AQ" + b64url(secrets.token_bytes(600))
            STATE.refresh_tokens[refresh] = {"user": user, "client_id": client_id, "scopes": list(scopes),
                                             "state": "active", "exp": now() + 90 * 86400}
            response["refresh_token"] = refresh
        record_issued(token, response.get("refresh_token"))
        return response


def record_issued(access, refresh):
    """Appends every issued token to run/issued-tokens (0600), so that integration/check-logs can grep MailGate's
    logs for them. Test-only: Microsoft keeps no such list."""
    if not STATE.run_dir:
        return
    path = os.path.join(STATE.run_dir, "issued-tokens")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(access + "\n" + (refresh + "\n" if refresh else ""))


def grant_authorization_code(params, client_id):
    code = params.get("code")
    if not code:
        raise OAuthError("invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
    with STATE.lock:
        entry = STATE.codes.get(code)
        if entry is None:
            raise OAuthError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if entry["used"]:
            raise OAuthError("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please "
                                                     "retry with a new valid code or use an existing refresh token.")
        entry["used"] = True
        if entry["exp"] < now():
            raise OAuthError("invalid_grant", 70008, "The provided authorization code or refresh token has expired "
                                                     "due to inactivity. Send a new interactive authorization request "
                                                     "for this user and resource.")
        if entry["client_id"] != client_id:
            raise OAuthError("invalid_grant", 70002, "The authorization code was issued to another client.")
        if params.get("redirect_uri") != entry["redirect_uri"]:
            raise OAuthError("invalid_grant", 50011, f"The redirect URI '{params.get('redirect_uri')}' specified in "
                                                     "the request does not match the redirect URI of the "
                                                     "authorization request.")
        challenge = entry["challenge"]
        verifier = params.get("code_verifier")
        if challenge is not None:
            if not verifier:
                raise OAuthError("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge "
                                                          "supplied in the authorization request for PKCE.")
            if entry["method"] == "S256":
                computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            else:
                computed = verifier
            if not secrets.compare_digest(computed, challenge):
                raise OAuthError("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge "
                                                          "supplied in the authorization request for PKCE.")
        elif verifier:
            raise OAuthError("invalid_grant", 501481, "A code_verifier was sent but the authorization request "
                                                      "carried no code_challenge.")
        return issue_tokens(entry["user"], client_id, entry["scopes"], entry["offline"])


def grant_refresh_token(params, client_id):
    refresh = params.get("refresh_token")
    if not refresh:
        raise OAuthError("invalid_request", 900144,
                         "The request body must contain the following parameter: 'refresh_token'.")
    with STATE.lock:
        entry = STATE.refresh_tokens.get(refresh)
        if entry is None:
            raise OAuthError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if entry["state"] == "revoked":
            raise OAuthError("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh "
                                                     "auth token is needed. The user might have changed or reset their "
                                                     "password.", extra={"suberror": "bad_token"})
        if entry["state"] == "rotated" or entry["exp"] < now():
            raise OAuthError("invalid_grant", 70008, "The provided authorization code or refresh token has expired "
                                                     "due to inactivity. Send a new interactive authorization request "
                                                     "for this user and resource.")
        if entry["client_id"] != client_id:
            raise OAuthError("invalid_grant", 70000, "Provided grant is invalid or malformed: the refresh token was "
                                                     "issued to another client.")
        scopes = entry["scopes"]
        if params.get("scope"):
            wanted, _ = parse_delegated_scopes(params["scope"])
            granted = {scope_suffix(s) for s in entry["scopes"]}
            missing = [s for s in wanted if scope_suffix(s) not in granted]
            if missing:
                raise OAuthError("invalid_grant", 65001, "The user or administrator has not consented to use the "
                                                         f"application with ID '{client_id}' for {' '.join(missing)}. "
                                                         "Send an interactive authorization request for this user "
                                                         "and resource.", extra={"suberror": "consent_required"})
            scopes = wanted
        entry["state"] = "rotated"
        return issue_tokens(entry["user"], client_id, scopes, True)


def grant_device_code(params, client_id):
    device_code = params.get("device_code")
    if not device_code:
        raise OAuthError("invalid_request", 900144,
                         "The request body must contain the following parameter: 'device_code'.")
    with STATE.lock:
        entry = STATE.device_codes.get(device_code)
        if entry is None or entry["client_id"] != client_id:
            raise OAuthError("bad_verification_code", 70019, "Verification code expired or unknown.")
        t = now()
        if entry["status"] == "redeemed":
            raise OAuthError("invalid_grant", 54005, "The device code was already redeemed.")
        if entry["exp"] < t:
            raise OAuthError("expired_token", 70020, "The provided device code has expired; the user did not "
                                                     "sign in within the allowed time.")
        if entry["status"] == "declined":
            raise OAuthError("authorization_declined", 70000, "The user declined the authorization request.")
        last = entry["last_poll"]
        entry["last_poll"] = t
        if entry["status"] == "pending":
            if last is not None and t - last < entry["interval"]:
                entry["interval"] += 5  # RFC 8628 section 3.5
                raise OAuthError("slow_down", 70016, "The client is polling too fast; increase the polling "
                                                     f"interval to {entry['interval']} seconds.",
                                 extra={"interval": entry["interval"]})
            raise OAuthError("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is "
                                                             "pending. Continue polling.")
        entry["status"] = "redeemed"
        return issue_tokens(entry["user"], client_id, entry["scopes"], entry["offline"])


def grant_client_credentials(params, client_id, client, tenant):
    if client["public"]:
        raise OAuthError("unauthorized_client", 700016, "Client credentials need a confidential client "
                                                        "(an application with a secret).")
    check_tenant(tenant, for_app=True)
    scope = (params.get("scope") or "").strip()
    if scope not in ("https://outlook.office365.com/.default", "https://outlook.office.com/.default"):
        raise OAuthError("invalid_scope", 1002012,
                         f"The provided value for scope {scope or '(none)'} is not valid. Client credential flows "
                         "must have a scope value with /.default suffixed to the resource identifier "
                         "(application ID URI), e.g. https://outlook.office365.com/.default.")
    return issue_tokens(None, client_id, [scope], False, app=True)


def new_user_code():
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(9))


def introspect(token, service, mailbox=None):
    """Returns (active, payload) for Dovecot; mailbox set means 'may this token open that mailbox'."""
    STATE.count("introspect")
    with STATE.lock:
        entry = STATE.access_tokens.get(token or "")
        if entry is None or entry["revoked"] or entry["exp"] < now():
            return False, {"active": False}
        allowed = services_for(entry["scopes"], entry["app"])
        service = (service or "").lower()
        if service in ("submission", "smtps"):
            service = "smtp"
        if service and service not in allowed:
            return False, {"active": False}
        if mailbox is not None:
            mailbox = mailbox.lower()
            if mailbox not in USERS:
                return False, {"active": False}
            if not entry["app"] and mailbox != entry["user"] and entry["user"] not in FULL_ACCESS.get(mailbox, ()):
                return False, {"active": False}
            user = mailbox
        else:
            if entry["app"]:
                return False, {"active": False}
            user = entry["user"]
        if service == "smtp" and user in STATE.smtp_disabled:
            return False, {"active": False}
        return True, {"active": True, "username": user, "scope": " ".join(entry["scopes"]),
                      "services": " ".join(allowed), "client_id": entry["client_id"], "exp": int(entry["exp"])}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MailGateIdPStandIn/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))
        sys.stderr.flush()

    # --- helpers ---
    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_html(self, status, text):
        data = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sign in</title></head><body>"
                + text + "</body></html>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1_000_000:
            raise OAuthError("invalid_request", 90014, "Request body too large.")
        return self.rfile.read(length) if length else b""

    def form(self):
        body = self.read_body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            data = json.loads(body.decode() or "{}")
            return {k: str(v) if not isinstance(v, (bool, int)) else v for k, v in data.items()}
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def json_body(self):
        body = self.read_body()
        if not body.strip():
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        return json.loads(body.decode())

    # --- routing ---
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/_test/"):
                return self.control(method, path[len("/_test/"):], query)
            if path in ("/devicelogin", "/devicelogin/"):
                return self.device_login(method, query)
            m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/(authorize|token|devicecode)", path)
            if m is None:
                m2 = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", path)
                if m2 and method == "GET":
                    return self.discovery(m2.group(1))
                return self.send_json(404, {"error": "not_found", "error_description": f"No endpoint {path}."})
            tenant, endpoint = m.group(1), m.group(2)
            if endpoint == "authorize":
                params = query if method == "GET" else self.form()
                return self.authorize(tenant, params)
            if method != "POST":
                raise OAuthError("invalid_request", 900561, "The endpoint only accepts POST requests.", 405)
            if endpoint == "token":
                return self.token(tenant, self.form())
            return self.devicecode(tenant, self.form())
        except OAuthError as err:
            self.send_json(err.status, error_body(err))
        except (ValueError, json.JSONDecodeError) as exc:
            self.send_json(400, {"error": "invalid_request", "error_description": f"Malformed request: {exc}"})

    def discovery(self, tenant):
        base = self.server.base_url
        self.send_json(200, {
            "issuer": f"{base}/{TENANT_ID}/v2.0",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token", GRANT_DEVICE, "client_credentials"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })

    # --- authorize ---
    def authorize(self, tenant, params):
        STATE.count("authorize")
        try:
            check_tenant(tenant)
            client_id = params.get("client_id")
            check_client(client_id)
        except OAuthError as err:
            return self.send_html(400, f"<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>"
                                       f"<p id='error'>AADSTS{err.code}: {html.escape(err.text)}</p>")
        redirect_uri = params.get("redirect_uri", "")
        if not LOOPBACK_REDIRECT.match(redirect_uri) or len(redirect_uri) > 256:
            return self.send_html(400, "<h1>Sign in</h1><p id='error'>AADSTS50011: The redirect URI "
                                       f"'{html.escape(redirect_uri)}' specified in the request does not match the "
                                       f"redirect URIs configured for the application '{html.escape(client_id)}'. "
                                       "Registered: http://localhost and http://127.0.0.1 (any port, any path).</p>")
        state = params.get("state")
        mode = params.get("response_mode", "query")

        def answer(values):
            if state is not None:
                values["state"] = state
            if mode == "form_post":
                fields = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                                 for k, v in values.items())
                return self.send_html(200, f"<form method='post' action='{html.escape(redirect_uri)}'>{fields}"
                                           "<noscript><button>Continue</button></noscript></form>"
                                           "<script>document.forms[0].submit()</script>")
            sep = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
            return self.redirect(redirect_uri + sep + urlencode(values))

        def fail(error, code, text):
            return answer({"error": error, "error_description": f"AADSTS{code}: {text}"})

        if mode not in ("query", "fragment", "form_post"):
            return fail("invalid_request", 900144, f"The response_mode '{mode}' is not supported.")
        if params.get("response_type") != "code":
            return fail("unsupported_response_type", 700054,
                        "response_type must be 'code' for this application.")
        try:
            scopes, offline = parse_delegated_scopes(params.get("scope", ""))
        except OAuthError as err:
            return fail(err.error, err.code, err.text)
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method") or ("plain" if challenge else None)
        if challenge is not None:
            if method not in ("S256", "plain"):
                return fail("invalid_request", 50148, "The code_challenge_method must be S256 or plain.")
            if not re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", challenge):
                return fail("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        elif method is not None:
            return fail("invalid_request", 50148, "A code_challenge_method was sent without a code_challenge.")
        hint = (params.get("login_hint") or "").strip().lower()
        prompt = params.get("prompt")
        with STATE.lock:
            interactive = dict(STATE.interactive)
        user = hint if hint in USERS else None
        if user is None and interactive["user"] and not hint:
            user = interactive["user"]
        if user is None:
            if prompt == "none":
                return fail("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
            links = "".join(
                f"<li><a href='?{html.escape(urlencode({**params, 'login_hint': u}))}'>{html.escape(u)}</a></li>"
                for u in USERS)
            note = f"<p id='error'>This user account does not exist: {html.escape(hint)}</p>" if hint else ""
            return self.send_html(200, f"<h1>Sign in</h1>{note}<p>Pick an account (test stand-in):</p><ul>{links}</ul>")
        if interactive["outcome"] == "deny":
            return fail("access_denied", 65004, "User declined to consent to access the app.")
        code = "1.AQ" + b64url(secrets.token_bytes(96))
        with STATE.lock:
            STATE.codes[code] = {"client_id": params["client_id"], "redirect_uri": redirect_uri, "scopes": scopes,
                                 "offline": offline, "challenge": challenge, "method": method, "user": user,
                                 "exp": now() + float(STATE.config["auth_code_lifetime"]), "used": False}
        values = {"code": code}
        if params.get("client_info") == "1":
            values["client_info"] = b64url(json.dumps({"uid": USERS[user]["oid"], "utid": TENANT_ID}).encode())
        values["session_state"] = str(uuid.uuid4())
        return answer(values)

    # --- token ---
    def token(self, tenant, params):
        grant = params.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", 900144,
                             "The request body must contain the following parameter: 'grant_type'.")
        STATE.count(grant)
        check_tenant(tenant, for_app=(grant == "client_credentials"))
        client_id, client = authenticate_client(params.get("client_id"), params, self.headers)
        if grant == "authorization_code":
            result = grant_authorization_code(params, client_id)
        elif grant == "refresh_token":
            result = grant_refresh_token(params, client_id)
        elif grant == GRANT_DEVICE:
            if not client["public"]:
                raise OAuthError("invalid_client", 7000218, "The device code flow needs a public client "
                                                            "('Allow public client flows').", 401)
            result = grant_device_code(params, client_id)
        elif grant == "client_credentials":
            result = grant_client_credentials(params, client_id, client, tenant)
        else:
            raise OAuthError("unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                                                              f"'{grant}'.")
        self.send_json(200, result)

    def devicecode(self, tenant, params):
        STATE.count("devicecode")
        check_tenant(tenant)
        client = check_client(params.get("client_id"))
        if not client["public"]:
            raise OAuthError("invalid_client", 7000218, "The device code flow needs a public client "
                                                        "('Allow public client flows').", 401)
        scopes, offline = parse_delegated_scopes(params.get("scope", ""))
        device_code = "DAQABAAEAAAD" + b64url(secrets.token_bytes(180))
        with STATE.lock:
            user_code = new_user_code()
            while user_code in STATE.user_codes:
                user_code = new_user_code()
            lifetime = int(STATE.config["device_code_lifetime"])
            interval = int(STATE.config["device_code_interval"])
            STATE.device_codes[device_code] = {"client_id": params["client_id"], "scopes": scopes,
                                               "offline": offline, "user_code": user_code, "exp": now() + lifetime,
                                               "interval": interval, "last_poll": None, "status": "pending",
                                               "user": None}
            STATE.user_codes[user_code] = device_code
        verification_uri = f"{self.server.base_url}/devicelogin"
        self.send_json(200, {
            "user_code": user_code, "device_code": device_code, "verification_uri": verification_uri,
            "expires_in": lifetime, "interval": interval,
            "message": f"To sign in, use a web browser to open the page {verification_uri} and enter the code "
                       f"{user_code} to authenticate.",
        })

    def device_login(self, method, query):
        if method == "GET":
            return self.send_html(200, "<h1>Enter code</h1><form method='post'><input name='user_code'>"
                                       "<input name='login_hint' placeholder='alice@contoso.test'>"
                                       "<button>Next</button></form>")
        params = self.form()
        ok, message = decide_device(params.get("user_code", ""), params.get("login_hint", ""), True)
        self.send_html(200 if ok else 400, f"<p>{html.escape(message)}</p>")

    # --- control API ---
    def control(self, method, name, query):
        if name == "introspect":
            return self.introspect_endpoint(method, query)
        if name == "health" and method == "GET":
            return self.send_json(200, {"ok": True})
        if method == "GET":
            if name == "config":
                with STATE.lock:
                    return self.send_json(200, dict(STATE.config))
            if name == "counters":
                with STATE.lock:
                    return self.send_json(200, dict(STATE.counters))
            if name == "autofile":
                return self.send_json(200, {"enabled": STATE.autofile()})
            if name == "smtp_auth":
                with STATE.lock:
                    return self.send_json(200, {"disabled": sorted(STATE.smtp_disabled)})
            if name == "device":
                with STATE.lock:
                    return self.send_json(200, {"pending": [
                        {"user_code": d["user_code"], "status": d["status"], "scope": " ".join(d["scopes"])}
                        for d in STATE.device_codes.values()]})
            return self.send_json(404, {"error": "not_found", "error_description": f"No control GET {name}."})
        if method != "POST":
            return self.send_json(405, {"error": "method_not_allowed"})
        body = self.json_body()
        if name == "reset":
            STATE.reset()
            return self.send_json(200, {"ok": True})
        if name in ("device/approve", "device/deny"):
            ok, message = decide_device(body.get("user_code", ""), body.get("user", ""), name == "device/approve")
            return self.send_json(200 if ok else 404, {"ok": ok, "message": message})
        if name == "revoke":
            user = str(body.get("user", "")).lower()
            if user not in USERS:
                return self.send_json(404, {"ok": False, "message": f"unknown user {user}"})
            with STATE.lock:
                refresh = access = 0
                for entry in STATE.refresh_tokens.values():
                    if entry["user"] == user and entry["state"] == "active":
                        entry["state"] = "revoked"
                        refresh += 1
                for entry in STATE.access_tokens.values():
                    if entry["user"] == user and not entry["revoked"]:
                        entry["revoked"] = True
                        access += 1
            return self.send_json(200, {"ok": True, "revoked_refresh_tokens": refresh,
                                        "revoked_access_tokens": access})
        if name == "expire":
            user = str(body.get("user", "")).lower()
            with STATE.lock:
                count = 0
                for entry in STATE.access_tokens.values():
                    if entry["user"] == user and entry["exp"] > now():
                        entry["exp"] = now() - 1
                        count += 1
            return self.send_json(200, {"ok": True, "expired_access_tokens": count})
        if name in ("config", "token_lifetime"):
            if name == "token_lifetime" and body.get("user"):
                user = str(body["user"]).lower()
                if user not in USERS:
                    return self.send_json(404, {"ok": False, "message": f"unknown user {user}"})
                with STATE.lock:
                    if body.get("seconds") is None:
                        STATE.user_lifetimes.pop(user, None)
                    elif int(body["seconds"]) < 1:
                        return self.send_json(400, {"ok": False, "message": "seconds must be >= 1"})
                    else:
                        STATE.user_lifetimes[user] = int(body["seconds"])
                    return self.send_json(200, dict(STATE.config, user_lifetimes=dict(STATE.user_lifetimes)))
            if name == "token_lifetime":
                body = {"access_token_lifetime": body.get("seconds")}
            with STATE.lock:
                for key, value in body.items():
                    if key not in DEFAULT_CONFIG:
                        return self.send_json(400, {"ok": False, "message": f"unknown setting {key}"})
                    value = int(value)
                    if value < 1:
                        return self.send_json(400, {"ok": False, "message": f"{key} must be >= 1"})
                    STATE.config[key] = value
                return self.send_json(200, dict(STATE.config))
        if name == "counters/reset":
            with STATE.lock:
                STATE.counters = {}
            return self.send_json(200, {"ok": True})
        if name == "smtp_auth":
            user = str(body.get("user", "")).lower()
            if user not in USERS:
                return self.send_json(404, {"ok": False, "message": f"unknown user {user}"})
            with STATE.lock:
                if bool(body.get("disabled", True)) and body.get("disabled") not in ("false", "0"):
                    STATE.smtp_disabled.add(user)
                else:
                    STATE.smtp_disabled.discard(user)
                return self.send_json(200, {"ok": True, "disabled": sorted(STATE.smtp_disabled)})
        if name == "autofile":
            enabled = body.get("enabled")
            if isinstance(enabled, str):
                enabled = enabled.lower() in ("1", "true", "on", "yes")
            STATE.set_autofile(bool(enabled))
            return self.send_json(200, {"ok": True, "enabled": STATE.autofile()})
        if name == "interactive":
            user = body.get("user")
            user = str(user).lower() if user else None
            if user is not None and user not in USERS:
                return self.send_json(404, {"ok": False, "message": f"unknown user {user}"})
            outcome = body.get("outcome", "approve")
            if outcome not in ("approve", "deny"):
                return self.send_json(400, {"ok": False, "message": "outcome must be approve or deny"})
            with STATE.lock:
                STATE.interactive = {"user": user, "outcome": outcome}
            return self.send_json(200, {"ok": True, "user": user, "outcome": outcome})
        return self.send_json(404, {"error": "not_found", "error_description": f"No control POST {name}."})

    def introspect_endpoint(self, method, query):
        params = dict(query)
        if method == "POST":
            params.update(self.form())
        token = params.get("token")
        auth = self.headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        service = params.get("service") or self.headers.get("X-Dovecot-Auth-Service", "")
        active, payload = introspect(token, service, params.get("mailbox"))
        self.send_json(200 if active else 401, payload)


def decide_device(user_code, user, approve):
    user_code = (user_code or "").strip().upper().replace("-", "")
    user = (user or "").strip().lower()
    with STATE.lock:
        device_code = STATE.user_codes.get(user_code)
        if device_code is None:
            return False, f"unknown user code {user_code}"
        entry = STATE.device_codes[device_code]
        if entry["status"] != "pending":
            return False, f"user code {user_code} is already {entry['status']}"
        if approve:
            if user not in USERS:
                return False, f"unknown user {user}"
            entry["status"] = "approved"
            entry["user"] = user
            return True, f"{user} signed in; the device may now redeem its code"
        entry["status"] = "declined"
        return True, "declined"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=24443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    STATE.run_dir = args.run_dir
    STATE.reset()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.base_url = f"https://127.0.0.1:{args.port}"
    sys.stderr.write(f"idp stand-in listening on {server.base_url}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
