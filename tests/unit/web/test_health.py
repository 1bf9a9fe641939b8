"""/healthz: ok only when the database answers with its tables; otherwise 503, quietly."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from etrepo.app import create_app
from etrepo.db import Database

NOT_READY = {"status": "unavailable", "reason": "database not ready: run `etrepo db upgrade`"}


@pytest.fixture
def app_on(make_settings):  # type: ignore[no-untyped-def]
    """``app_on(**settings)``: an app with its own database, as ``etrepo serve`` builds it."""
    apps = []

    def make(**overrides):  # type: ignore[no-untyped-def]
        app = create_app(make_settings(**overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["etrepo"].db.dispose()


def one_warning(caplog) -> logging.LogRecord:
    records = [r for r in caplog.records if r.name.startswith("etrepo")]
    assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
    (record,) = records
    assert record.exc_info is None and "\n" not in record.getMessage()
    return record


def test_health_is_ok_on_a_migrated_database(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_health_is_503_without_the_schema(app_on, caplog):
    app = app_on()  # nobody ran `etrepo db upgrade`
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (503, NOT_READY)
    assert "no database file at" in one_warning(caplog).getMessage()
    assert not app.extensions["etrepo"].db.sqlite_path.exists()  # and none was made


def test_health_is_503_on_an_empty_database_file(app_on, caplog):
    app = app_on()
    path = app.extensions["etrepo"].db.sqlite_path
    path.parent.mkdir(parents=True)
    path.touch()
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (503, NOT_READY)
    assert "no schema yet" in one_warning(caplog).getMessage()


def test_health_is_503_with_a_table_missing(app_on, caplog):
    app = app_on()
    db: Database = app.extensions["etrepo"].db
    db.upgrade()
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE rate_events"))
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (503, NOT_READY)
    assert "rate_events" in one_warning(caplog).getMessage()


def test_health_is_503_when_the_database_cannot_be_opened(app_on, tmp_path, caplog):
    folder = tmp_path / "a-directory"
    folder.mkdir()
    app = app_on(DATABASE_URL=f"sqlite:///{folder}")  # a directory: SQLite cannot open it
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "database unreachable"}
    one_warning(caplog)
