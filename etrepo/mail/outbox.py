"""The outbox: every mail is a row first; the worker delivers it, retrying with backoff."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from etrepo import leases
from etrepo.clock import Clock
from etrepo.db import Database
from etrepo.mail.interfaces import MailError, MailTransport, OutgoingMail
from etrepo.models import OutboxMail

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
FIRST_RETRY_SECONDS = 10
WIPED = "(removed after delivery)"


def enqueue(session: Session, now: dt.datetime, *, kind: str, to_addr: str, to_name: str,
            subject: str, body: str, request_id: str | None = None,
            sensitive: bool = False, expires_at: dt.datetime | None = None) -> OutboxMail:
    """Add a mail to the outbox in the caller's transaction: it exists iff the caller commits.

    A mail with ``expires_at`` (a code that dies) is cancelled rather than sent late.
    """
    mail = OutboxMail(kind=kind, request_id=request_id, to_addr=to_addr, to_name=to_name,
                      subject=subject, body=body, sensitive=sensitive, status="pending",
                      attempts=0, next_attempt_at=now, created_at=now, expires_at=expires_at)
    session.add(mail)
    return mail


def cancel_pending(session: Session, request_id: str, kind: str, why: str) -> int:
    """Cancel the request's mails of ``kind`` not sent yet (a code replaced or no longer
    needed): a late mail would only hand the applicant a dead code."""
    mails = session.scalars(select(OutboxMail).where(
        OutboxMail.request_id == request_id, OutboxMail.kind == kind,
        OutboxMail.status == "pending")).all()
    for mail in mails:
        _close(mail, "cancelled", why)
    return len(mails)


def _close(mail: OutboxMail, status: str, why: str | None) -> None:
    mail.status = status
    mail.last_error = why
    mail.lease_owner = None
    mail.lease_until = None
    if mail.sensitive:  # delivered, or never will be: the secret has no reason to stay
        mail.body = WIPED


def retry_now(session: Session, now: dt.datetime) -> int:
    """Make every pending mail due now (after an SMTP outage is over)."""
    return session.execute(
        update(OutboxMail).where(OutboxMail.status == "pending", OutboxMail.next_attempt_at > now)
        .values(next_attempt_at=now)
    ).rowcount


def backoff_seconds(attempts: int, cap: int) -> int:
    return leases.backoff_seconds(attempts, FIRST_RETRY_SECONDS, cap)


GiveUpHook = Callable[[Session, OutboxMail, dt.datetime], None]


class OutboxDelivery:
    def __init__(self, db: Database, transport: MailTransport, clock: Clock,
                 max_backoff: int = 1800, owner: str | None = None,
                 on_give_up: GiveUpHook | None = None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        """``on_give_up`` runs in the transaction that marks a mail failed for good (to tell
        someone: a lost credentials mail locks an applicant out)."""
        self.db = db
        self.transport = transport
        self.clock = clock
        self.max_backoff = max_backoff
        self.owner = owner or leases.new_owner()
        self.on_give_up = on_give_up
        self.lease_seconds = lease_seconds  # longer than one delivery can take

    def deliver_due(self, limit: int = 50) -> int:
        """Try every due mail once; returns how many were handled (sent or given up)."""
        now = self.clock.now()
        with self.db.session() as session:
            ids = session.scalars(
                select(OutboxMail.id)
                .where(OutboxMail.status == "pending", OutboxMail.next_attempt_at <= now,
                       or_(OutboxMail.lease_until.is_(None), OutboxMail.lease_until < now))
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(limit)
            ).all()
        handled = 0
        for mail_id in ids:
            if self._deliver_one(mail_id):
                handled += 1
        return handled

    def _deliver_one(self, mail_id: int) -> bool:
        with self.db.session() as session:
            if not leases.claim(session, OutboxMail, mail_id, self.owner, self.clock.now(),
                                self.lease_seconds, OutboxMail.status == "pending"):
                return False
            mail = session.get(OutboxMail, mail_id)
            assert mail is not None
            if mail.expires_at is not None and mail.expires_at <= self.clock.now():
                _close(mail, "cancelled", "expired before it could be delivered")
                log.info("mail %s (%s) to %s expired undelivered", mail.id, mail.kind,
                         mail.to_addr)
                return True
            key = f"etrepo-outbox-{mail.id}.{mail.created_at:%Y%m%d%H%M%S%f}"
            outgoing = OutgoingMail(to_addr=mail.to_addr, to_name=mail.to_name,
                                    subject=mail.subject, body=mail.body, message_key=key)
        error: MailError | None = None
        try:
            self.transport.send(outgoing)
        except MailError as exc:
            error = exc
        except ValueError as exc:  # the mail itself is malformed (bad address): no retry helps
            error = MailError(f"mail not sendable: {exc}", permanent=True)
        with self.db.session() as session:
            mail = session.get(OutboxMail, mail_id)
            assert mail is not None
            now = self.clock.now()
            mail.attempts += 1
            mail.lease_owner = None
            mail.lease_until = None
            if mail.status != "pending":
                return True  # cancelled while we were sending: the record stays as it is
            if error is None:
                _close(mail, "sent", None)
                mail.sent_at = now
                log.info("mail %s (%s) delivered to %s", mail.id, mail.kind, mail.to_addr)
                return True
            mail.last_error = str(error)[:1000]
            if error.permanent:
                if self.on_give_up is not None:
                    self.on_give_up(session, mail, now)
                _close(mail, "failed", mail.last_error)
                log.error("mail %s (%s) to %s refused for good: %s", mail.id, mail.kind,
                          mail.to_addr, error)
                return True
            wait = backoff_seconds(mail.attempts, self.max_backoff)
            mail.next_attempt_at = now + dt.timedelta(seconds=wait)
            log.warning("mail %s (%s) to %s not delivered (attempt %d), next try in %ds: %s",
                        mail.id, mail.kind, mail.to_addr, mail.attempts, wait, error)
            return False


def backlog(session: Session) -> dict[str, int]:
    """Mails by status, for the maintainers' view."""
    rows = session.execute(select(OutboxMail.status, func.count()).group_by(OutboxMail.status))
    return {status: count for status, count in rows}
