"""The worker with the dry-run provisioner: confirmed requests become accounts and a mail."""

from __future__ import annotations

import re
import threading

from sqlalchemy import select

from etrepo.mail.interfaces import MailError
from etrepo.mail.transport import MemoryTransport
from etrepo.models import AccountRequest, OutboxMail, RequestEvent
from etrepo.provisioning.worker import RETRY_SECONDS, Worker
from tests.conftest import code_from
from tests.support.fakes import BrokenProvisioner, GateProvisioner, RecordingProvisioner
from tests.support.portal import (
    applicant,
    count,
    get_request,
    mails_to,
    submit_and_confirm,
)
from tests.support.processes import at_once


def credentials(transport: MemoryTransport, addr: str) -> list:
    return [m for m in mails_to(transport, addr) if "credentials" in m.subject.lower()]


def test_a_confirmed_request_becomes_an_account_and_a_credentials_mail(
        client, worker, transport, settings, db):
    data = applicant()
    request_id = submit_and_confirm(client, worker, transport, data)
    assert worker.process_jobs_once() == 1
    assert get_request(client, request_id)["status"] == "active"
    assert get_request(client, request_id)["username"] == "alefevre"
    worker.delivery.deliver_due()

    confirmation, creds = mails_to(transport, data["email"])
    assert confirmation.subject == "[ETRepo] Email confirmation request"
    assert code_from(confirmation.body)
    assert creds.subject == "[ETRepo] Your login credentials"
    assert creds.to_name == "Aurélien Lefèvre" and creds.to_addr == data["email"]
    body = creds.body
    assert body.startswith("Dear Aurélien Lefèvre,")
    assert re.search(r"^Username: alefevre$", body, re.MULTILINE)
    password = re.search(r"^Password: (\S+)$", body, re.MULTILINE)
    assert password and len(password.group(1)) == settings.PASSWORD_LENGTH
    assert "ssh alefevre@et.example.org" in body
    assert "must change this password at your first login" in body
    for mail in (confirmation, creds):
        assert "replies to it are not read" in mail.body
        assert f"write to {settings.HELPDESK_EMAIL}" in mail.body
    # the password is in the mail only, not in the history or the outbox after delivery
    with db.session() as session:
        details = " ".join(e.detail for e in session.query(RequestEvent).all())
        bodies = " ".join(m.body for m in session.query(OutboxMail).all())
    assert password.group(1) not in details and password.group(1) not in bodies


def test_the_provisioner_gets_an_ascii_gecos_and_paths_from_the_settings(
        client, transport, settings, db, clock):
    provisioner = RecordingProvisioner()
    worker = Worker(db, settings, provisioner, transport, clock)
    submit_and_confirm(client, worker, transport, applicant(first_name="Zoë",
                                                            last_name="Ødegård"))
    worker.process_jobs_once()
    (spec,) = provisioner.specs
    assert spec.username == "zodegard"
    assert spec.gecos == "Zoe Odegard"
    assert str(spec.home) == f"{settings.HOME_BASE}/zodegard"
    assert str(spec.workdir) == f"{settings.WORK_BASE}/zodegard"
    assert spec.shell == settings.USER_SHELL


def test_two_people_of_the_same_name_get_two_usernames(client, worker, transport):
    first = submit_and_confirm(client, worker, transport, applicant(first_name="John",
                                                                    last_name="Doe"))
    second = submit_and_confirm(client, worker, transport, applicant(first_name="Jane",
                                                                     last_name="Doe"))
    worker.process_jobs_once()
    assert get_request(client, first)["username"] == "jdoe"
    assert get_request(client, second)["username"] == "jdoe2"


def test_a_failing_provisioner_is_retried_after_a_backoff_then_failed(
        client, transport, settings, db, clock):
    provisioner = BrokenProvisioner()
    worker = Worker(db, settings, provisioner, transport, clock)
    data = applicant()
    request_id = submit_and_confirm(client, worker, transport, data)
    assert settings.PROVISION_MAX_ATTEMPTS == 3

    assert worker.process_jobs_once() == 0  # attempt 1 failed, will retry
    state = get_request(client, request_id)
    assert state["status"] == "confirmed" and state["failure_reason"] is None
    worker.process_jobs_once()
    clock.advance(RETRY_SECONDS - 1)
    worker.process_jobs_once()
    assert len(provisioner.attempts) == 1  # not before its time
    clock.advance(1)
    worker.process_jobs_once()
    assert len(provisioner.attempts) == 2
    clock.advance(2 * RETRY_SECONDS - 1)
    worker.process_jobs_once()
    assert len(provisioner.attempts) == 2  # the wait grew
    clock.advance(1)
    assert worker.process_jobs_once() == 1  # attempt 3: failed for good
    assert len(provisioner.attempts) == 3

    state = get_request(client, request_id)
    assert state["status"] == "failed"
    assert state["failure_reason"] == "useradd: group 'etusers' does not exist"
    assert "could not create your account" in state["description"]
    clock.advance(100_000)
    worker.process_jobs_once()
    assert len(provisioner.attempts) == 3
    worker.delivery.deliver_due()
    assert credentials(transport, data["email"]) == []
    assert count(db, OutboxMail, OutboxMail.kind == "credentials") == 0
    # The maintainers are told, once, with the reason and what to run.
    reports = [m for m in transport.sent if m.to_addr == settings.maintainers_email]
    assert len(reports) == 1
    assert reports[0].subject == f"[{settings.SITE_NAME}] Account request failed: Aurélien Lefèvre"
    assert "useradd: group 'etusers' does not exist" in reports[0].body
    assert f"etrepo requests retry {request_id}" in reports[0].body


