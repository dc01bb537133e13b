"""IMAP end to end with real clients (issue 8): Python imaplib, mbsync (isync), curl, offlineimap3.

Each test runs against every target of conftest.py: the stand-in directly (proves the client invocation) and
through `mailgate serve` (the gateway variants, with MAILGATE_BIN).
"""

import os
import re
import select
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import (ALICE, ATTRIBUTE, BOB, CA, E, HANS, HOST, SERVER_FOLDERS, big_body, count_in, dovecot, make_message, mutf7,
                      quote, smtp_deliver, token, uids_with_message_id, wait_for, xoauth2)

LIST_LINE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?:[^"\\]|\\.)"|NIL) (?P<name>"(?:[^"\\]|\\.)*"|\S+)$')


def listing(m):
    """LIST "" "*" as {wire name: set of attributes (lower case)}."""
    typ, lines = m.list('""', '"*"')
    assert typ == "OK", lines
    out = {}
    for line in lines:
        if isinstance(line, tuple):   # a name sent as a literal
            head, name = line
            attrs = head.split(b")")[0][1:]
            out[name.decode()] = {a.lower() for a in attrs.decode().split()}
            continue
        match = LIST_LINE.match(line)
        assert match, line
        name = match.group("name").decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[name] = {a.lower() for a in match.group("attrs").decode().split()}
    return out


def append(m, folder, msg, flags=None):
    typ, data = m.append(quote(mutf7(folder)), flags, None, msg)
    assert typ == "OK", data
    return data


def select_folder(m, folder, readonly=False):
    typ, data = m.select(quote(mutf7(folder)), readonly=readonly)
    assert typ == "OK", data
    return int(data[0])


def remove(m, folder, uids):
    """Cleans up this test's own messages (never whole mailboxes: other tests share the stand-in)."""
    if not uids:
        return
    select_folder(m, folder)
    seq = ",".join(str(u) for u in uids)
    m.uid("STORE", seq, "+FLAGS.SILENT", "(\\Deleted)")
    m.uid("EXPUNGE", seq)


# ---------------------------------------------------------------- imaplib

@pytest.mark.parametrize("user", [BOB, HANS], ids=["english", "german"])
def test_list_shows_sent_trash_junk_with_attributes(target, user):
    m = target.imap(user)
    try:
        folders = listing(m)
    finally:
        m.logout()
    for role in ("sent", "trash", "junk"):
        name = mutf7(target.folder(user, role))
        assert name in folders, (name, sorted(folders))
        assert ATTRIBUTE[role].lower() in folders[name], (name, folders[name])
    assert "INBOX" in folders
    if target.is_gateway:
        # the server's own name of a mapped folder is not listed a second time
        for role in ("sent", "trash", "junk"):
            assert mutf7(SERVER_FOLDERS[user][role]) not in folders, sorted(folders)


