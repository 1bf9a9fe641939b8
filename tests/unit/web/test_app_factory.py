"""The WSGI entry point ``etrepo.app:create_app_from_env()``, as gunicorn calls it."""

from __future__ import annotations

import os

import pytest
from flask import Flask

from etrepo import app as app_module
from etrepo.config import SettingsError
from tests.support.portal import run_cli


@pytest.fixture
def environment(monkeypatch, tmp_path) -> None:
    """A minimal ETREPO_* environment, and no other."""
    for key in list(os.environ):
        if key.startswith("ETREPO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ETREPO_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("ETREPO_SECRET_KEY", "s3cret-key-" + "q" * 30)


def test_the_wsgi_entry_point_refuses_root_like_etrepo_serve(environment, monkeypatch):
    monkeypatch.setattr(app_module.os, "geteuid", lambda: 0)
    with pytest.raises(SettingsError) as refused:
        app_module.create_app_from_env()
    assert str(refused.value).startswith("refusing to run the web process as root")
    # Word for word what `etrepo serve` says.
    served = run_cli(["serve"], dict(os.environ))
    assert served.exit_code == 1
    assert served.output.strip() == f"Error: {refused.value}"


def test_the_wsgi_entry_point_builds_the_app_for_a_normal_user(environment, monkeypatch):
    monkeypatch.setattr(app_module.os, "geteuid", lambda: 1000)
    application = app_module.create_app_from_env()
    assert isinstance(application, Flask)
    application.extensions["etrepo"].db.dispose()
