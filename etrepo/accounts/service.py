"""The request service: what the form and the API do, in one place.

Every method is one database transaction (or two, where a refused try must still be counted),
so a process killed at any point leaves either the old state or the new one.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from etrepo.accounts.codes import code_matches, generate_code, hash_code, normalize_code
from etrepo.accounts.errors import CodeDead, Conflict, NotFound, RateLimited, WrongCode
from etrepo.accounts.lifecycle import DESCRIPTIONS, HOLDS_ADDRESS, Status, check_transition
from etrepo.accounts.validation import Application, normalize_email, validate_application
from etrepo.clock import Clock
from etrepo.config import Settings
from etrepo.db import Database
from etrepo.mail import outbox, templates
from etrepo.models import AccountRequest, RateEvent, RequestEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestView:
    """What the outside may see of a request: no code, no hash, no lease."""

    id: str
    status: str
    description: str
    first_name: str
    last_name: str
    institution: str
    username: str | None
    failure_reason: str | None
    created_at: dt.datetime
    code_expires_at: dt.datetime | None
    resend_available_at: dt.datetime | None

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def set_status(request: AccountRequest, new: Status, now: dt.datetime) -> None:
    """The only way a request changes state: along the lifecycle's arrows, or an error.
    Staying in a state (a resumed job, a retry before any step ran) is no change."""
    if request.status != new:
        check_transition(request.status, new)
    request.status = new
    request.updated_at = now
    if new not in HOLDS_ADDRESS:
        request.email_claim = None  # the address is free for a new request


def add_event(session: Session, request_id: str, now: dt.datetime, kind: str,
              detail: str = "") -> None:
    session.add(RequestEvent(request_id=request_id, at=now, kind=kind, detail=detail))


class RequestService:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    # --- reading -----------------------------------------------------------------------
    def get(self, request_id: str) -> RequestView:
        with self.db.session() as session:
            return self._view(self._load(session, request_id))

    # --- submitting --------------------------------------------------------------------
    def submit(self, data: dict[str, object], client_addr: str = "") -> RequestView:
        """Store a new request and queue its confirmation mail. Validates everything first.

        Submitting the same application again while its code is valid (a double click, a
        second tab) returns the same request and sends no second mail. A different application
        for an address that is not confirmed yet replaces the old one: nothing is reserved
        before the address is confirmed.
        """
        application = validate_application(data)
        email_key = normalize_email(application.email)
        for _attempt in range(3):
            try:
                with self.db.session() as session:
                    return self._submit(session, application, email_key, client_addr)
            except IntegrityError:
                # Another process inserted a request for the same address between our read and
                # our insert; the unique constraint refused ours. Read theirs and decide again.
                continue
        raise Conflict("Too many simultaneous requests for this address; please try again.")

    def _submit(self, session: Session, app: Application, email_key: str,
                client_addr: str) -> RequestView:
        now = self.clock.now()
        existing = session.scalar(
            select(AccountRequest).where(AccountRequest.email_claim == email_key)
        )
        if existing is not None:
            if existing.status != Status.AWAITING_CONFIRMATION:
                raise Conflict(
                    "An account or a confirmed request already exists for this email address. "
                    f"If you need help, write to {self.settings.HELPDESK_EMAIL}."
                )
            same = (existing.first_name, existing.last_name, existing.institution,
                    existing.github, existing.email) == (
                        app.first_name, app.last_name, app.institution, app.github, app.email)
            code_alive = (existing.code_expires_at is not None and existing.code_expires_at > now
                          and existing.code_tries < self.settings.CODE_MAX_TRIES)
            if same and code_alive:
                return self._view(existing)
            self._close_unconfirmed(session, existing, now, "superseded",
                                    "a new request was submitted")
            session.flush()

        self._count_mail(session, client_addr, email_key, now)
        request = AccountRequest(
            # 128 random bits in hex: safe in URLs and on a command line (never starts with -).
            id=secrets.token_hex(16),
            status=Status.AWAITING_CONFIRMATION,
            first_name=app.first_name,
            last_name=app.last_name,
            institution=app.institution,
            email=app.email,
            email_normalized=email_key,
            email_claim=email_key,
            github=app.github,
            client_addr=client_addr[:64],
            code_tries=0,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(request)
        session.flush()  # the unique constraint on email_claim speaks here
        add_event(session, request.id, now, "submitted", f"from {client_addr or 'unknown'}")
        self._new_code(session, request, now)
        log.info("request %s submitted", request.id)
        return self._view(request)

    # --- confirming -------------------------------------------------------------------
    def confirm(self, request_id: str, code: str, client_addr: str = "") -> RequestView:
        """Check the code. Every try is counted before the comparison, atomically, so that
        parallel tries cannot exceed the limit."""
        length = self.settings.CODE_LENGTH
        if not isinstance(code, str) or not code.strip():
            raise WrongCode("Please enter the code from the mail.", self.settings.CODE_MAX_TRIES)
        if len(code) > 64 or not re.fullmatch(rf"\d{{{length}}}", normalize_code(code)):
            # Not a code at all (a typo, a pasted sentence): no try is used up, it cannot match.
            raise WrongCode(f"The code is the {length} digits in the mail.",
                            self.settings.CODE_MAX_TRIES)
        outcome: Exception | None = None
        with self.db.session() as session:
            request = self._load_unexpired(session, request_id)
            now = self.clock.now()
            if request.status != Status.AWAITING_CONFIRMATION:
                return self._view(request)  # confirming twice is harmless
            # Only wrong codes count against these limits (recorded below): a workshop behind
            # one address confirming thirty right codes is not a sweep.
            limit = self.settings.RATE_LIMIT_CONFIRMS
            wrong_keys = (f"confirm-ip:{client_addr}",
                          f"confirm-email:{request.email_normalized}")
            for key in wrong_keys:
                self._check_limit(session, key, limit, now, "Too many wrong codes.")

            max_tries = self.settings.CODE_MAX_TRIES
            if request.code_hash is None or (request.code_expires_at or now) <= now:
                outcome = CodeDead("This code has expired. Ask for a new code.")
            else:
                took = session.execute(
                    update(AccountRequest)
                    .where(AccountRequest.id == request.id,
                           AccountRequest.code_tries < max_tries)
                    .values(code_tries=AccountRequest.code_tries + 1)
                    .execution_options(synchronize_session=False)
                ).rowcount
                session.refresh(request)
                if took != 1:
                    outcome = CodeDead(
                        "This code can no longer be used after too many wrong tries. "
                        "Ask for a new code."
                    )
                elif code_matches(code, request.id, request.code_hash or "",
                                      self.settings.SECRET_KEY):
                    set_status(request, Status.CONFIRMED, now)
                    request.confirmed_at = now
                    request.code_hash = None
                    request.next_attempt_at = now
                    outbox.cancel_pending(session, request.id, "confirmation",
                                          "address already confirmed")
                    add_event(session, request.id, now, "confirmed")
                    log.info("request %s confirmed", request.id)
                    return self._view(request)
                else:
                    left = max_tries - request.code_tries
                    for key in wrong_keys:
                        session.add(RateEvent(key=key[:300], at=now))
                    add_event(session, request.id, now, "wrong-code", f"{left} tries left")
                    if left <= 0:
                        outcome = CodeDead(
                            "The code is not correct, and that was the last try for this code. "
                            "Ask for a new code."
                        )
                    else:
                        outcome = WrongCode(
                            f"The code is not correct. {left} "
                            f"{'try' if left == 1 else 'tries'} left.", left
                        )
        # The session is committed: the try is counted even though we refuse.
        raise outcome

    def resend(self, request_id: str, client_addr: str = "") -> RequestView:
        """A new code (the old one dies), at most once per cooldown."""
        with self.db.session() as session:
            request = self._load_unexpired(session, request_id)
            now = self.clock.now()
            if request.status != Status.AWAITING_CONFIRMATION:
                raise Conflict("This email address is already confirmed.")
            self._check_cooldown(request, now)
            self._count_mail(session, client_addr, request.email_normalized, now)
            # Conditional on the code we read: two simultaneous resends send one mail.
            taken = session.execute(
                update(AccountRequest)
                .where(AccountRequest.id == request.id,
                       AccountRequest.code_sent_at == request.code_sent_at)
                .values(code_sent_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                raise RateLimited("A new code was just sent.", self.settings.RESEND_COOLDOWN)
            session.refresh(request)
            self._new_code(session, request, now)
            add_event(session, request.id, now, "code-resent")
            return self._view(request)

    def withdraw(self, request_id: str) -> RequestView:
        """The applicant goes back to correct their details: an unconfirmed request is closed
        (its code dies). A confirmed one is past withdrawing and stays as it is."""
        with self.db.session() as session:
            request = self._load(session, request_id)
            if request.status == Status.AWAITING_CONFIRMATION:
                self._close_unconfirmed(session, request, self.clock.now(), "withdrawn",
                                        "the applicant went back to change their details")
            return self._view(request)

    # --- housekeeping -----------------------------------------------------------------
    def expire_stale(self) -> int:
        """Expire requests never confirmed within REQUEST_TTL; drop old rate counters."""
        now = self.clock.now()
        cutoff = now - dt.timedelta(seconds=self.settings.REQUEST_TTL)
        with self.db.session() as session:
            stale = session.scalars(
                select(AccountRequest).where(
                    AccountRequest.status == Status.AWAITING_CONFIRMATION,
                    AccountRequest.created_at < cutoff,
                )
            ).all()
            for request in stale:
                self._close_unconfirmed(session, request, now, "expired", "never confirmed")
            window = dt.timedelta(seconds=self.settings.RATE_LIMIT_WINDOW)
            session.execute(delete(RateEvent).where(RateEvent.at < now - window))
            return len(stale)

    # --- internals --------------------------------------------------------------------
    @staticmethod
    def _close_unconfirmed(session: Session, request: AccountRequest, now: dt.datetime,
                           kind: str, why: str) -> None:
        """Expire a request never confirmed: it frees its address and its code dies."""
        set_status(request, Status.EXPIRED, now)  # frees the address
        request.code_hash = None
        outbox.cancel_pending(session, request.id, "confirmation", why)
        add_event(session, request.id, now, kind, why)

    def _new_code(self, session: Session, request: AccountRequest, now: dt.datetime) -> None:
        code = generate_code(self.settings.CODE_LENGTH)
        request.code_hash = hash_code(code, request.id, self.settings.SECRET_KEY)
        request.code_expires_at = now + dt.timedelta(seconds=self.settings.CODE_TTL)
        request.code_tries = 0
        request.code_sent_at = now
        request.updated_at = now
        subject, body = templates.confirmation_mail(self.settings, request.display_name, code)
        # The previous code dies now: its mail, if still waiting, must not arrive after this one.
        outbox.cancel_pending(session, request.id, "confirmation", "a new code was sent")
        outbox.enqueue(session, now, kind="confirmation", to_addr=request.email,
                       to_name=request.display_name, subject=subject, body=body,
                       request_id=request.id, sensitive=True,
                       expires_at=request.code_expires_at)

    def _check_cooldown(self, request: AccountRequest, now: dt.datetime) -> None:
        cooldown = dt.timedelta(seconds=self.settings.RESEND_COOLDOWN)
        if request.code_sent_at is not None and now < request.code_sent_at + cooldown:
            wait = math.ceil((request.code_sent_at + cooldown - now).total_seconds())
            raise RateLimited(f"Please wait {wait} second{'s' if wait != 1 else ''} before "
                              "asking for a new code.", wait)

    def _count_mail(self, session: Session, client_addr: str, email_key: str,
                    now: dt.datetime) -> None:
        """Every code mailed counts per client address and per address mailed to: a new
        submission is as good as a resend for a code sweep or for flooding someone's inbox."""
        self._count(session, f"mail-ip:{client_addr}", self.settings.RATE_LIMIT_SUBMITS, now,
                    "Too many requests from your network.")
        self._count(session, f"mail-to:{email_key}", self.settings.RATE_LIMIT_MAILS_TO, now,
                    "Too many codes were sent to this address.")

    def _count(self, session: Session, key: str, limit: int, now: dt.datetime,
               message: str) -> None:
        """Count one action under ``key``; refuse it if the window already holds ``limit``."""
        self._check_limit(session, key, limit, now, message)
        session.add(RateEvent(key=key[:300], at=now))

    def _check_limit(self, session: Session, key: str, limit: int, now: dt.datetime,
                     message: str) -> None:
        window = dt.timedelta(seconds=self.settings.RATE_LIMIT_WINDOW)
        count, oldest = session.execute(
            select(func.count(), func.min(RateEvent.at))
            .where(RateEvent.key == key, RateEvent.at > now - window)
        ).one()
        if count >= limit:
            retry = math.ceil(((oldest or now) + window - now).total_seconds())
            minutes = math.ceil(retry / 60)
            raise RateLimited(f"{message} Please try again in {minutes} minute"
                              f"{'s' if minutes != 1 else ''}.", retry)

    @staticmethod
    def _load(session: Session, request_id: str) -> AccountRequest:
        request = None
        if isinstance(request_id, str) and 0 < len(request_id) <= 32:
            request = session.get(AccountRequest, request_id)
        if request is None:
            raise NotFound("No such request.")
        return request

    @classmethod
    def _load_unexpired(cls, session: Session, request_id: str) -> AccountRequest:
        request = cls._load(session, request_id)
        if request.status == Status.EXPIRED:
            raise CodeDead("This request is closed. Please submit the form again.")
        return request

    def _view(self, request: AccountRequest) -> RequestView:
        status = Status(request.status)
        resend_at = None
        if status == Status.AWAITING_CONFIRMATION and request.code_sent_at is not None:
            resend_at = request.code_sent_at + dt.timedelta(seconds=self.settings.RESEND_COOLDOWN)
        return RequestView(
            id=request.id,
            status=status.value,
            description=DESCRIPTIONS[status],
            first_name=request.first_name,
            last_name=request.last_name,
            institution=request.institution,
            username=request.username if status == Status.ACTIVE else None,
            failure_reason=request.failure_reason if status == Status.FAILED else None,
            created_at=request.created_at,
            code_expires_at=request.code_expires_at if status == Status.AWAITING_CONFIRMATION
            else None,
            resend_available_at=resend_at,
        )
