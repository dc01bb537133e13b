"""SMTP under load end to end (issue 9): 100 concurrent smtplib submitters through `mailgate serve`.

Every message must reach bob's INBOX exactly once and alice's Sent Items exactly once (the gateway's sent copy, or
the server's own filing when the stand-in's autofile is on: with `sent_copy = "auto"` either way one copy), found by
its unique Message-ID; `mailgate journal verify` must say OK afterwards.
"""

import os
import smtplib
import threading
import time

import pytest

from conftest import ALICE, BOB, HOST, MailGate, E, dovecot, make_message, mailgate_binary, quote, wait_for

SUBMITTERS = int(os.environ.get("E2E_LOAD_SUBMITTERS", "100"))
MESSAGES_EACH = int(os.environ.get("E2E_LOAD_MESSAGES", "1"))


@pytest.fixture
def gateway():
    binary, reason = mailgate_binary()
    if binary is None:
        pytest.skip(reason)
    g = MailGate(binary, int(E["MAILGATE_STANDIN_IMAPS_PORT"]), [ALICE],
                 extra_server='sent_copy = "auto"\nlock_after_send = true')
    g.start()
    yield g
    g.cleanup()


def submit(port, password, count, out, errors):
    try:
        s = smtplib.SMTP(HOST, port, local_hostname="load.e2e.contoso.test", timeout=120)
        s.ehlo()
        s.login(ALICE, password)
        for i in range(count):
            msg_id, msg = make_message(ALICE, BOB, f"load {i}")
            s.sendmail(ALICE, [BOB], msg)
            out.append(msg_id)
        s.quit()
    except Exception as e:  # collected and asserted on below, with the gateway's log
        errors.append(f"{type(e).__name__}: {e}")


def copies(user, folder, msg_ids):
    """{Message-ID: number of copies} in one direct session."""
    m = dovecot(user)
    try:
        typ, _ = m.select(quote(folder), readonly=True)
        assert typ == "OK"
        found = {}
        for msg_id in msg_ids:
            typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", quote(msg_id))
            found[msg_id] = len(data[0].split())
        return found
    finally:
        m.logout()


def test_100_concurrent_submitters_each_message_delivered_and_filed_once(gateway):
    sent, errors = [], []
    threads = [threading.Thread(target=submit, args=(gateway.smtp_port, gateway.passwords[ALICE], MESSAGES_EACH,
                                                      sent, errors)) for _ in range(SUBMITTERS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.monotonic() - started
    assert not errors, f"{len(errors)} submitters failed, e.g. {errors[:3]}; serve log: {gateway.output()[-1500:]}"
    expected = SUBMITTERS * MESSAGES_EACH
    assert len(sent) == expected
    print(f"\n{expected} messages from {SUBMITTERS} concurrent sessions in {elapsed:.1f} s")

    def all_there(user, folder):
        found = copies(user, folder, sent)
        return found if all(n >= 1 for n in found.values()) else None

    inbox = wait_for(lambda: all_there(BOB, "INBOX"), 120, step=1) or copies(BOB, "INBOX", sent)
    assert sorted(set(inbox.values())) == [1], {k: v for k, v in inbox.items() if v != 1}
    filed = wait_for(lambda: all_there(ALICE, "Sent Items"), 120, step=1) or copies(ALICE, "Sent Items", sent)
    time.sleep(3)   # a second (wrong) copy would come after the first: look again
    filed = copies(ALICE, "Sent Items", sent)
    assert sorted(set(filed.values())) == [1], {k: v for k, v in filed.items() if v != 1}

    gateway.stop()
    verify = gateway.cli("journal", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"OK: {expected} entries" in verify.stdout, verify.stdout
