#!/usr/bin/env python3
"""Exchange-shaped IMAP front of the stand-in: implicit TLS listeners in front of Dovecot that look like Exchange Online.

Why: Dovecot advertises SPECIAL-USE, LIST-EXTENDED, ENABLE, CONDSTORE … and keeps a session open after its token
expired; Exchange advertises a short fixed list (reference m365-protocol.md §3.6) and ends the session with
`* BYE Session invalidated - AccessTokenExpired` (§2.8). MailGate must work against both, so the stand-in offers both.

What this front changes, and nothing else (every other byte passes unchanged, literals are streamed untouched):
- CAPABILITY (untagged responses and `[CAPABILITY …]` codes) is replaced by Exchange's list: the pre-authentication
  list before a successful AUTHENTICATE/LOGIN, the longer one after it. As at Exchange, neither the greeting nor the
  login reply carries capabilities (Dovecot's code and its untagged CAPABILITY during login are dropped): a client
  learns them only by asking.
- Commands for extensions Exchange lacks get `BAD` as Exchange answers unknown syntax: ENABLE, COMPRESS, STARTTLS
  (993 offers none), LIST-EXTENDED (`LIST (…)` selection options, `RETURN (…)`), SORT/THREAD, QUOTA, METADATA, NOTIFY.
- With --no-list-attributes, `\\Sent \\Trash \\Junk \\Drafts \\Archive \\All \\Flagged \\Important` are removed from
  LIST/LSUB attribute lists, so a client must find the folders by their names (Exchange is believed to send the
  attributes, §3.5 says unconfirmed; both variants run).
- The IDLE continuation reads `+ IDLE accepted, awaiting DONE command.` as at Exchange.
- AUTHENTICATE XOAUTH2 (SASL-IR or continuation form): the bearer token is taken from the client's response and, once
  Dovecot said OK, its expiry is learnt from the identity stand-in's introspection endpoint. When that moment passes
  the front sends `* BYE Session invalidated - AccessTokenExpired` (between two responses, never inside a literal;
  also during IDLE) and closes both connections — Exchange does the same at the token's end, whatever the client does.

Upstream is Dovecot's plain IMAP listener on 127.0.0.1 (Dovecot treats loopback as secure), so only the client leg
pays for TLS. Standard library only; binds 127.0.0.1 only. One asyncio loop serves every session.
"""

import argparse
import asyncio
import base64
import json
import re
import signal
import ssl
import sys
import time
import urllib.parse
import urllib.request

PRE_AUTH = b"IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
POST_AUTH = (b"IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES "
             b"CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+")
EXPIRED_BYE = b"* BYE Session invalidated - AccessTokenExpired\r\n"
IDLE_CONTINUATION = b"+ IDLE accepted, awaiting DONE command.\r\n"
SPECIAL_ATTRIBUTES = (b"\\sent", b"\\trash", b"\\junk", b"\\drafts", b"\\archive", b"\\all", b"\\flagged",
                      b"\\important")
REFUSED_COMMANDS = {b"ENABLE", b"COMPRESS", b"STARTTLS", b"SORT", b"THREAD", b"GETQUOTA", b"GETQUOTAROOT",
                    b"SETQUOTA", b"GETMETADATA", b"SETMETADATA", b"NOTIFY", b"ESEARCH", b"XLIST"}
MAX_LINE = 1 << 20          # bytes of one line outside literals (tokens are several KB)
CHUNK = 64 * 1024           # literal bytes are copied in chunks of at most this

LITERAL_AT_END = re.compile(rb"~?\{(\d{1,12})(\+?)\}\r?\n$")
CAPABILITY_CODE = re.compile(rb"\[CAPABILITY [^\]]*\]", re.IGNORECASE)
SELECT_PARAMETERS = re.compile(rb" \((CONDSTORE|QRESYNC)\b", re.IGNORECASE)
LIST_LINE = re.compile(rb"^\* (LIST|LSUB|XLIST) \(([^)]*)\)", re.IGNORECASE)


def log(*parts):
    print("imap_front:", *parts, file=sys.stderr, flush=True)


