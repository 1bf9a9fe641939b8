"""Row leases: one owner at a time; a dead local owner's rows are freed on recovery."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from etrepo import leases
from etrepo.mail import outbox
from etrepo.models import OutboxMail


def new_mail(db, clock) -> int:
    with db.session() as session:
        mail = outbox.enqueue(session, clock.now(), kind="notice", to_addr="a@example.org",
                              to_name="A", subject="s", body="b")
        session.flush()
        return mail.id


def owner_of(db, mail_id) -> str | None:
    with db.session() as session:
        return session.get(OutboxMail, mail_id).lease_owner


def claim(db, mail_id, owner, now, seconds=60, *conditions) -> bool:
    with db.session() as session:
        return leases.claim(session, OutboxMail, mail_id, owner, now, seconds, *conditions)


def test_owner_names_host_and_process_and_fits_the_column():
    owner = leases.new_owner()
    host, pid, token = owner.split(":")
    assert host == socket.gethostname()[:40] and int(pid) == os.getpid()
    assert re.fullmatch(r"[0-9a-f]{8}", token)
    assert len(owner) <= OutboxMail.__table__.c.lease_owner.type.length
    assert leases.new_owner() != owner


def test_one_owner_at_a_time_until_the_lease_runs_out(db, clock):
    mail_id = new_mail(db, clock)
    now = clock.now()
    assert claim(db, mail_id, "host:1:a", now)
    assert not claim(db, mail_id, "host:2:b", now)
    assert not claim(db, mail_id, "host:2:b", now + dt.timedelta(seconds=59))
    assert owner_of(db, mail_id) == "host:1:a"
    assert claim(db, mail_id, "host:2:b", now + dt.timedelta(seconds=61))
    assert owner_of(db, mail_id) == "host:2:b"


def test_claim_respects_its_conditions(db, clock):
    mail_id = new_mail(db, clock)
    assert not claim(db, mail_id, "host:1:a", clock.now(), 60, OutboxMail.status == "sent")
    assert claim(db, mail_id, "host:1:a", clock.now(), 60, OutboxMail.status == "pending")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_dead_local_owners_are_released_and_nobody_else(db, clock):
    host = socket.gethostname()[:40]
    owners = {
        "dead": f"{host}:{dead_pid()}:00000000",
        "alive": f"{host}:{os.getppid()}:00000000",
        "me": f"{host}:{os.getpid()}:00000000",
        "remote": "some-other-host:1:00000000",
        "garbled": f"{host}:not-a-pid",
    }
    ids = {}
    for name, owner in owners.items():
        ids[name] = new_mail(db, clock)
        assert claim(db, ids[name], owner, clock.now(), 3600)
    with db.session() as session:
        assert leases.release_dead_local_leases(session, OutboxMail) == 1
    assert owner_of(db, ids["dead"]) is None
    for name in ("alive", "me", "remote", "garbled"):
        assert owner_of(db, ids[name]) == owners[name], name
    # the freed row can be taken at once, long before its lease would have run out
    assert claim(db, ids["dead"], leases.new_owner(), clock.now())


def test_a_killed_worker_not_yet_reaped_counts_as_dead(db, clock):
    """A zombie answers signal 0; its rows must still be freed at once."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{process.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # poll: exited, unreaped
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        mail_id = new_mail(db, clock)
        assert claim(db, mail_id, f"{socket.gethostname()[:40]}:{process.pid}:00000000",
                     clock.now(), 3600)
        with db.session() as session:
            assert leases.release_dead_local_leases(session, OutboxMail) == 1
    finally:
        process.wait()
