"""POP3 end to end through `mailgate serve` (issue 10): Python's poplib, fetchmail and getmail6 against the gateway,
whose upstream is the stand-in's Dovecot, once with incoming = "imap" (the INBOX over IMAP) and once with
incoming = "pop3" (Dovecot's POP3 relayed after AUTH XOAUTH2). Messages are delivered with SMTP first; what the
gateway sends is compared byte for byte with what Dovecot's own POP3 sends for the same message.
"""

import base64
import email
import glob
import os
import poplib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from pathlib import Path

from conftest import (ALICE, BOB, CTX, E, HOST, MailGate, big_body, count_in, dovecot, free_port, mailgate_binary,
                      make_message, smtp_deliver, token, uids_with_message_id, wait_for, xoauth2)

MODES = ["imap", "pop3"]


@pytest.fixture(scope="module")
def pop3_gateways():
    started = {}
    yield started
    for g in started.values():
        g.cleanup()


def gateway(pop3_gateways, mode):
    if mode not in pop3_gateways:
        binary, reason = mailgate_binary()
        if binary is None:
            pytest.skip(reason)
        extra = ""
        if mode == "pop3":
            extra = "\n".join(['incoming = "pop3"', f'pop3 = "{HOST}:{E["MAILGATE_STANDIN_POP3S_PORT"]}"',
                               'pop3_security = "tls"'])
        g = MailGate(binary, int(E["MAILGATE_STANDIN_IMAPS_PORT"]), [ALICE], extra_server=extra)
        g.pop3_port = free_port()
        with open(g.config) as f:
            text = f.read()
        with open(g.config, "w") as f:
            f.write(text.replace("[listen]\n", f'[listen]\npop3 = "{HOST}:{g.pop3_port}"\n', 1))
        pop3_gateways[mode] = g.start()
    return pop3_gateways[mode]


def login(g, user=ALICE):
    p = poplib.POP3(HOST, g.pop3_port, timeout=60)
    p.user(user)
    p.pass_(g.passwords[user])
    return p


def direct(user=ALICE):
    """Dovecot's POP3 straight, AUTH XOAUTH2 in two steps: the reference for the byte comparisons."""
    p = poplib.POP3_SSL(HOST, int(E["MAILGATE_STANDIN_POP3S_PORT"]), context=CTX, timeout=60)
    p._putcmd("AUTH XOAUTH2")
    line, _ = p._getline()
    assert line.startswith(b"+"), line
    p._putcmd(base64.b64encode(xoauth2(user, token(user)).encode()).decode())
    line, _ = p._getline()
    assert line.startswith(b"+OK"), line
    return p


def raw_lines(p, number, top=None):
    """RETR (or TOP) as the wire bytes after un-stuffing, CRLF line ends, as poplib returns them joined."""
    resp, lines, octets = p.top(number, top) if top is not None else p.retr(number)
    assert resp.startswith(b"+OK"), resp
    return b"".join(line + b"\r\n" for line in lines), octets


def find(p, msg_id):
    """The message number whose header carries `msg_id` (TOP n 0 of each), or None."""
    count, _ = p.stat()
    for number in range(1, count + 1):
        head, _ = raw_lines(p, number, 0)
        if msg_id.encode() in head:
            return number
    return None


DELIVERED = []


@pytest.fixture(autouse=True)
def purge_delivered():
    """Removes this test's own messages from the INBOX afterwards (never whole mailboxes: the stand-in is shared)."""
    yield
    if not DELIVERED:
        return
    m = dovecot(ALICE)
    try:
        m.select("INBOX")
        uids = [u for msg_id in DELIVERED for u in uids_with_message_id(m, msg_id)]
        if uids:
            m.uid("STORE", ",".join(map(str, uids)), "+FLAGS.SILENT", "(\\Deleted)")
            m.expunge()
    finally:
        m.logout()
        DELIVERED.clear()


def deliver(subject, body=b"Hello from the POP3 end-to-end tests.\r\n"):
    msg_id, msg = make_message(BOB, ALICE, subject, body)
    smtp_deliver(BOB, ALICE, msg)
    DELIVERED.append(msg_id)
    assert wait_for(lambda: count_in(ALICE, "INBOX", msg_id) == 1, 30), "delivery did not arrive"
    return msg_id, msg


