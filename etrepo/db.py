"""Engine and sessions, and the schema commands (Alembic)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the web process read while the worker writes; busy_timeout makes writers queue
    # instead of failing with "database is locked". synchronous=NORMAL is SQLite's advice for
    # WAL: a killed process loses nothing; only a power cut may lose the last commits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only: it holds names and addresses.
    (SQLite gives its -wal and -shm files the same mode as the database file.)"""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """One engine and its session factory; the only way code reaches the tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed if the block ends normally, rolled back otherwise."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite (None for other databases and in-memory SQLite)."""
        if self.engine.dialect.name != "sqlite":
            return None
        name = self.engine.url.database
        return Path(name) if name and name != ":memory:" else None

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema to ``revision`` (and the SQLite file, private)."""
        from alembic import command

        if self.sqlite_path is not None:
            _private_file(self.sqlite_path)
        command.upgrade(alembic_config(self.url), revision)

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def safe_url(self) -> str:
        """The URL to show (logs, errors): without its password."""
        return self.engine.url.render_as_string(hide_password=True)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is interpolation syntax for configparser
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_differences(database: Database) -> list[str]:
    """Differences between the models and the schema the migrations make (empty: agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from etrepo.models import Base

    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [str(diff) for diff in compare_metadata(context, Base.metadata)]


def one_line(exc: BaseException) -> str:
    """The first line of a database error: what an admin needs, without the traceback."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def startup_problem(database: Database) -> str | None:
    """Why a process should not start on this database, in one line (None: it may)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        problem = schema_problem(database)
    except (SQLAlchemyError, OSError) as exc:
        problem = one_line(exc)
    return f"database {database.safe_url}: {problem}" if problem else None


@functools.cache
def migrations_head() -> str:
    """The newest migration's revision (read once: the files do not change while we run)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def schema_problem(database: Database) -> str | None:
    """Why the schema is not usable by this code (None: at the migrations' head)."""
    from alembic.migration import MigrationContext

    head = migrations_head()
    path = database.sqlite_path
    if path is not None and not path.exists():
        # Do not let SQLite create an empty file here: the admin is in the wrong folder, or
        # INSTANCE_DIR / DATABASE_URL is not what they think.
        return (f"no database file at {path} (from INSTANCE_DIR or DATABASE_URL): "
                "run `etrepo db upgrade` if this is where it should be")
    with database.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return "the database has no schema yet: run `etrepo db upgrade`"
    if current != head:
        return f"the schema is at {current}, this code needs {head}: run `etrepo db upgrade`"
    return None
