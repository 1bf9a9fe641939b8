"""The WSGI entry point ``etrepo.app:create_app_from_env()`` as gunicorn uses it.

It refuses what ``etrepo serve`` refuses (root, wrong settings, a database without the current
schema) with the same one line, on stderr, and exits with status 4: gunicorn's "app failed to
load", which stops gunicorn instead of having it boot workers again and again. It logs like
the CLI unless logging is set up already.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from etrepo import app as app_module
from etrepo.db import Database
from tests.support.portal import run_cli
from tests.support.requirements import need, need_root

REPO = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).parent / "gunicorn"
SECRET = "s3cret-key-" + "q" * 30


@pytest.fixture
def environment(monkeypatch, tmp_path) -> Path:
    """A minimal ETREPO_* environment and a normal user; the SQLite file's path is returned."""
    for key in list(os.environ):
        if key.startswith("ETREPO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ETREPO_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("ETREPO_SECRET_KEY", SECRET)
    monkeypatch.setattr(app_module.os, "geteuid", lambda: 1000)
    return tmp_path / "instance" / "etrepo.sqlite3"


@pytest.fixture
def root_logger():
    """The root logger and the quieted loggers are put back as they were."""
    from etrepo.logs import QUIETED

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIETED}
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def migrated(path: Path, revision: str = "head") -> None:
    database = Database(f"sqlite:///{path}")
    database.upgrade(revision)
    database.dispose()


def refusal(capsys) -> str:
    """What create_app_from_env says on stderr as it exits with gunicorn's APP_LOAD_ERROR."""
    with pytest.raises(SystemExit) as exited:
        app_module.create_app_from_env()
    assert exited.value.code == 4
    captured = capsys.readouterr()
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    return captured.err.rstrip("\n")


def serve_says() -> str:
    served = run_cli(["serve"], dict(os.environ))
    assert served.exit_code == 1
    return served.output.strip()


def test_root_is_refused_in_one_line(environment, monkeypatch, capsys):
    monkeypatch.setattr(app_module.os, "geteuid", lambda: 0)
    said = refusal(capsys)
    assert said == f"Error: {app_module.ROOT_REFUSED}"
    assert said == serve_says()  # word for word what `etrepo serve` says


def test_the_root_refusal_names_the_unit_file_that_exists():
    named = re.search(r"deploy/\S+\.service", app_module.ROOT_REFUSED)
    assert named and (REPO / named.group(0)).is_file(), app_module.ROOT_REFUSED


def test_a_wrong_setting_is_refused_in_one_line(environment, monkeypatch, capsys):
    monkeypatch.setenv("ETREPO_SMTP_SECURITY", "ssl")
    said = refusal(capsys)
    assert said == ("Error: configuration: SMTP_SECURITY: must be one of none, starttls, tls "
                    "(got 'ssl')")
    assert said == serve_says()


def test_a_missing_secret_key_is_refused_in_one_line(environment, monkeypatch, capsys):
    monkeypatch.delenv("ETREPO_SECRET_KEY")
    said = refusal(capsys)
    assert said.startswith("Error: configuration: SECRET_KEY: required")
    assert said == serve_says()


def test_a_database_without_schema_is_refused_in_one_line(environment, capsys):
    said = refusal(capsys)
    assert said.startswith(f"Error: database sqlite:///{environment}: ")
    assert "etrepo db upgrade" in said
    assert said == serve_says()


def test_an_outdated_schema_is_refused_in_one_line(environment, capsys):
    migrated(environment, "0001")
    said = refusal(capsys)
    assert said.startswith(f"Error: database sqlite:///{environment}: the schema is at 0001")
    assert said == serve_says()


def test_an_unreachable_database_is_one_line_without_its_password(environment, monkeypatch,
                                                                  capsys):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("ETREPO_DATABASE_URL",
                       "postgresql+psycopg://etrepo:pw-not-to-be-shown@127.0.0.1:1/etrepo")
    said = refusal(capsys)
    assert said.startswith("Error: database postgresql+psycopg://etrepo:***@127.0.0.1:1/etrepo: ")
    assert "pw-not-to-be-shown" not in said
    assert said == serve_says()


def test_the_app_is_built_on_a_migrated_database(environment, capsys):
    migrated(environment)
    application = app_module.create_app_from_env()
    assert isinstance(application, Flask)
    application.extensions["etrepo"].db.dispose()
    assert capsys.readouterr().err == ""


def test_without_a_logging_set_up_the_app_logs_like_the_cli(environment, root_logger,
                                                            monkeypatch, capsys):
    # Under gunicorn the root logger has no handler: INFO lines were lost, and warnings came
    # out bare (Python's last resort) without time, level or logger.
    monkeypatch.setattr(root_logger, "handlers", [])
    migrated(environment)
    app_module.create_app_from_env().extensions["etrepo"].db.dispose()
    logging.getLogger("etrepo.accounts.service").info("request r1 submitted")
    logging.getLogger("etrepo.web.pages").warning("health check: trouble")
    logging.getLogger("alembic.runtime.migration").info("chatter kept down")
    out = capsys.readouterr().out.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert len(out) == 2, out
    assert re.fullmatch(stamp + r" INFO etrepo\.accounts\.service: request r1 submitted", out[0])
    assert re.fullmatch(stamp + r" WARNING etrepo\.web\.pages: health check: trouble", out[1])


def test_an_existing_logging_set_up_is_left_alone(environment, root_logger, monkeypatch):
    admins = logging.NullHandler()
    monkeypatch.setattr(root_logger, "handlers", [admins])
    level = root_logger.level
    migrated(environment)
    app_module.create_app_from_env().extensions["etrepo"].db.dispose()
    assert root_logger.handlers == [admins]
    assert root_logger.level == level


def test_gunicorn_stops_with_the_one_line_and_no_traceback(tmp_path):
    # With deploy/gunicorn.conf.py (three workers), only the socket moved out of /run/etrepo.
    # As root the refusal of root is what a real gunicorn meets first (the others are tested
    # above with a pretended normal user).
    need_root()
    need(GUNICORN.is_file(), "gunicorn is not installed: pip install '.[production]'")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ETREPO_")}
    env.update(ETREPO_INSTANCE_DIR=str(tmp_path / "instance"), ETREPO_SECRET_KEY=SECRET,
               HOME=str(tmp_path))  # should gunicorn write to its home: not ~root
    env.pop("XDG_RUNTIME_DIR", None)
    done = subprocess.run(
        [str(GUNICORN), "--config", str(REPO / "deploy" / "gunicorn.conf.py"),
         "--bind", f"unix:{tmp_path}/web.sock", "etrepo.app:create_app_from_env()"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output  # app failed to load: gunicorn stops, no respawning
    assert "Traceback" not in output, output
    assert done.stderr.splitlines().count(f"Error: {app_module.ROOT_REFUSED}") == 1, output
