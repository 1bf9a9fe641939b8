"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from etrepo.db import Database, schema_differences
from tests.support.portal import pg_url_fixture  # noqa: F401  (the pg_url fixture)

TABLES = {"account_requests", "request_events", "outbox", "rate_events", "alembic_version"}


def check_upgrade(url: str) -> None:
    database = Database(url)
    try:
        database.upgrade()
        assert set(inspect(database.engine).get_table_names()) >= TABLES
        assert schema_differences(database) == []
        database.upgrade()  # again: nothing to do, nothing broken
        assert schema_differences(database) == []
    finally:
        database.dispose()


def test_upgrade_of_an_empty_sqlite_file(tmp_path):
    path = tmp_path / "new" / "etrepo.sqlite3"
    check_upgrade(f"sqlite:///{path}")
    assert path.is_file()


@pytest.mark.postgres
def test_upgrade_of_a_fresh_postgresql_database(pg_url):
    check_upgrade(pg_url)
