"""The outbox: every mail leaves once, waits longer after each failure, and forgets secrets."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from etrepo.mail import outbox
from etrepo.mail.interfaces import MailError, OutgoingMail
from etrepo.mail.outbox import WIPED, OutboxDelivery, backoff_seconds
from etrepo.mail.transport import MemoryTransport
from etrepo.models import OutboxMail
from tests.support.processes import at_once


def enqueue(db, clock, *, to="zoe@example.org", body="Hello", sensitive=False,
            kind="notice") -> int:
    with db.session() as session:
        mail = outbox.enqueue(session, clock.now(), kind=kind, to_addr=to, to_name="Zoë Ødegård",
                              subject="[ETRepo] test", body=body, sensitive=sensitive)
        session.flush()
        return mail.id


def row(db, mail_id) -> OutboxMail:
    with db.session() as session:
        mail = session.get(OutboxMail, mail_id)
        assert mail is not None
        return mail


def test_a_mail_is_delivered_once(db, clock):
    transport = MemoryTransport()
    delivery = OutboxDelivery(db, transport, clock)
    mail_id = enqueue(db, clock, body="Hallo Zoë")
    delivered_at = clock.now()
    assert delivery.deliver_due() == 1
    assert delivery.deliver_due() == 0
    clock.advance(10_000)
    assert delivery.deliver_due() == 0
    assert [(m.to_addr, m.to_name, m.body) for m in transport.sent] == [
        ("zoe@example.org", "Zoë Ødegård", "Hallo Zoë")]
    stored = row(db, mail_id)
    assert stored.status == "sent" and stored.sent_at == delivered_at
    assert stored.body == "Hallo Zoë"  # not sensitive: kept for the maintainers


@pytest.mark.parametrize("kind", ["confirmation", "credentials"])
def test_a_sensitive_body_is_wiped_after_delivery(db, clock, kind):
    transport = MemoryTransport()
    secret = "Username: zodegard\nPassword: Xy7-secret-Pw\n"
    mail_id = enqueue(db, clock, body=secret, sensitive=True, kind=kind)
    OutboxDelivery(db, transport, clock).deliver_due()
    assert transport.sent[0].body == secret  # the applicant got it
    stored = row(db, mail_id)
    assert stored.status == "sent"
    assert stored.body == WIPED and "Xy7-secret-Pw" not in stored.body


def test_a_sensitive_body_waits_intact_while_delivery_fails(db, clock):
    transport = MemoryTransport(fail_with=MailError("connection refused"))
    mail_id = enqueue(db, clock, body="code 123456", sensitive=True)
    OutboxDelivery(db, transport, clock).deliver_due()
    assert row(db, mail_id).body == "code 123456"  # still needed for the next try


def test_backoff_grows_and_is_capped():
    waits = [backoff_seconds(n, 600) for n in range(1, 10)]
    assert waits == [10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert backoff_seconds(50, 1800) == 1800


def test_failed_deliveries_wait_longer_each_time_up_to_the_cap(db, clock):
    transport = MemoryTransport(fail_with=MailError("SMTP 127.0.0.1:25: connection refused"))
    delivery = OutboxDelivery(db, transport, clock, max_backoff=60)
    mail_id = enqueue(db, clock)
    waits = []
    for _ in range(6):
        before = row(db, mail_id).attempts
        assert delivery.deliver_due() == 0
        stored = row(db, mail_id)
        assert stored.attempts == before + 1 and stored.status == "pending"
        wait = (stored.next_attempt_at - clock.now()).total_seconds()
        waits.append(wait)
        clock.advance(wait - 1)
        delivery.deliver_due()
        assert row(db, mail_id).attempts == before + 1  # not tried before its time
        clock.advance(1)
    assert waits == [10, 20, 40, 60, 60, 60]
    assert "connection refused" in row(db, mail_id).last_error
    transport.fail_with = None
    assert delivery.deliver_due() == 1
    assert row(db, mail_id).status == "sent" and row(db, mail_id).last_error is None


def test_a_permanent_error_marks_the_mail_failed(db, clock):
    transport = MemoryTransport(fail_with=MailError("550 no such user", permanent=True))
    delivery = OutboxDelivery(db, transport, clock)
    mail_id = enqueue(db, clock)
    assert delivery.deliver_due() == 1  # handled: given up
    stored = row(db, mail_id)
    assert stored.status == "failed" and "550 no such user" in stored.last_error
    transport.fail_with = None
    clock.advance(100_000)
    assert delivery.deliver_due() == 0
    assert transport.sent == []
    with db.session() as session:
        assert outbox.backlog(session) == {"failed": 1}


def test_a_sensitive_mail_refused_for_good_forgets_its_secret(db, clock):
    transport = MemoryTransport(fail_with=MailError("550 no such user", permanent=True))
    mail_id = enqueue(db, clock, body="Password: s3cret-Pass", sensitive=True, kind="credentials")
    OutboxDelivery(db, transport, clock).deliver_due()
    stored = row(db, mail_id)
    assert stored.status == "failed" and stored.body == WIPED


def test_a_mail_that_cannot_be_built_fails_without_blocking_the_others(db, clock):
    transport = MemoryTransport()
    delivery = OutboxDelivery(db, transport, clock)
    bad = enqueue(db, clock, to="a,b@example.org")
    good = enqueue(db, clock, to="zoe@example.org")
    delivery.deliver_due()
    assert row(db, good).status == "sent"
    assert row(db, bad).status == "failed"
    assert "not valid" in row(db, bad).last_error
    assert [m.to_addr for m in transport.sent] == ["zoe@example.org"]


class GateTransport(MemoryTransport):
    """Holds every send until ``release`` is set; tells when a send has started."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def send(self, mail: OutgoingMail) -> None:
        self.started.set()
        assert self.release.wait(10), "never released"
        super().send(mail)


