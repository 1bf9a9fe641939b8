"""Shared fixtures: settings on a temporary instance folder, app, client, database, worker."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etrepo.app import create_app
from etrepo.clock import FrozenClock
from etrepo.config import Settings, load_settings
from etrepo.db import Database
from etrepo.mail.transport import MemoryTransport
from etrepo.provisioning.dryrun import DryRunProvisioner
from etrepo.provisioning.worker import Worker
from etrepo.services import Services
from tests.support.smtp import smtp_sink_factory  # noqa: F401  (a fixture)
from tests.support.sshd import sshd_server  # noqa: F401  (a fixture)

TEST_SECRET = "test-secret-" + "x" * 32


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings on a fresh instance folder; keyword arguments override settings."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "INSTANCE_DIR": str(tmp_path / "instance"),
            "SECRET_KEY": TEST_SECRET,
            "HOSTNAME": "et.example.org",
            "SMTP_HOST": "127.0.0.1",
            "PROVISIONER": "dry-run",
        }
        values.update(overrides)
        return load_settings(environ={}, overrides=values)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def services(settings: Settings, clock: FrozenClock, db: Database) -> Services:
    return Services.build(settings, clock, db=db)


@pytest.fixture
def app(settings: Settings, services: Services):  # type: ignore[no-untyped-def]
    application = create_app(settings, services=services)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def provisioner() -> DryRunProvisioner:
    return DryRunProvisioner()


@pytest.fixture
def worker(settings: Settings, db: Database, provisioner: DryRunProvisioner,
           transport: MemoryTransport, clock: FrozenClock) -> Worker:
    return Worker(db, settings, provisioner, transport, clock)


CODE_RE = re.compile(r"^\s+(\d{4,12})\s*$", re.MULTILINE)


def code_from(body: str) -> str:
    """The confirmation code: the digits on a line of their own."""
    match = CODE_RE.search(body)
    assert match, f"no code in mail body:\n{body}"
    return match.group(1)


def unique_email(prefix: str = "applicant") -> str:
    return f"{prefix}.{secrets.token_hex(4)}@example.org"


APPLICANT = {
    "first_name": "Aurélien",
    "last_name": "Lefèvre",
    "institution": "INFN Pisa",
    "email": "A.Lefevre@Example.ORG",
    "github": "alefevre",
}
