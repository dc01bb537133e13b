#!/usr/bin/env python3
"""RFC 3161 time-stamping authority stand-in for MailGate's journal tests.

HTTPS on 127.0.0.1: POST / with a DER TimeStampReq (Content-Type application/timestamp-query) is answered by
`openssl ts -reply` with the stand-in's throwaway TSA certificate (issued by the stand-in's CA, extendedKeyUsage
critical timeStamping) as a DER TimeStampResp (application/timestamp-reply). Test-only control under /_test/:
POST /_test/mode with body "ok" (default), "http-error" (answers 503) or "garbage" (answers 200 with bytes that
are not a TimeStampResp), to exercise MailGate's handling of a failing TSA. Python 3 standard library only.
"""

import argparse
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_QUERY = 64 * 1024
LOCK = threading.Lock()
STATE = {"mode": "ok", "served": 0}


def make_handler(config, workdir):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("tsa: " + (fmt % args) + "\n")

        def reply(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or "0")
            if length < 0 or length > MAX_QUERY:
                return self.reply(413, b"query too large\n", "text/plain")
            body = self.rfile.read(length)
            if self.path == "/_test/mode":
                mode = body.decode("ascii", "replace").strip()
                if mode not in ("ok", "http-error", "garbage"):
                    return self.reply(400, b"unknown mode\n", "text/plain")
                STATE["mode"] = mode
                return self.reply(200, b"ok\n", "text/plain")
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/timestamp-query":
                return self.reply(415, b"expected application/timestamp-query\n", "text/plain")
            if STATE["mode"] == "http-error":
                return self.reply(503, b"the stand-in TSA is told to fail\n", "text/plain")
            if STATE["mode"] == "garbage":
                return self.reply(200, b"\x30\x03\x02\x01\x07", "application/timestamp-reply")
            with LOCK, tempfile.TemporaryDirectory(dir=workdir) as tmp:
                query = os.path.join(tmp, "query.tsq")
                response = os.path.join(tmp, "reply.tsr")
                with open(query, "wb") as f:
                    f.write(body)
                result = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", config, "-queryfile", query, "-out", response],
                    capture_output=True, timeout=30)
                if result.returncode != 0 or not os.path.exists(response):
                    sys.stderr.write("tsa: openssl ts -reply failed: %s\n" % result.stderr.decode(errors="replace"))
                    return self.reply(400, b"bad time-stamp query\n", "text/plain")
                with open(response, "rb") as f:
                    data = f.read()
                STATE["served"] += 1
            return self.reply(200, data, "application/timestamp-reply")

        def do_GET(self):
            if self.path == "/_test/served":
                return self.reply(200, ("%d\n" % STATE["served"]).encode(), "text/plain")
            return self.reply(405, b"POST a time-stamp query\n", "text/plain")

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--config", required=True, help="openssl ts configuration (the [tsa] section)")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.config, args.workdir))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    sys.stderr.write("tsa: listening on 127.0.0.1:%d\n" % args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
