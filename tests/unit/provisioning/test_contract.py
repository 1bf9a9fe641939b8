"""The same behaviour from every provisioner: dry-run always, linux as root (real accounts)."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess

import pytest

from etrepo.config import load_settings
from etrepo.provisioning.backends import make_provisioner
from etrepo.provisioning.interfaces import AccountSpec, ProvisioningError
from etrepo.provisioning.linux import generate_password
from tests.support.requirements import need_root
from tests.support.users import purge_user


@pytest.fixture(params=["dry-run", pytest.param("linux", marks=pytest.mark.root)])
def provisioner(request):
    if request.param == "linux":
        need_root()
    settings = load_settings(environ={}, overrides={"PROVISIONER": request.param})
    p = make_provisioner(settings)
    assert p.name == request.param
    return p


@pytest.fixture
def spec(tmp_path, request):
    name = "etq" + secrets.token_hex(6)
    request.addfinalizer(lambda: purge_user(name))
    return AccountSpec(
        username=name,
        gecos="Etq Contract Test",
        home=tmp_path / "home" / name,
        workdir=tmp_path / "work" / name,
        shell="/bin/bash",
    )


@pytest.fixture
def spawned(monkeypatch):
    """argv of every process started through subprocess while the test runs."""
    calls: list[list[str]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *a, **kw):
            calls.append([str(x) for x in args])
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    return calls


def test_provisioner_contract(provisioner, spec, spawned):
    real = provisioner.name == "linux"
    assert not provisioner.name_taken(spec.username)

    first = provisioner.create_account(spec)
    again = provisioner.create_account(spec)  # idempotent: a rerun completes, never fails
    for lines in (first, again):
        assert lines and all(isinstance(line, str) and line for line in lines)
    assert provisioner.name_taken(spec.username)
    assert spec.workdir.is_dir() == real and spec.home.is_dir() == real

    password = generate_password()
    lines = provisioner.set_initial_password(spec.username, password)
    assert lines and not any(password in line for line in lines)

    # A name that belongs to somebody else is refused, not taken over or removed.
    assert provisioner.name_taken("root")
    foreign = dataclasses.replace(spec, username="root")
    with pytest.raises(ProvisioningError, match="already exists and is not this request's"):
        provisioner.create_account(foreign)
    with pytest.raises(ProvisioningError, match="already exists and is not this request's"):
        provisioner.remove_account(foreign)

    assert provisioner.remove_account(spec)
    assert provisioner.remove_account(spec)  # already gone: a no-op
    assert not provisioner.name_taken(spec.username)
    assert not spec.workdir.exists()

    assert not any(password in arg for argv in spawned for arg in argv)
    if not real:
        assert spawned == []  # the dry run runs nothing
        assert all(line.startswith("would ") for line in first + again + lines)


def test_dry_run_remembers_its_own_accounts_only(spec):
    from etrepo.provisioning.dryrun import DryRunProvisioner

    one, other = DryRunProvisioner(), DryRunProvisioner()
    one.create_account(spec)
    assert one.name_taken(spec.username)
    assert not other.name_taken(spec.username)  # e.g. the next test's fresh provisioner


def test_preflight_refuses_settings_that_cannot_work(provisioner, spawned):
    """Checked at worker start: a missing group or shell stops the worker, not every request."""
    provisioner.preflight((), "/bin/bash")
    with pytest.raises(ProvisioningError, match="group 'etqnosuchgroup' does not exist"):
        provisioner.preflight(("etqnosuchgroup",), "/bin/bash")
    with pytest.raises(ProvisioningError, match="shell"):
        provisioner.preflight((), "/nonexistent/shell")
    assert spawned == []  # lookups only, no command
