"""Driving the portal as an applicant and a maintainer would: post, read the mail, confirm.

Also: a throw-away PostgreSQL database, and
running the ``etrepo`` command with ``ETREPO_*`` pointing at a test's database.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from etrepo.db import Database
from etrepo.mail.interfaces import OutgoingMail
from etrepo.mail.transport import MemoryTransport
from tests.conftest import APPLICANT, code_from, unique_email
from tests.support.requirements import need

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


# --- the applicant -------------------------------------------------------------------------
def applicant(**changes: Any) -> dict[str, Any]:
    """The standard applicant with a fresh address (and ``changes``)."""
    data: dict[str, Any] = {**APPLICANT, "email": unique_email()}
    data.update(changes)
    return data


def _env(addr: str | None) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": addr}} if addr else {}


def post_request(client: Any, data: dict[str, Any], addr: str | None = None) -> Any:
    return client.post("/api/v1/requests", json=data, **_env(addr))


def post_confirm(client: Any, request_id: str, code: str, addr: str | None = None) -> Any:
    return client.post(f"/api/v1/requests/{request_id}/confirm", json={"code": code},
                       **_env(addr))


def post_resend(client: Any, request_id: str, addr: str | None = None) -> Any:
    return client.post(f"/api/v1/requests/{request_id}/resend", **_env(addr))


def get_request(client: Any, request_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{request_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def mails_to(transport: MemoryTransport, addr: str) -> list[OutgoingMail]:
    return [mail for mail in transport.sent if mail.to_addr == addr]


def latest_code(worker: Any, transport: MemoryTransport, addr: str) -> str:
    """Deliver what is due, then read the code of the newest mail to ``addr``."""
    worker.delivery.deliver_due()
    mails = [m for m in mails_to(transport, addr) if "confirmation" in m.subject.lower()]
    assert mails, f"no confirmation mail to {addr}: {transport.sent}"
    return code_from(mails[-1].body)


def wrong_code(right: str) -> str:
    """A code of the same length that is not ``right``."""
    return "".join(str((int(c) + 1) % 10) for c in right)


def submit_and_confirm(client: Any, worker: Any, transport: MemoryTransport,
                       data: dict[str, Any]) -> str:
    response = post_request(client, data)
    assert response.status_code == 201, response.get_json()
    request_id = response.get_json()["id"]
    code = latest_code(worker, transport, data["email"])
    confirmed = post_confirm(client, request_id, code)
    assert confirmed.status_code == 200, confirmed.get_json()
    return request_id


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# --- waiting for threads --------------------------------------------------------------------
def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    done = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        done.wait(0.01)  # a poll interval, not a synchronisation


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(name="pg_url")
def pg_url_fixture() -> Iterator[str]:
    """A new, empty PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a test dependency
        need(False, "psycopg is not installed (pip install 'psycopg[binary]')")
        raise
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        need(False, f"PostgreSQL not reachable as postgres@127.0.0.1:5432: "
                    f"{str(exc).strip().splitlines()[0]}")
        raise
    name = "etrepo_test_" + secrets.token_hex(6)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_URL.format(name=name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_cli(args: list[str], env: dict[str, str]) -> Result:
    """``etrepo ARGS`` in-process with ``env``; the root logger is put back afterwards."""
    from etrepo.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def cli_env(settings: Any, **extra: str) -> dict[str, str]:
    """ETREPO_* variables that make the command see the same database as ``settings``."""
    env = {"ETREPO_CONFIG": "", "ETREPO_DATABASE_URL": settings.database_url,
           "ETREPO_INSTANCE_DIR": settings.INSTANCE_DIR, "ETREPO_SECRET_KEY": "x" * 40}
    env.update(extra)
    return env



# --- a whole portal on any database ----------------------------------------------------------
class Stack:
    """App, client, worker and in-memory mail on the database of ``settings``."""

    def __init__(self, settings: Any, clock: Any) -> None:
        from etrepo.app import create_app
        from etrepo.provisioning.dryrun import DryRunProvisioner
        from etrepo.provisioning.worker import Worker
        from etrepo.services import Services

        self.settings = settings
        self.db = Database(settings.database_url)
        self.db.upgrade()
        self.services = Services.build(settings, clock, db=self.db)
        self.app = create_app(settings, services=self.services)
        self.app.config["TESTING"] = True
        self.client = self.app.test_client()
        self.transport = MemoryTransport()
        self.worker = Worker(self.db, settings, DryRunProvisioner(), self.transport, clock)

    def close(self) -> None:
        self.db.dispose()


def race_two_submits(app: Any, monkeypatch: pytest.MonkeyPatch,
                     data: dict[str, Any]) -> tuple[list[Any], int]:
    """Two clients post ``data`` at once; both have looked for an existing request before
    either inserts, so only the database's unique constraint can keep them to one row.

    Returns the two responses and how many times the service tried to store a request.
    """
    from etrepo.accounts.service import RequestService

    both_looked = threading.Barrier(2)
    real_count, real_submit = RequestService._count, RequestService._submit
    tries: list[int] = []

    def count_after_both_looked(self, session, key, *args):  # type: ignore[no-untyped-def]
        if key.startswith("mail-ip:"):
            both_looked.wait(10)  # synchronisation between the two, with a deadline
        return real_count(self, session, key, *args)

    def counted_submit(self, *args):  # type: ignore[no-untyped-def]
        tries.append(1)
        return real_submit(self, *args)

    monkeypatch.setattr(RequestService, "_count", count_after_both_looked)
    monkeypatch.setattr(RequestService, "_submit", counted_submit)
    responses: list[Any] = [None, None]
    errors: list[BaseException] = []

    def post(slot: int) -> None:
        try:
            responses[slot] = app.test_client().post("/api/v1/requests", json=data)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    return responses, len(tries)