class Front:
    def __init__(self, args):
        self.args = args
        self.client_ctx = None
        self.sessions = 0

    def introspect(self, token):
        """Blocking: the token's expiry (epoch seconds) from the identity stand-in, or None."""
        body = urllib.parse.urlencode({"token": token, "service": "imap"}).encode()
        ctx = ssl.create_default_context(cafile=self.args.ca)
        try:
            with urllib.request.urlopen(self.args.introspect_url, body, context=ctx, timeout=10) as r:
                answer = json.load(r)
        except Exception as e:  # 401 for an inactive token, or the IdP is gone: no expiry known
            log("introspection failed:", e)
            return None
        return float(answer["exp"]) if answer.get("active") and "exp" in answer else None


class Session:
    """One client connection and its Dovecot connection."""

    def __init__(self, front, creader, cwriter):
        self.front = front
        self.strip = front.args.no_list_attributes
        self.creader, self.cwriter = creader, cwriter
        self.peer = "%s:%s" % (cwriter.get_extra_info("peername") or ("?", "?"))[:2]
        self.ureader = self.uwriter = None
        self.authenticated = False
        self.auth_tag = None          # tag of an AUTHENTICATE/LOGIN in flight
        self.sasl_pending = False     # the next client line is a SASL response
        self.token = None
        self.idle_tag = None
        self.client_lock = asyncio.Lock()   # one response (with its literals) at a time towards the client
        self.closed = False
        self.expiry_task = None

    # ---------------------------------------------------------------- main

    async def run(self):
        try:
            self.ureader, self.uwriter = await asyncio.open_connection(
                "127.0.0.1", self.front.args.upstream_port, limit=MAX_LINE)
        except OSError as e:
            log("cannot reach Dovecot:", e)
            self.cwriter.close()
            return
        tasks = [asyncio.create_task(self.client_to_server()), asyncio.create_task(self.server_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.close()
            for t in tasks:
                t.cancel()

    async def close(self):
        if self.closed:
            return
        self.closed = True
        if self.expiry_task:
            self.expiry_task.cancel()
        for w in (self.uwriter, self.cwriter):
            if w is not None:
                try:
                    w.close()
                except Exception:
                    pass

    # ---------------------------------------------------------------- client -> Dovecot

    async def client_to_server(self):
        r, w = self.creader, self.uwriter
        while True:
            line = await r.readuntil(b"\n")
            if self.sasl_pending:
                self.sasl_pending = False
                self.learn_sasl(line.strip())
                w.write(line)
                await w.drain()
                continue
            if self.idle_tag is not None and line.strip().upper() == b"DONE":
                w.write(line)
                await w.drain()
                continue
            refusal = self.refusal(line)
            if refusal is not None:
                async with self.client_lock:
                    self.cwriter.write(refusal)
                    await self.cwriter.drain()
                continue
            self.note_command(line)
            w.write(line)
            # literals of this command: copied untouched, then the rest of the command line follows
            while True:
                m = LITERAL_AT_END.search(line)
                if not m:
                    break
                await self.copy_exactly(r, w, int(m.group(1)))
                line = await r.readuntil(b"\n")
                w.write(line)
            await w.drain()

    def refusal(self, line):
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) < 2 or LITERAL_AT_END.search(line):
            return None
        tag, name = parts[0], parts[1].upper()
        if name == b"UID" and len(parts) > 2:
            name = parts[2].upper()
            args = parts[3:]
        else:
            args = parts[2:]
        if name in REFUSED_COMMANDS:
            return tag + b" BAD Command Error. 10\r\n"
        if name in (b"LIST", b"LSUB") and args and (args[0].startswith(b"(") or b"RETURN" in [a.upper() for a in args]):
            return tag + b" BAD Command Argument Error. 11\r\n"
        if name in (b"SELECT", b"EXAMINE") and SELECT_PARAMETERS.search(line):
            return tag + b" BAD Command Argument Error. 11\r\n"
        return None

    def note_command(self, line):
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) < 2:
            return
        tag, name = parts[0], parts[1].upper()
        if name == b"IDLE":
            self.idle_tag = tag
        elif name == b"AUTHENTICATE" and len(parts) >= 3:
            self.auth_tag = tag
            if parts[2].upper() == b"XOAUTH2":
                if len(parts) >= 4:
                    self.learn_sasl(parts[3])
                else:
                    self.sasl_pending = True
        elif name == b"LOGIN":
            self.auth_tag = tag

    def learn_sasl(self, b64):
        try:
            text = base64.b64decode(b64, validate=False).decode("utf-8", "replace")
        except Exception:
            return
        m = re.search(r"auth=Bearer ([^\x01]+)", text)
        if m:
            self.token = m.group(1)

    async def copy_exactly(self, r, w, count):
        while count > 0:
            chunk = await r.read(min(count, CHUNK))
            if not chunk:
                raise ConnectionError("peer closed inside a literal")
            w.write(chunk)
            count -= len(chunk)
            await w.drain()

    # ---------------------------------------------------------------- Dovecot -> client

    async def server_to_client(self):
        r, w = self.ureader, self.cwriter
        first = True
        while True:
            line = await r.readuntil(b"\n")
            async with self.client_lock:
                w.write(self.rewrite(line, first))
                first = False
                while True:
                    m = LITERAL_AT_END.search(line)
                    if not m:
                        break
                    await self.copy_exactly(r, w, int(m.group(1)))
                    line = await r.readuntil(b"\n")
                    w.write(line)
                await w.drain()
            self.after_response(line if not LITERAL_AT_END.search(line) else b"")

    def rewrite(self, line, greeting):
        caps = POST_AUTH if self.authenticated else PRE_AUTH
        if greeting:
            return CAPABILITY_CODE.sub(b"", line).replace(b"OK  ", b"OK ")
        upper = line[:16].upper()
        if upper.startswith(b"* CAPABILITY "):
            if self.auth_tag is not None:
                return b""   # Exchange's login reply carries no capabilities; clients ask with CAPABILITY
            return b"* CAPABILITY " + caps + b"\r\n"
        if line.startswith(b"+") and self.idle_tag is not None:
            return IDLE_CONTINUATION
        tag = line.split(b" ", 1)[0]
        if self.auth_tag is not None and tag == self.auth_tag:
            if line[len(tag):len(tag) + 4] == b" OK ":
                self.authenticated = True
            return CAPABILITY_CODE.sub(b"", line).replace(b"  ", b" ")
        if b"[CAPABILITY " in line or b"[capability " in line:
            line = CAPABILITY_CODE.sub(b"[CAPABILITY " + caps + b"]", line)
        if self.strip:
            m = LIST_LINE.match(line)
            if m:
                kept = [a for a in m.group(2).split() if a.lower() not in SPECIAL_ATTRIBUTES]
                line = line[:m.start(2)] + b" ".join(kept) + line[m.end(2):]
        return line

    def after_response(self, line):
        tag = line.split(b" ", 1)[0] if line else b""
        if self.idle_tag is not None and tag == self.idle_tag:
            self.idle_tag = None
        if self.auth_tag is not None and tag == self.auth_tag:
            self.auth_tag = None
            if self.authenticated and self.token and self.expiry_task is None:
                self.expiry_task = asyncio.create_task(self.expire_when_due(self.token))

    async def expire_when_due(self, token):
        exp = await asyncio.get_running_loop().run_in_executor(None, self.front.introspect, token)
        if exp is None:
            return
        await asyncio.sleep(max(0.0, exp - time.time()))
        async with self.client_lock:
            if self.closed:
                return
            try:
                self.cwriter.write(EXPIRED_BYE)
                await self.cwriter.drain()
            except Exception:
                pass
        log(f"access token expired: sent BYE AccessTokenExpired to {self.peer}")  # tests count these lines
        await self.close()


async def main_async(args):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    front = Front(args)

    async def handle(reader, writer):
        session = Session(front, reader, writer)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, OSError):
            pass
        finally:
            await session.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port, ssl=ctx, limit=MAX_LINE, backlog=1024)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log(f"listening on 127.0.0.1:{args.port} -> Dovecot 127.0.0.1:{args.upstream_port}"
        + (" (LIST without special-use attributes)" if args.no_list_attributes else ""))
    async with server:
        await stop.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True, help="implicit-TLS listener on 127.0.0.1")
    p.add_argument("--upstream-port", type=int, required=True, help="Dovecot's plain IMAP port on 127.0.0.1")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True, help="CA that signed the identity stand-in's certificate")
    p.add_argument("--introspect-url", required=True)
    p.add_argument("--no-list-attributes", action="store_true",
                   help="remove the special-use attributes from LIST/LSUB (folders found by name only)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
