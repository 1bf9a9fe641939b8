"""The `etrepo` command as a maintainer meets it: settings shown safely, clear refusals."""

from __future__ import annotations

import os

import pytest

from etrepo import cli
from tests.support.portal import run_cli

SECRET = "s3cret-key-" + "q" * 30
SMTP_PASSWORD = "hunter2-smtp-pw"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"ETREPO_CONFIG": "", "ETREPO_INSTANCE_DIR": str(tmp_path / "instance"),
            "ETREPO_DATABASE_URL": ""}


@pytest.fixture
def no_server(monkeypatch) -> list[tuple]:
    """Record instead of serving: a test must never block on a real server."""
    started: list[tuple] = []
    monkeypatch.setattr(cli, "_serve_forever", lambda *args, **kw: started.append(args))
    return started


def test_config_lists_every_setting_with_secrets_masked(env):
    result = run_cli(["config"], {**env, "ETREPO_SECRET_KEY": SECRET,
                                  "ETREPO_SMTP_PASSWORD": SMTP_PASSWORD,
                                  "ETREPO_SMTP_USER": "portal", "ETREPO_SMTP_SECURITY": "tls"})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and SMTP_PASSWORD not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "(set)" in lines["SECRET_KEY"] and "(set)" in lines["SMTP_PASSWORD"]
    assert "'portal'" in lines["SMTP_USER"] and "'tls'" in lines["SMTP_SECURITY"]


def test_config_with_a_wrong_value_says_which_in_one_line(env):
    result = run_cli(["config"], {**env, "ETREPO_SMTP_PORT": "twenty-five"})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: configuration: SMTP_PORT: expected int, got 'twenty-five'")


def test_serve_refuses_without_a_secret_key(env, no_server):
    result = run_cli(["serve"], {**env, "ETREPO_SECRET_KEY": ""})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    if os.geteuid() == 0:  # refused before the settings are even read
        assert lines[0].startswith("Error: refusing to run the web process as root")
    else:
        assert lines[0] == ("Error: configuration: SECRET_KEY: required outside the demo "
                            "(set ETREPO_SECRET_KEY)")
    assert no_server == []


def test_serve_as_a_normal_user_names_the_missing_secret_key(env, no_server, monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    result = run_cli(["serve"], {**env, "ETREPO_SECRET_KEY": ""})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: configuration: SECRET_KEY: required outside the demo (set ETREPO_SECRET_KEY)")
    assert no_server == []
    assert run_cli(["db", "upgrade"], env).exit_code == 0
    started = run_cli(["serve", "--port", "8123"], {**env, "ETREPO_SECRET_KEY": SECRET})
    assert started.exit_code == 0, started.output
    assert [(host, port) for _app, host, port, _threads in no_server] == [("127.0.0.1", 8123)]


def test_serve_refuses_a_database_without_schema_in_one_line(env, no_server, monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    result = run_cli(["serve"], {**env, "ETREPO_SECRET_KEY": SECRET})
    assert result.exit_code == 1 and no_server == []
    assert "no database file at" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_read_only_commands_create_no_database_where_there_is_none(env, tmp_path):
    for args in (["requests", "list"], ["outbox"]):
        result = run_cli(args, env)
        assert result.exit_code == 1 and "no database file at" in result.output
    assert not (tmp_path / "instance").exists()


def test_cli_database_errors_are_one_line(env):
    for args in (["requests", "list"], ["outbox"], ["worker", "--once"]):
        result = run_cli(args, {**env, "ETREPO_DATABASE_URL":
                                "postgresql+psycopg://nobody@127.0.0.1:1/none"})
        assert result.exit_code == 1, args
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: database postgresql"), lines


def test_requests_cli_names_what_is_wrong(env):
    assert run_cli(["db", "upgrade"], env).exit_code == 0
    assert "no request nope" in run_cli(["requests", "retry", "nope"], env).output
    bogus = run_cli(["requests", "list", "--status", "bogus"], env)
    assert bogus.exit_code == 2 and "awaiting_confirmation" in bogus.output
    assert run_cli(["requests", "list", "--limit", "-1"], env).exit_code == 2


def test_serve_refuses_root(env, no_server, monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    result = run_cli(["serve"], {**env, "ETREPO_SECRET_KEY": SECRET})
    assert result.exit_code == 1
    assert "refusing to run the web process as root" in result.output
    assert no_server == []


def test_worker_with_the_linux_provisioner_needs_root(env, monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    result = run_cli(["worker", "--once"], {**env, "ETREPO_PROVISIONER": "linux"})
    assert result.exit_code == 1
    assert "PROVISIONER=linux needs root" in result.output


def test_db_upgrade_then_check_agree(env):
    assert run_cli(["db", "upgrade"], env).exit_code == 0
    result = run_cli(["db", "check"], env)
    assert result.exit_code == 0, result.output
    assert "models and migrations agree" in result.output


def test_outbox_of_an_empty_database(env):
    run_cli(["db", "upgrade"], env)
    result = run_cli(["outbox"], env)
    assert result.exit_code == 0 and result.output.strip() == "empty"


def test_worker_refuses_to_start_with_a_group_that_does_not_exist(env):
    assert run_cli(["db", "upgrade"], env).exit_code == 0
    result = run_cli(["worker", "--once"], {**env, "ETREPO_USER_GROUPS": "etqnosuchgroup"})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: configuration: group 'etqnosuchgroup' does not exist")


def test_outbox_retry_now_says_how_many_mails_became_due(env):
    assert run_cli(["db", "upgrade"], env).exit_code == 0
    result = run_cli(["outbox", "--retry-now"], env)
    assert result.exit_code == 0 and "0 waiting mails are due now" in result.output
