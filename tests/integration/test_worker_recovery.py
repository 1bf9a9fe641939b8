"""A worker killed mid-job, and leases left by dead workers: the job is finished once."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading

import pytest

from etrepo.mail.transport import MemoryTransport
from etrepo.models import AccountRequest, OutboxMail
from etrepo.provisioning.dryrun import DryRunProvisioner
from etrepo.provisioning.worker import JOB_LEASE_SECONDS, Worker
from tests.conftest import code_from
from tests.support.fakes import RecordingProvisioner
from tests.support.portal import (
    applicant,
    count,
    get_request,
    mails_to,
    post_request,
    submit_and_confirm,
    wait_until,
)


def credentials_mails(transport: MemoryTransport, addr: str) -> list:
    return [m for m in mails_to(transport, addr) if "credentials" in m.subject.lower()]


def db_row(db, request_id: str) -> AccountRequest:
    with db.session() as session:
        row = session.get(AccountRequest, request_id)
        assert row is not None
        return row


@pytest.mark.parametrize("die_at", ["create_account", "set_initial_password"])
def test_a_new_worker_finishes_the_job_of_a_killed_one(client, settings, db, clock, die_at):
    """Killed once the username is fixed (before useradd), or after useradd (before the
    password): the next worker on the same machine finishes with one user and one mail."""
    machine = DryRunProvisioner()  # the system's users: they outlive any worker process
    transport = MemoryTransport()
    dying = Worker(db, settings, RecordingProvisioner(machine, die_at=die_at), transport, clock)
    data = applicant()
    request_id = submit_and_confirm(client, dying, transport, data)

    with pytest.raises(KeyboardInterrupt):
        dying.process_jobs_once()
    assert db_row(db, request_id).username == "alefevre"  # fixed before the crash
    assert get_request(client, request_id)["status"] == "provisioning"
    del dying

    provisioner = RecordingProvisioner(machine)
    worker = Worker(db, settings, provisioner, transport, clock)
    worker.recover()  # the dead worker was this process: its lease must run out
    assert worker.process_jobs_once() == 0
    clock.advance(JOB_LEASE_SECONDS + 1)
    assert worker.process_jobs_once() == 1
    worker.delivery.deliver_due()

    state = get_request(client, request_id)
    assert state["status"] == "active" and state["username"] == "alefevre"
    assert [name for step, name in provisioner.calls if step == "create_account"] == ["alefevre"]
    assert not machine.name_taken("alefevre2")
    assert count(db, AccountRequest, AccountRequest.status == "active") == 1
    assert len(credentials_mails(transport, data["email"])) == 1
    # and again: nothing more happens
    clock.advance(JOB_LEASE_SECONDS * 10)
    assert worker.process_jobs_once() == 0
    worker.delivery.deliver_due()
    assert len(credentials_mails(transport, data["email"])) == 1


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def lease(db, model, row_id, owner: str, until: dt.datetime) -> None:
    with db.session() as session:
        row = session.get(model, row_id)
        row.lease_owner, row.lease_until = owner, until


def test_recover_releases_leases_of_dead_local_workers(client, worker, transport, db, clock):
    host = socket.gethostname()[:40]
    far = clock.now() + dt.timedelta(hours=1)
    dead = submit_and_confirm(client, worker, transport, applicant(first_name="Dora",
                                                                   last_name="Dead"))
    alive = submit_and_confirm(client, worker, transport, applicant(first_name="Leo",
                                                                    last_name="Live"))
    remote = submit_and_confirm(client, worker, transport, applicant(first_name="Otto",
                                                                     last_name="Other"))
    lease(db, AccountRequest, dead, f"{host}:{dead_pid()}:0a0b0c0d", far)
    lease(db, AccountRequest, alive, f"{host}:{os.getppid()}:0a0b0c0d", far)
    lease(db, AccountRequest, remote, "elsewhere:1234:0a0b0c0d", far)
    data = applicant()
    post_request(client, data)
    with db.session() as session:
        (mail_id,) = session.query(OutboxMail.id).filter(OutboxMail.to_addr == data["email"]).one()
    lease(db, OutboxMail, mail_id, f"{host}:{dead_pid()}:0a0b0c0d", far)

    assert worker.process_jobs_once() == 0
    assert worker.delivery.deliver_due() == 0
    worker.recover()
    assert worker.process_jobs_once() == 1
    assert worker.delivery.deliver_due() >= 1
    assert get_request(client, dead)["status"] == "active"
    assert mails_to(transport, data["email"])  # the held mail left too
    assert get_request(client, alive)["status"] == "confirmed"  # its worker still runs
    assert get_request(client, remote)["status"] == "confirmed"  # not ours to judge


def test_the_worker_loop_provisions_delivers_and_expires_on_its_own(
        client, make_settings, db, clock):
    settings = make_settings(WORKER_POLL_INTERVAL=0.02)
    transport = MemoryTransport()
    worker = Worker(db, settings, DryRunProvisioner(), transport, clock)
    stale = post_request(client, applicant()).get_json()["id"]
    clock.advance(settings.REQUEST_TTL + 1)
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]

    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker")
    thread.start()
    try:
        wait_until(lambda: mails_to(transport, data["email"]), what="the confirmation mail")
        code = code_from(mails_to(transport, data["email"])[0].body)
        assert client.post(f"/api/v1/requests/{request_id}/confirm",
                           json={"code": code}).status_code == 200
        wait_until(lambda: len(credentials_mails(transport, data["email"])) == 1,
                   what="the credentials mail")
        wait_until(lambda: get_request(client, stale)["status"] == "expired",
                   what="the stale request to expire")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert get_request(client, request_id)["status"] == "active"
