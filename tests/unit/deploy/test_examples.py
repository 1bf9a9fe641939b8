"""The example configuration in deploy/ and the paths the README and messages point to."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from sqlalchemy.engine import make_url

from etrepo.app import ROOT_REFUSED
from etrepo.config import load_settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def environment_file(path: Path) -> dict[str, str]:
    """VARIABLE=value lines, as systemd's EnvironmentFile= reads this simple form."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_the_example_settings_load_with_the_example_secrets():
    secrets_env = environment_file(DEPLOY / "secrets.env.example")
    assert secrets_env["ETREPO_SECRET_KEY"] == ""  # no usable key to copy by mistake
    secrets_env["ETREPO_SECRET_KEY"] = "k" * 64
    settings = load_settings(environ={"ETREPO_CONFIG": str(DEPLOY / "config.example.py"),
                                      **secrets_env})
    assert settings.PROVISIONER == "linux"
    assert settings.TRUSTED_PROXIES == 1


def test_the_database_is_reached_by_password_over_tcp_not_by_peer_authentication():
    # Peer authentication on the local socket lets in only the OS user etrepo: the worker
    # runs as root ("Peer authentication failed for user etrepo").
    assert "DATABASE_URL" not in runpy.run_path(str(DEPLOY / "config.example.py"))
    url = make_url(environment_file(DEPLOY / "secrets.env.example")["ETREPO_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"
    assert url.username == "etrepo" and url.password
    assert url.database == "etrepo"


def deploy_paths(text: str) -> set[str]:
    return {m.rstrip(".,:;)`'\"") for m in re.findall(r"deploy/[\w./-]*[\w]", text)}


def test_every_deploy_file_named_in_the_readme_messages_and_comments_exists():
    texts = [(REPO / "README.md").read_text(), ROOT_REFUSED]
    texts += [path.read_text() for path in DEPLOY.rglob("*") if path.is_file()]
    named = set().union(*(deploy_paths(text) for text in texts))
    assert "deploy/systemd/etrepo-web.service" in named
    assert sorted(p for p in named if not (REPO / p).exists()) == []
