"""The worker: delivers the outbox and turns confirmed requests into accounts.

It is the only process that needs root. It shares nothing with the web process but the
database, and it trusts nothing it reads there: names are validated again before any command.
Each job is done in steps that are each safe to repeat, so a worker killed at any moment and
started again finishes the job without a duplicate user and without an error.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from etrepo import leases
from etrepo.accounts.lifecycle import Status
from etrepo.accounts.service import RequestService, add_event, set_status
from etrepo.accounts.usernames import choose_username, gecos
from etrepo.accounts.validation import ValidationError, validate_application
from etrepo.clock import Clock
from etrepo.config import Settings
from etrepo.db import Database
from etrepo.mail import outbox, templates
from etrepo.mail.interfaces import MailTransport
from etrepo.models import AccountRequest, OutboxMail
from etrepo.provisioning.interfaces import AccountSpec, Provisioner, ProvisioningError
from etrepo.provisioning.linux import generate_password

log = logging.getLogger(__name__)

# Longer than the longest job: up to five commands of linux.COMMAND_TIMEOUT (120 s) each.
JOB_LEASE_SECONDS = 900
RETRY_SECONDS = 30
RETRY_MAX_SECONDS = 3600
HOUSEKEEPING_SECONDS = 60


class Worker:
    def __init__(self, db: Database, settings: Settings, provisioner: Provisioner,
                 transport: MailTransport, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.provisioner = provisioner
        self.clock = clock
        self.owner = leases.new_owner()
        self.delivery = outbox.OutboxDelivery(
            db, transport, clock, settings.MAIL_MAX_BACKOFF, self.owner,
            on_give_up=self._mail_given_up,
            # connect, (STARTTLS,) login, send, quit: each may take up to SMTP_TIMEOUT
            lease_seconds=max(outbox.LEASE_SECONDS, 60 + 5 * settings.SMTP_TIMEOUT))
        self.requests = RequestService(db, settings, clock)

    def check(self) -> None:
        """Raise ProvisioningError if the settings cannot work on this machine."""
        self.provisioner.preflight(self.settings.user_groups, self.settings.USER_SHELL)

    # --- jobs ---------------------------------------------------------------------------
    def process_jobs_once(self, limit: int = 20) -> int:
        """Provision every due confirmed request; returns how many were finished or failed."""
        now = self.clock.now()
        with self.db.session() as session:
            ids = session.scalars(
                select(AccountRequest.id)
                .where(
                    AccountRequest.status.in_([Status.CONFIRMED, Status.PROVISIONING]),
                    or_(AccountRequest.next_attempt_at.is_(None),
                        AccountRequest.next_attempt_at <= now),
                    or_(AccountRequest.lease_until.is_(None), AccountRequest.lease_until < now),
                )
                .order_by(AccountRequest.confirmed_at)
                .limit(limit)
            ).all()
        done = 0
        for request_id in ids:
            with self.db.session() as session:
                if not leases.claim(
                    session, AccountRequest, request_id, self.owner, self.clock.now(),
                    JOB_LEASE_SECONDS,
                    AccountRequest.status.in_([Status.CONFIRMED, Status.PROVISIONING]),
                    # Counted with the claim: a request whose data fail the checks still uses
                    # up its attempts and ends failed, instead of being retried for ever.
                    attempts=AccountRequest.attempts + 1,
                ):
                    continue  # another worker has it
            if self._provision(request_id):
                done += 1
        return done

    def _provision(self, request_id: str) -> bool:
        try:
            spec = self._start(request_id)
            actions = self.provisioner.create_account(spec)
            password = generate_password(self.settings.PASSWORD_LENGTH)
            actions += self.provisioner.set_initial_password(spec.username, password)
        except (ProvisioningError, ValidationError, ValueError, OSError) as exc:
            return self._fail(request_id, exc)
        except Exception as exc:  # a bug or the database: still a counted, bounded attempt
            log.exception("request %s: unexpected error while provisioning", request_id)
            return self._fail(request_id, exc)
        return self._finish(request_id, spec, actions, password)

    def _start(self, request_id: str) -> AccountSpec:
        """Mark the request provisioning and fix its username, in one transaction."""
        with self.db.session() as session:
            request = session.get(AccountRequest, request_id)
            assert request is not None
            now = self.clock.now()
            set_status(request, Status.PROVISIONING, now)
            # Trust nothing from the database: the same rules as the form, once more.
            application = validate_application({
                "first_name": request.first_name, "last_name": request.last_name,
                "institution": request.institution, "email": request.email,
                "github": request.github,
            })
            if request.username is None:
                request.username = choose_username(
                    application.first_name, application.last_name, self._name_taken(session)
                )
                add_event(session, request.id, now, "username", request.username)
            add_event(session, request.id, now, "provisioning",
                      f"attempt {request.attempts} by {self.provisioner.name}")
            username = request.username
            full_name = gecos(application.first_name, application.last_name)
        # The provisioner checks the spec once more (username, GECOS, paths) before a command.
        return AccountSpec(
            username=username,
            gecos=full_name,
            home=Path(self.settings.HOME_BASE) / username,
            workdir=Path(self.settings.WORK_BASE) / username,
            shell=self.settings.USER_SHELL,
            groups=self.settings.user_groups,
        )

    def _name_taken(self, session):  # type: ignore[no-untyped-def]
        def taken(name: str) -> bool:
            in_db = session.scalar(
                select(AccountRequest.id).where(AccountRequest.username == name)
            )
            return in_db is not None or self.provisioner.name_taken(name)

        return taken

    def _still_ours(self, request: AccountRequest) -> bool:
        """False if our lease ran out and another worker took the job: it finishes it."""
        if request.lease_owner == self.owner:
            return True
        log.warning("request %s: lease lost to %s; leaving the job to it", request.id,
                    request.lease_owner)
        return False

    def _finish(self, request_id: str, spec: AccountSpec, actions: list[str],
                password: str) -> bool:
        with self.db.session() as session:
            request = session.get(AccountRequest, request_id)
            assert request is not None
            if not self._still_ours(request):
                return False
            now = self.clock.now()
            for action in actions:
                add_event(session, request.id, now, "action", action)
            subject, body = templates.credentials_mail(
                self.settings, request.display_name, spec.username, password
            )
            outbox.enqueue(session, now, kind="credentials", to_addr=request.email,
                           to_name=request.display_name, subject=subject, body=body,
                           request_id=request.id, sensitive=True)
            set_status(request, Status.ACTIVE, now)
            request.activated_at = now
            request.failure_reason = None
            request.lease_owner = None
            request.lease_until = None
            add_event(session, request.id, now, "active", spec.username)
        log.info("request %s: account %s ready (%s)", request_id, spec.username,
                 self.provisioner.name)
        return True

    def _fail(self, request_id: str, exc: Exception) -> bool:
        """Record a failed attempt; True if it was the last one (the request is failed)."""
        reason = str(exc)[:2000] or type(exc).__name__
        with self.db.session() as session:
            request = session.get(AccountRequest, request_id)
            assert request is not None
            if not self._still_ours(request):
                return False
            now = self.clock.now()
            request.failure_reason = reason
            request.lease_owner = None
            request.lease_until = None
            if request.attempts >= self.settings.PROVISION_MAX_ATTEMPTS:
                set_status(request, Status.FAILED, now)
                add_event(session, request.id, now, "failed", reason)
                # Told once, in the same transaction as the failure: no failure goes unreported
                # and a rerun does not report it twice.
                self._tell_maintainers(session, now, request.id, *templates.failure_report(
                    self.settings, request.id, request.display_name, request.email,
                    request.attempts, reason))
                log.error("request %s failed for good after %d attempts: %s", request.id,
                          request.attempts, reason)
                return True
            set_status(request, Status.CONFIRMED, now)
            wait = leases.backoff_seconds(request.attempts, RETRY_SECONDS, RETRY_MAX_SECONDS)
            request.next_attempt_at = now + dt.timedelta(seconds=wait)
            add_event(session, request.id, now, "attempt-failed", reason)
            log.warning("request %s: attempt %d failed, retry in %ds: %s", request.id,
                        request.attempts, wait, reason)
            return False

    def _mail_given_up(self, session: Session, mail: OutboxMail, now: dt.datetime) -> None:
        """A credentials mail refused for good leaves an account nobody can use: say so."""
        if mail.kind != "credentials" or mail.request_id is None:
            return
        request = session.get(AccountRequest, mail.request_id)
        if request is None:
            return
        add_event(session, request.id, now, "credentials-lost", mail.last_error or "")
        self._tell_maintainers(session, now, request.id, *templates.credentials_lost_report(
            self.settings, request.id, request.display_name, request.email,
            request.username or "?", mail.last_error or ""))

    def _tell_maintainers(self, session: Session, now: dt.datetime, request_id: str,
                          subject: str, body: str) -> None:
        """In the caller's transaction, so a report is queued once with what it reports."""
        outbox.enqueue(session, now, kind="failure-report",
                       to_addr=self.settings.maintainers_email,
                       to_name=f"{self.settings.SITE_NAME} maintainers",
                       subject=subject, body=body, request_id=request_id)

    # --- the loop -----------------------------------------------------------------------
    def recover(self) -> None:
        """Release what dead workers of this host held, so their jobs resume now."""
        with self.db.session() as session:
            freed = leases.release_dead_local_leases(session, AccountRequest)
            freed += leases.release_dead_local_leases(session, outbox.OutboxMail)
        if freed:
            log.info("resumed %d jobs or mails left by a stopped worker", freed)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set: one thread for mail, this one for jobs."""
        self.recover()
        mail_thread = threading.Thread(target=self._mail_loop, args=(stop,), name="outbox",
                                       daemon=True)
        mail_thread.start()
        last_housekeeping = float("-inf")  # first clean-up at once
        interval = self.settings.WORKER_POLL_INTERVAL
        while not stop.is_set():
            try:
                busy = self.process_jobs_once() > 0
                if time.monotonic() - last_housekeeping > HOUSEKEEPING_SECONDS:
                    last_housekeeping = time.monotonic()
                    expired = self.requests.expire_stale()
                    if expired:
                        log.info("expired %d unconfirmed requests", expired)
            except Exception:
                log.exception("job loop error; going on")
                busy = False
            if not busy:
                stop.wait(interval)
        mail_thread.join(timeout=30)

    def _mail_loop(self, stop: threading.Event) -> None:
        interval = self.settings.WORKER_POLL_INTERVAL
        while not stop.is_set():
            try:
                busy = self.delivery.deliver_due() > 0
            except Exception:
                log.exception("outbox loop error; going on")
                busy = False
            if not busy:
                stop.wait(interval)


def build_worker(settings: Settings, db: Database | None = None,
                 clock: Clock | None = None) -> Worker:
    """The worker the settings describe: its provisioner and its SMTP transport."""
    from etrepo.clock import SystemClock
    from etrepo.mail.transport import SmtpTransport
    from etrepo.provisioning.backends import make_provisioner

    return Worker(db or Database(settings.database_url), settings, make_provisioner(settings),
                  SmtpTransport.from_settings(settings), clock or SystemClock())