@pytest.mark.parametrize("literal", ["sync", "nonsync"])
def test_append_5mib_and_fetch_byte_exact(target, literal):
    msg_id, msg = make_message(BOB, BOB, f"5 MiB {literal}", big_body(5 * 1024 * 1024))
    m = target.imap(BOB, timeout=120)
    try:
        select_folder(m, "INBOX")
        if literal == "sync":
            append(m, "INBOX", msg)             # imaplib sends {n} and waits for the continuation
        else:
            tag = m._new_tag()
            m.send(tag + b" APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
            while True:
                line = m.readline()
                if line.startswith(tag + b" "):
                    break
            assert line.startswith(tag + b" OK"), line
        m.noop()
        uids = uids_with_message_id(m, msg_id)
        assert len(uids) == 1
        typ, data = m.uid("FETCH", str(uids[0]), "(BODY.PEEK[])")
        assert typ == "OK"
        assert data[0][1] == msg
        remove(m, "INBOX", uids)
    finally:
        m.logout()


@pytest.mark.parametrize("user", [BOB, HANS], ids=["english", "german"])
@pytest.mark.parametrize("role,command", [("trash", "COPY"), ("junk", "MOVE")])
def test_copy_and_move_land_in_the_server_folder(target, user, role, command):
    msg_id, msg = make_message(user, user, f"{command} into {role}")
    m = target.imap(user)
    try:
        append(m, "INBOX", msg)
        select_folder(m, "INBOX")
        uids = uids_with_message_id(m, msg_id)
        assert len(uids) == 1
        typ, data = m.uid(command, str(uids[0]), quote(mutf7(target.folder(user, role))))
        assert typ == "OK", data
        if command == "COPY":
            remove(m, "INBOX", uids)
    finally:
        m.logout()
    server_name = SERVER_FOLDERS[user][role]
    assert count_in(user, server_name, msg_id) == 1, f"not in {server_name}"
    assert count_in(user, "INBOX", msg_id) == 0
    d = dovecot(user)
    try:
        select_folder(d, server_name)
        remove(d, server_name, uids_with_message_id(d, msg_id))
    finally:
        d.logout()


def test_idle_sees_smtp_delivery_within_2s(target):
    m = target.imap(BOB)
    try:
        select_folder(m, "INBOX")
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        line = m.readline()
        assert line.startswith(b"+"), line
        msg_id, msg = make_message(ALICE, BOB, "idle")
        smtp_deliver(ALICE, BOB, msg)
        delivered = time.monotonic()
        sock = m.socket()
        seen = None
        while time.monotonic() - delivered < 2.0:
            if not (getattr(sock, "pending", lambda: 0)() or select.select([sock], [], [], 0.1)[0]):
                continue
            line = m.readline()
            if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS"):
                seen = time.monotonic() - delivered
                break
        assert seen is not None, "no EXISTS within 2 s of the 250"
        m.send(b"DONE\r\n")
        while not m.readline().startswith(tag + b" "):
            pass
    finally:
        m.logout()
    d = dovecot(BOB)
    try:
        remove(d, "INBOX", (select_folder(d, "INBOX"), uids_with_message_id(d, msg_id))[1])
    finally:
        d.logout()


# ---------------------------------------------------------------- real clients

def client_host(target):
    # mbsync and offlineimap check the certificate's DNS name (the stand-in's certificate has DNS:localhost)
    return "localhost" if target.tls else HOST


def secret_file(directory, target, user):
    path = os.path.join(directory, "secret")
    with open(path, "w") as f:
        f.write(target.password(user) if target.is_gateway else token(user))
    os.chmod(path, 0o600)
    return path


def maildir_messages(path):
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    yield f.read()


def synced_exactly(local, msg):
    """Whether INBOX of the Maildir at `local` holds `msg`: byte-exact apart from what the clients themselves do
    (mbsync adds an X-TUID header line to find its copy again; offlineimap stores LF line ends)."""
    for stored in maildir_messages(os.path.join(local, "INBOX")):
        stored = re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", stored, count=1)
        if stored == msg or stored == msg.replace(b"\r\n", b"\n"):
            return True
    return False


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="mailgate-e2e-client-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def seeded_message(target, user, subject):
    msg_id, msg = make_message(user, user, subject, big_body(200 * 1024))
    m = target.imap(user)
    try:
        append(m, "INBOX", msg)
        select_folder(m, "INBOX")
        uid = uids_with_message_id(m, msg_id)[0]
    finally:
        m.logout()
    return msg_id, msg, uid


def unseed(user, msg_id):
    d = dovecot(user)
    try:
        select_folder(d, "INBOX")
        remove(d, "INBOX", uids_with_message_id(d, msg_id))
    finally:
        d.logout()


def test_mbsync_syncs_the_whole_account(target, workdir):
    if not shutil.which("mbsync"):
        pytest.skip("mbsync (isync) is not installed; run integration/install-deps")
    if not target.is_gateway and not os.path.exists("/usr/lib/x86_64-linux-gnu/sasl2/libkdexoauth2.so"):
        pytest.skip("mbsync needs a Cyrus SASL XOAUTH2 plugin for the direct variant (libsasl2-modules-kdexoauth2)")
    msg_id, msg, _ = seeded_message(target, BOB, "mbsync")
    try:
        local = os.path.join(workdir, "mail") + "/"
        os.makedirs(local)
        secret = secret_file(workdir, target, BOB)
        auth = ["AuthMechs LOGIN PLAIN", "SSLType None"] if target.is_gateway else \
               ["AuthMechs XOAUTH2", "SSLType IMAPS", f"CertificateFile {CA}"]
        rc = os.path.join(workdir, "mbsyncrc")
        with open(rc, "w") as f:
            f.write("\n".join(["IMAPAccount acct", f"Host {client_host(target)}", f"Port {target.port}",
                               f"User {BOB}", f'PassCmd "cat {secret}"', *auth, "",
                               "IMAPStore remote", "Account acct", "",
                               "MaildirStore local", f"Path {local}", f"Inbox {local}INBOX", "SubFolders Verbatim", "",
                               "Channel all", "Far :remote:", "Near :local:", "Patterns *", "Create Near",
                               "Sync Pull", "SyncState *", ""]))
        done = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        folders = set(os.listdir(local))
        for role in ("sent", "trash", "junk"):
            assert target.folder(BOB, role) in folders, sorted(folders)
        assert synced_exactly(local, msg), "seeded message not synced byte-exact"
    finally:
        unseed(BOB, msg_id)


def curl_base(target):
    scheme = "imaps" if target.tls else "imap"
    url = f"{scheme}://{client_host(target)}:{target.port}"
    if target.is_gateway:
        args = ["-u", f"{BOB}:{target.password(BOB)}"]
    else:
        args = ["--cacert", CA, "-u", f"{BOB}:", "--oauth2-bearer", token(BOB), "--login-options", "AUTH=XOAUTH2"]
    return url, ["curl", "-sS", "--max-time", "60", *args]


def test_curl_list_and_fetch(target):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    msg_id, msg, uid = seeded_message(target, BOB, "curl")
    try:
        url, cmd = curl_base(target)
        done = subprocess.run(cmd + [url + "/"], capture_output=True, timeout=90)
        assert done.returncode == 0, done.stderr[-1000:]
        names = done.stdout.decode()
        for role in ("sent", "trash", "junk"):
            assert mutf7(target.folder(BOB, role)) in names, names
        done = subprocess.run(cmd + [f"{url}/INBOX/;UID={uid}"], capture_output=True, timeout=90)
        assert done.returncode == 0, done.stderr[-1000:]
        assert done.stdout == msg
    finally:
        unseed(BOB, msg_id)


def test_offlineimap_syncs_inbox_and_sees_the_special_folders(target, workdir):
    if not shutil.which("offlineimap"):
        pytest.skip("offlineimap3 is not installed; run integration/install-deps")
    msg_id, msg, _ = seeded_message(target, BOB, "offlineimap")
    try:
        local = os.path.join(workdir, "mail")
        if target.is_gateway:
            remote = [f"remotepass = {target.password(BOB)}", "auth_mechanisms = LOGIN", "ssl = no",
                      "starttls = no"]
        else:
            remote = [f"oauth2_access_token = {token(BOB)}", "auth_mechanisms = XOAUTH2", "ssl = yes",
                      f"sslcacertfile = {CA}"]
        rc = os.path.join(workdir, "offlineimaprc")
        with open(rc, "w") as f:
            f.write("\n".join(["[general]", "accounts = e2e", f"metadata = {workdir}/meta", "",
                               "[Account e2e]", "localrepository = local", "remoterepository = remote", "",
                               "[Repository local]", "type = Maildir", f"localfolders = {local}", "",
                               "[Repository remote]", "type = IMAP", f"remotehost = {client_host(target)}",
                               f"remoteport = {target.port}", f"remoteuser = {BOB}", *remote, "readonly = True",
                               "folderfilter = lambda name: True", ""]))
        done = subprocess.run(["offlineimap", "-c", rc, "-o", "-u", "basic"], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        folders = set(os.listdir(local))
        for role in ("sent", "trash", "junk"):
            name = target.folder(BOB, role)
            assert name in folders or mutf7(name) in folders, sorted(folders)
        assert synced_exactly(local, msg), "seeded message not synced byte-exact"
    finally:
        unseed(BOB, msg_id)


# ---------------------------------------------------------------- Exchange's token expiry through the gateway

def test_gateway_survives_access_token_expired_bye(target):
    """Exchange ends an upstream session whose token expired; the client's session goes on or ends clearly."""
    if target.label not in ("gateway-exchange", "gateway-exchange-bare"):
        pytest.skip("only through the gateway in front of the Exchange-shaped endpoint (the direct variant is "
                    "covered by the stand-in's smoke tests)")
    from conftest import MailGate, UPSTREAM_KEYS, control, mailgate_binary
    binary, _ = mailgate_binary()
    front_log = os.path.join(E["MAILGATE_STANDIN_RUN_DIR"], target.name + ".log")

    def byes():
        with open(front_log, errors="replace") as f:
            return f.read().count("sent BYE AccessTokenExpired")

    before = byes()
    control("token_lifetime", {"user": HANS, "seconds": 6})
    try:
        g = MailGate(binary, int(E[UPSTREAM_KEYS[target.name]]), [HANS]).start()
        try:
            t = type(target)(target.name, "gateway", g.imap_port, tls=False, gateway=g)
            m = t.imap(HANS)
            select_folder(m, "INBOX")
            time.sleep(9)   # the upstream session's token has expired: the front sent BYE AccessTokenExpired
            assert byes() > before, "the Exchange-shaped front sent no BYE (token lifetime not applied?)"
            try:
                typ, _ = m.noop()
                assert typ == "OK"
                select_folder(m, "INBOX")   # the session goes on, mailbox selected again
                m.logout()
            except (m.abort, OSError) as e:
                assert str(e).strip(), "the session ended without a sentence"
        finally:
            g.cleanup()
    finally:
        control("token_lifetime", {"user": HANS, "seconds": None})


# ---------------------------------------------------------------- gateway-only checks

def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def test_fetch_20mib_byte_exact_with_bounded_gateway_memory(target):
    msg_id, msg = make_message(BOB, BOB, "20 MiB", big_body(20 * 1024 * 1024))
    d = dovecot(BOB)
    try:
        append(d, "INBOX", msg)   # put there directly: only the FETCH goes through the target
    finally:
        d.logout()
    pid = target.gateway.proc.pid if target.is_gateway else None
    try:
        m = target.imap(BOB, timeout=180)
        try:
            select_folder(m, "INBOX", readonly=True)
            uids = uids_with_message_id(m, msg_id)
            assert len(uids) == 1
            # VmRSS sampled every 5 ms while the body flows (VmHWM could already be high from an earlier APPEND)
            import threading
            samples, done = [], threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(proc_kib(pid, "VmRSS"))
                    time.sleep(0.005)
            sampler = threading.Thread(target=sample) if pid else None
            rss_before = proc_kib(pid, "VmRSS") if pid else None
            if sampler:
                sampler.start()
            try:
                typ, data = m.uid("FETCH", str(uids[0]), "(BODY.PEEK[])")
            finally:
                done.set()
                if sampler:
                    sampler.join()
            assert typ == "OK"
            assert data[0][1] == msg
            if pid:
                grown = max(samples) - rss_before
                assert len(samples) > 3 and grown < 2048, \
                    f"gateway RSS grew by {grown} KiB while relaying 20 MiB ({len(samples)} samples)"
        finally:
            m.logout()
    finally:
        unseed(BOB, msg_id)


def test_gateway_wrong_password_and_malformed_command(target):
    if not target.is_gateway:
        pytest.skip("local passwords exist only at the gateway")
    import imaplib
    m = imaplib.IMAP4(HOST, target.port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(BOB, target.password(BOB) + "-wrong")
    m.logout()
    m = target.imap(BOB)
    try:
        tag = m._new_tag()
        m.send(tag + b' SELECT "unterminated\r\n')
        line = m.readline()
        while line.startswith(b"* "):
            line = m.readline()
        assert line.startswith(tag + b" BAD"), line
        typ, _ = m.noop()          # the session continues
        assert typ == "OK"
        select_folder(m, "INBOX")
    finally:
        m.logout()
