"""Database tables. A request's whole life, every mail and every limit counter is a row here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so that Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRequest(Base):
    """One applicant's request, from the form to a working account."""

    __tablename__ = "account_requests"

    # Unguessable: it is the capability to see the request's status and to confirm it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), index=True)

    first_name: Mapped[str] = mapped_column(String(64))
    last_name: Mapped[str] = mapped_column(String(64))
    institution: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))  # as typed: mail goes there
    email_normalized: Mapped[str] = mapped_column(String(254), index=True)
    # Set while the request holds its address (any open or active state), NULL otherwise: the
    # unique constraint makes "one open request or account per address" hold under races.
    email_claim: Mapped[str | None] = mapped_column(String(254), unique=True)
    github: Mapped[str | None] = mapped_column(String(39))
    client_addr: Mapped[str] = mapped_column(String(64), default="")

    code_hash: Mapped[str | None] = mapped_column(String(128))
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    code_tries: Mapped[int] = mapped_column(Integer, default=0)
    code_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    username: Mapped[str | None] = mapped_column(String(32), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    failure_reason: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class RequestEvent(Base):
    """The history of a request: what happened, and what a provisioner did or would do."""

    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("account_requests.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboxMail(Base):
    """A mail waiting for, or past, delivery. Written before anything tries to send it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("account_requests.id"), index=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # Bodies holding a secret (a code, a password) are wiped once delivered.
    sensitive: Mapped[bool] = mapped_column(default=False)
    # pending | sent | failed (refused for good) | cancelled (no longer of use, or expired)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class RateEvent(Base):
    """One counted action for a rate limit (a code try, a submit), by key."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[dt.datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_rate_events_key_at", "key", "at"),)