def test_a_row_with_a_bad_name_never_reaches_the_provisioner_and_ends_failed(
        client, transport, settings, db, clock):
    """The worker trusts nothing it reads: a name that slipped into the database is refused."""
    provisioner = RecordingProvisioner()
    worker = Worker(db, settings, provisioner, transport, clock)
    request_id = submit_and_confirm(client, worker, transport, applicant())
    with db.session() as session:
        session.get(AccountRequest, request_id).last_name = "Lopez:0:0:root:/root:/bin/sh"
    for _ in range(settings.PROVISION_MAX_ATTEMPTS + 1):
        worker.process_jobs_once()
        clock.advance(3600)
    state = get_request(client, request_id)
    assert state["status"] == "failed"
    assert "last_name" in state["failure_reason"]
    assert provisioner.calls == []


def test_two_workers_never_take_the_same_job(client, transport, settings, db, clock):
    gate = GateProvisioner()
    other = RecordingProvisioner()
    first = Worker(db, settings, gate, transport, clock)
    second = Worker(db, settings, other, MemoryTransport(), clock)
    request_id = submit_and_confirm(client, first, transport, applicant())
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(first.process_jobs_once()))
    thread.start()
    try:
        assert gate.started.wait(10)
        assert second.process_jobs_once() == 0  # leased by the first
    finally:
        gate.release.set()
        thread.join(10)
    assert done == [1]
    assert other.calls == []
    assert get_request(client, request_id)["status"] == "active"


def test_workers_in_parallel_create_each_account_once(client, transport, settings, db, clock):
    provisioners = [RecordingProvisioner() for _ in range(3)]
    workers = [Worker(db, settings, p, t, clock)
               for p, t in zip(provisioners, [transport, MemoryTransport(), MemoryTransport()])]
    names = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Emmy", "Noether"),
             ("Kurt", "Gödel"), ("Lise", "Meitner")]
    ids = [submit_and_confirm(client, workers[0], transport,
                              applicant(first_name=f, last_name=last)) for f, last in names]
    at_once(worker.process_jobs_once for worker in workers)
    created = [name for p in provisioners for step, name in p.calls if step == "create_account"]
    assert sorted(created) == sorted(["alovelace", "aturing", "ghopper", "enoether", "kgodel",
                                      "lmeitner"])
    assert all(get_request(client, i)["status"] == "active" for i in ids)
    assert count(db, OutboxMail, OutboxMail.kind == "credentials") == len(names)


def test_a_refused_credentials_mail_is_reported_to_the_maintainers(
        client, transport, settings, db, clock):
    """The account exists but nobody can use it: the maintainers are told, once."""
    worker = Worker(db, settings, RecordingProvisioner(), transport, clock)
    data = applicant()
    request_id = submit_and_confirm(client, worker, transport, data)
    worker.process_jobs_once()
    transport.fail_with = MailError("554 mailbox unavailable", permanent=True)
    worker.delivery.deliver_due()
    transport.fail_with = None
    worker.delivery.deliver_due()
    reports = [m for m in transport.sent if m.to_addr == settings.maintainers_email]
    assert len(reports) == 1
    assert "Credentials mail refused" in reports[0].subject
    assert "554 mailbox unavailable" in reports[0].body
    assert "Password:" not in reports[0].body
    with db.session() as session:
        kinds = list(session.scalars(select(RequestEvent.kind).where(
            RequestEvent.request_id == request_id)))
    assert "credentials-lost" in kinds


class _BuggyProvisioner(RecordingProvisioner):
    """A provisioner with a bug: an exception no contract names."""

    def create_account(self, spec):  # type: ignore[no-untyped-def]
        raise KeyError("pw_uid")


def test_an_unexpected_error_is_still_a_counted_attempt_and_ends_failed(
        client, transport, settings, db, clock, caplog):
    worker = Worker(db, settings, _BuggyProvisioner(), transport, clock)
    request_id = submit_and_confirm(client, worker, transport, applicant())
    for _ in range(settings.PROVISION_MAX_ATTEMPTS):
        worker.process_jobs_once()
        clock.advance(3600)
    state = get_request(client, request_id)
    assert state["status"] == "failed" and "pw_uid" in state["failure_reason"]
    assert "unexpected error while provisioning" in caplog.text  # with its traceback, logged
    worker.delivery.deliver_due()
    assert [m for m in transport.sent if m.to_addr == settings.maintainers_email]


def test_a_worker_whose_lease_was_taken_leaves_the_job_to_the_new_owner(
        client, transport, settings, db, clock):
    """A job that outlived its lease was taken by another worker: the first must not mail
    credentials (the other one set the password that works)."""
    worker = Worker(db, settings, RecordingProvisioner(), transport, clock)
    request_id = submit_and_confirm(client, worker, transport, applicant())
    with db.session() as session:
        session.get(AccountRequest, request_id).lease_owner = "other-host:1:deadbeef"
    spec = worker._start(request_id)
    assert worker._finish(request_id, spec, [], "Pw-not-the-real-one") is False
    assert count(db, OutboxMail, OutboxMail.kind == "credentials") == 0