DOTTY = b".starts with a dot\r\n..two dots\r\n.\r\nmiddle . line\r\n"


@pytest.mark.parametrize("mode", MODES)
def test_stat_list_uidl_retr_top_byte_exact(pop3_gateways, mode):
    g = gateway(pop3_gateways, mode)
    small_id, small = deliver(f"pop3 small {mode}", DOTTY)
    big_id, big = deliver(f"pop3 big {mode}", big_body(300_000))
    ref = direct()
    p = login(g)
    try:
        count, total = p.stat()
        resp, listing, _ = p.list()
        sizes = {int(n): int(s) for n, s in (line.split() for line in listing)}
        assert len(sizes) == count and sum(sizes.values()) == total
        resp, uidls, _ = p.uidl()
        uids = {int(n): u for n, u in (line.split() for line in uidls)}
        assert len(set(uids.values())) == count, "UIDLs must be unique"
        for msg_id, original in ((small_id, small), (big_id, big)):
            number, ref_number = find(p, msg_id), find(ref, msg_id)
            assert number and ref_number
            got, _ = raw_lines(p, number)
            want, _ = raw_lines(ref, ref_number)
            assert got == want, f"RETR differs from Dovecot's own POP3 ({len(got)} vs {len(want)} bytes)"
            assert got.endswith(original.split(b"\r\n\r\n", 1)[1]), "the delivered body must come back unchanged"
            assert sizes[number] == len(got), "LIST size must equal the octets RETR sends"
            assert p.list(number).split()[2] == str(len(got)).encode()
            for lines in (0, 2, 5, 2000, 100000):  # 2000 lines of the big one span three 64 KiB windows
                top, _ = raw_lines(p, number, lines)
                ref_top, _ = raw_lines(ref, ref_number, lines)
                assert top == ref_top, f"TOP {number} {lines}"
        # UIDLs are stable across sessions.
        p.quit()
        p = login(g)
        resp, again, _ = p.uidl()
        assert {int(n): u for n, u in (line.split() for line in again)} == uids
        capa = p.capa()
        assert "UIDL" in capa and "TOP" in capa
        assert not {"SASL", "STLS", "USER"} & set(capa), capa
    finally:
        p.quit()
        ref.quit()


@pytest.mark.parametrize("mode", MODES)
def test_capa_before_login_offers_user_and_plain(pop3_gateways, mode):
    g = gateway(pop3_gateways, mode)
    p = poplib.POP3(HOST, g.pop3_port, timeout=30)
    try:
        capa = p.capa()
        assert "USER" in capa and capa.get("SASL") == ["PLAIN"] and "STLS" not in capa
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.user(ALICE)
            p.pass_("wrong password")
    finally:
        p.close()


@pytest.mark.parametrize("mode", MODES)
def test_auth_plain_login(pop3_gateways, mode):
    g = gateway(pop3_gateways, mode)
    s = socket.create_connection((HOST, g.pop3_port), timeout=30)
    f = s.makefile("rwb")
    assert f.readline().startswith(b"+OK")
    f.write(b"AUTH PLAIN\r\n")
    f.flush()
    assert f.readline() == b"+ \r\n"
    f.write(base64.b64encode(b"\0" + ALICE.encode() + b"\0" + g.passwords[ALICE].encode()) + b"\r\nSTAT\r\nQUIT\r\n")
    f.flush()
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK ")
    assert f.readline().startswith(b"+OK")
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_dele_then_drop_deletes_nothing_dele_then_quit_deletes(pop3_gateways, mode):
    g = gateway(pop3_gateways, mode)
    a_id, _ = deliver(f"pop3 dele a {mode}")
    b_id, _ = deliver(f"pop3 dele b {mode}")
    p = login(g)
    number = find(p, a_id)
    assert p.dele(number).startswith(b"+OK")
    p.sock.shutdown(socket.SHUT_RDWR)  # the connection drops without QUIT
    p.file.close()
    p.sock.close()
    time.sleep(1)
    assert count_in(ALICE, "INBOX", a_id) == 1, "a dropped connection must delete nothing"
    p = login(g)
    a, b = find(p, a_id), find(p, b_id)
    assert p.dele(a).startswith(b"+OK")
    assert p.dele(b).startswith(b"+OK")
    assert p.rset().startswith(b"+OK")  # RSET undoes both
    assert p.dele(a).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    assert wait_for(lambda: count_in(ALICE, "INBOX", a_id) == 0, 10), "DELE + QUIT must delete upstream"
    assert count_in(ALICE, "INBOX", b_id) == 1, "only the deleted message goes"
    p = login(g)
    p.dele(find(p, b_id))
    p.quit()
    assert wait_for(lambda: count_in(ALICE, "INBOX", b_id) == 0, 10)


