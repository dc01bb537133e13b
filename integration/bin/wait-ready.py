#!/usr/bin/env python3
"""Waits until every stand-in service answers with its real greeting (used by integration/up)."""
import socket, ssl, sys, time, urllib.request

def main():
    env = {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v.strip('"')
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 45
    ctx = ssl.create_default_context(cafile=env["MAILGATE_STANDIN_CA_FILE"])
    host = env["MAILGATE_STANDIN_HOST"]

    def banner(port, tls, expect):
        s = socket.create_connection((host, int(port)), timeout=3)
        try:
            if tls:
                s = ctx.wrap_socket(s, server_hostname=host)
            data = s.recv(512)
            return data.startswith(expect)
        finally:
            s.close()

    def idp():
        with urllib.request.urlopen(env["MAILGATE_STANDIN_CONTROL_URL"] + "/health", timeout=3, context=ctx) as r:
            return r.status == 200

    checks = {
        "idp": idp,
        "imaps": lambda: banner(env["MAILGATE_STANDIN_IMAPS_PORT"], True, b"* OK"),
        "imap": lambda: banner(env["MAILGATE_STANDIN_IMAP_PORT"], False, b"* OK"),
        "pop3s": lambda: banner(env["MAILGATE_STANDIN_POP3S_PORT"], True, b"+OK"),
        "pop3": lambda: banner(env["MAILGATE_STANDIN_POP3_PORT"], False, b"+OK"),
        "submission": lambda: banner(env["MAILGATE_STANDIN_SUBMISSION_PORT"], False, b"220 "),
    }
    for name, key in (("exchange", "MAILGATE_STANDIN_EXCHANGE_IMAPS_PORT"),
                      ("exchange-bare", "MAILGATE_STANDIN_EXCHANGE_BARE_IMAPS_PORT")):
        if key in env:
            checks[name] = (lambda port: lambda: banner(port, True, b"* OK"))(env[key])
    if "MAILGATE_STANDIN_TSA_URL" in env:
        def tsa():
            with urllib.request.urlopen(env["MAILGATE_STANDIN_TSA_CONTROL_URL"] + "/served", timeout=3, context=ctx) as r:
                return r.status == 200
        checks["tsa"] = tsa
    only = sys.argv[3].split(",") if len(sys.argv) > 3 else list(checks)
    deadline = time.time() + timeout
    pending = list(only)
    last = {}
    while pending and time.time() < deadline:
        for name in list(pending):
            try:
                if checks[name]():
                    pending.remove(name)
            except Exception as exc:
                last[name] = exc
        if pending:
            time.sleep(0.2)
    if pending:
        for name in pending:
            print(f"not ready: {name} ({last.get(name, 'no answer')})", file=sys.stderr)
        return 1
    return 0

sys.exit(main())