def test_a_mail_being_sent_is_not_taken_by_a_second_delivery(db, clock):
    first, second = GateTransport(), MemoryTransport()
    mail_id = enqueue(db, clock)
    one = OutboxDelivery(db, first, clock)
    two = OutboxDelivery(db, second, clock)
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(one.deliver_due()))
    thread.start()
    try:
        assert first.started.wait(10)
        assert two.deliver_due() == 0  # leased by the first
    finally:
        first.release.set()
        thread.join(10)
    assert results == [1]
    assert len(first.sent) == 1 and second.sent == []
    assert row(db, mail_id).attempts == 1


def test_two_deliveries_in_parallel_send_each_mail_once(db, clock):
    ids = [enqueue(db, clock, to=f"user{n}@example.org") for n in range(30)]
    transports = [MemoryTransport() for _ in range(3)]
    deliveries = [OutboxDelivery(db, t, clock) for t in transports]
    at_once(delivery.deliver_due for delivery in deliveries)
    sent = [m.to_addr for t in transports for m in t.sent]
    assert sorted(sent) == sorted(f"user{n}@example.org" for n in range(30))
    assert all(row(db, i).status == "sent" and row(db, i).attempts == 1 for i in ids)


def test_a_mail_past_its_expiry_is_cancelled_not_sent(db, clock):
    transport = MemoryTransport()
    with db.session() as session:
        mail = outbox.enqueue(session, clock.now(), kind="confirmation", to_addr="z@example.org",
                              to_name="Z", subject="code", body="    123456", sensitive=True,
                              expires_at=clock.now() + dt.timedelta(seconds=60))
        session.flush()
        mail_id = mail.id
    clock.advance(61)  # SMTP was down all that time
    assert OutboxDelivery(db, transport, clock).deliver_due() == 1
    assert transport.sent == []
    stored = row(db, mail_id)
    assert (stored.status, stored.body) == ("cancelled", WIPED)


def test_every_attempt_at_one_mail_carries_the_same_message_id(db, clock):
    """A mail sent twice (killed between the server's 250 and our commit) is one to clients."""
    from etrepo.mail.transport import build_message

    transport = MemoryTransport(fail_with=MailError("451 try later"))
    delivery = OutboxDelivery(db, transport, clock)
    enqueue(db, clock)
    keys = []
    for _ in range(2):
        transport.fail_with = None
        delivery.deliver_due()
        keys.append(transport.sent[-1].message_key)
        with db.session() as session:  # as if the commit of 'sent' had been lost
            session.get(OutboxMail, 1).status = "pending"
        clock.advance(3600)
    assert keys[0] == keys[1] != ""
    assert build_message(transport.sent[0], "ETRepo <no-reply@et.example.org>")[
        "Message-ID"] == f"<{keys[0]}@et.example.org>"


def test_retry_now_makes_waiting_mails_due_at_once(db, clock):
    transport = MemoryTransport(fail_with=MailError("connection refused"))
    delivery = OutboxDelivery(db, transport, clock)
    enqueue(db, clock)
    delivery.deliver_due()
    transport.fail_with = None
    assert delivery.deliver_due() == 0  # waiting for its backoff
    with db.session() as session:
        assert outbox.retry_now(session, clock.now()) == 1
    assert delivery.deliver_due() == 1 and len(transport.sent) == 1