@pytest.mark.parametrize("mode", MODES)
def test_fetchmail_fetches_through_the_gateway(pop3_gateways, mode, tmp_path):
    g = gateway(pop3_gateways, mode)
    msg_id, _ = deliver(f"pop3 fetchmail {mode}")
    out = tmp_path / "out"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll {HOST} service {g.pop3_port} protocol POP3 auth password no uidl\n'
                  f'  user "{ALICE}" password "{g.passwords[ALICE]}" keep sslproto ""\n'
                  f'  mda "/bin/sh -c \'cat > {out}/msg.$$\'"\n')
    rc.chmod(0o600)
    done = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v", "--all"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path)))
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    bodies = [open(path, "rb").read() for path in glob.glob(str(out / "msg.*"))]
    assert any(msg_id.encode() in body for body in bodies), done.stdout[-2000:]
    assert count_in(ALICE, "INBOX", msg_id) == 1, "keep: nothing deleted"


@pytest.mark.parametrize("mode", MODES)
def test_getmail_fetches_through_the_gateway(pop3_gateways, mode, tmp_path):
    g = gateway(pop3_gateways, mode)
    msg_id, _ = deliver(f"pop3 getmail {mode}")
    base = tempfile.mkdtemp(prefix="mailgate-e2e-getmail-")  # not under pytest's 0700 tmp: getmail may switch user
    os.chmod(base, 0o755)
    maildir = Path(base) / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    destination_user = []
    if os.geteuid() == 0:  # getmail refuses to deliver as root; it switches to this user itself
        destination_user = ["user = nobody"]
        for path in [maildir] + [maildir / sub for sub in ("cur", "new", "tmp")]:
            os.chown(path, 65534, 65534)
    rc = tmp_path / "getmailrc"
    rc.write_text("\n".join([
        "[retriever]", "type = SimplePOP3Retriever", f"server = {HOST}", f"port = {g.pop3_port}",
        f"username = {ALICE}", f"password = {g.passwords[ALICE]}",
        "[destination]", "type = Maildir", f"path = {maildir}/", *destination_user,
        "[options]", "delete = false", "read_all = true", "verbose = 2", ""]))
    done = subprocess.run(["getmail", f"--rcfile={rc}", f"--getmaildir={tmp_path}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    bodies = [open(path, "rb").read() for path in glob.glob(str(maildir / "new" / "*"))]
    assert any(msg_id.encode() in body for body in bodies), done.stdout[-2000:]
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("mode", MODES)
def test_slow_reader_of_a_big_message_then_the_next_command(pop3_gateways, mode):
    """A 6 MB RETR to a client that reads nothing for 2 s (the gateway must stop reading upstream, not buffer),
    then everything arrives intact and the session goes on (no reading left paused)."""
    g = gateway(pop3_gateways, mode)
    msg_id, msg = deliver(f"pop3 slow {mode}", big_body(6_000_000))
    p = login(g)
    number = find(p, msg_id)
    want, _ = raw_lines(p, number)
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    p._putcmd(f"RETR {number}")
    time.sleep(2)
    resp, lines, _ = p._getlongresp()
    assert resp.startswith(b"+OK")
    assert b"".join(line + b"\r\n" for line in lines) == want
    assert p.stat()[0] >= 1, "the session goes on after the slow RETR"
    head, _ = raw_lines(p, number, 0)
    assert msg_id.encode() in head
    p.quit()
