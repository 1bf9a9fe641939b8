"""LinuxProvisioner against the real system (root), plus its checks and helpers (any user)."""

from __future__ import annotations

import dataclasses
import grp
import logging
import os
import pwd
import secrets
import stat
import string
import subprocess
import sys

import pytest

from etrepo.provisioning import linux
from etrepo.provisioning.interfaces import AccountSpec, ProvisioningError
from etrepo.provisioning.linux import LinuxProvisioner, generate_password
from tests.support.requirements import need_root
from tests.support.users import purge_user


def _throwaway(request) -> str:
    name = "etq" + secrets.token_hex(6)
    request.addfinalizer(lambda: purge_user(name))
    return name


def _shadow(name: str) -> list[str]:
    with open("/etc/shadow", encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if fields[0] == name:
                return fields
    raise AssertionError(f"{name} not in /etc/shadow")


def _passwd_lines(name: str) -> int:
    with open("/etc/passwd", encoding="utf-8") as f:
        return sum(1 for line in f if line.split(":", 1)[0] == name)


@pytest.fixture
def root():
    need_root()


@pytest.fixture
def prov():
    return LinuxProvisioner()


@pytest.fixture
def spec(tmp_path, request):
    name = _throwaway(request)
    return AccountSpec(
        username=name,
        gecos="Jane Q. Doe-Tester (ETRepo)",
        home=tmp_path / "home" / name,
        workdir=tmp_path / "work" / "deep" / name,
        shell="/bin/bash",
    )


@pytest.fixture
def spawned(monkeypatch):
    """(argv, env) of every process started through subprocess while the test runs."""
    calls: list[tuple[list[str], dict | None]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *a, **kw):
            calls.append(([str(x) for x in args], kw.get("env")))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    return calls


# --- real accounts (root) --------------------------------------------------------------------


@pytest.mark.root
def test_workdir_belongs_to_the_user_and_is_private(root, prov, spec):
    lines = prov.create_account(spec)
    user = pwd.getpwnam(spec.username)
    st = os.lstat(spec.workdir)
    assert stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o700  # nothing for group or others
    assert f"mkdir {spec.workdir} (0700, owner {spec.username})" in lines
    assert any(line.startswith("useradd ") and line.endswith(spec.username) for line in lines)


@pytest.mark.root
def test_home_shell_and_gecos_are_the_given_ones(root, prov, spec, tmp_path, request):
    group = _throwaway(request)
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    spec = dataclasses.replace(spec, groups=(group,))
    prov.create_account(spec)
    user = pwd.getpwnam(spec.username)
    assert user.pw_dir == str(spec.home)
    assert spec.home.parent == tmp_path / "home" and spec.home.is_dir()
    assert os.stat(spec.home).st_uid == user.pw_uid
    assert (spec.home / ".profile").is_file()  # /etc/skel was copied
    assert user.pw_gecos == "Jane Q. Doe-Tester (ETRepo)"
    assert user.pw_shell == "/bin/bash"
    assert grp.getgrgid(user.pw_gid).gr_name == spec.username  # its own user group
    assert spec.username in grp.getgrnam(group).gr_mem


@pytest.mark.root
def test_password_is_set_and_expired(root, prov, spec):
    prov.create_account(spec)
    assert _shadow(spec.username)[1].startswith("!")  # useradd leaves it locked
    prov.set_initial_password(spec.username, generate_password())
    fields = _shadow(spec.username)
    assert fields[1] and fields[1][0] not in "!*"  # a real hash
    assert fields[1].startswith("$")
    assert fields[2] == "0"  # last change on day 0: must change at the next login
    chage = subprocess.run(
        ["chage", "-l", spec.username], capture_output=True, text=True, check=True,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    )
    assert "Last password change\t\t\t\t\t: password must be changed" in chage.stdout


@pytest.mark.root
def test_password_never_in_argv_logs_or_lines(root, prov, spec, spawned, caplog):
    caplog.set_level(logging.INFO, logger="etrepo.provisioning")
    password = generate_password(24)
    lines = prov.create_account(spec)
    lines += prov.set_initial_password(spec.username, password)
    lines += prov.remove_account(spec)
    argvs = [argv for argv, _env in spawned]
    assert ["chpasswd"] in argvs and ["chage", "--lastday", "0", spec.username] in argvs
    for argv, env in spawned:
        assert not any(password in arg for arg in argv)
        assert not any(password in v for v in (env or {}).values())
    assert not any(password in line for line in lines)
    assert caplog.records and not any(password in r.getMessage() for r in caplog.records)
    assert any("run: chpasswd" in r.getMessage() for r in caplog.records)


@pytest.mark.root
def test_user_with_another_home_is_not_ours(root, prov, spec, tmp_path):
    subprocess.run(
        ["useradd", "--home-dir", str(tmp_path / "elsewhere"), "--user-group", spec.username],
        check=True, capture_output=True,
    )
    with pytest.raises(ProvisioningError, match=f"user {spec.username} already exists and is "
                       "not this request's"):
        prov.create_account(spec)
    with pytest.raises(ProvisioningError, match="not this request's"):
        prov.remove_account(spec)
    assert pwd.getpwnam(spec.username).pw_dir == str(tmp_path / "elsewhere")  # untouched
    assert not spec.workdir.exists()


@pytest.mark.root
def test_rerun_after_a_crash_completes_without_a_duplicate(root, prov, spec):
    # The crash: useradd ran, the work directory was never made.
    spec.home.parent.mkdir(parents=True)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(spec.home), "--user-group",
         "--shell", spec.shell, "--comment", spec.gecos, spec.username],
        check=True, capture_output=True,
    )
    lines = prov.create_account(spec)
    assert not any(line.startswith("useradd") for line in lines)
    assert _passwd_lines(spec.username) == 1
    st = os.stat(spec.workdir)
    assert st.st_uid == pwd.getpwnam(spec.username).pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o700
    # A work directory with a wrong mode or owner is repaired by the next rerun.
    os.chmod(spec.workdir, 0o755)
    os.chown(spec.workdir, 0, 0)
    lines = prov.create_account(spec)
    assert f"fix owner and mode of {spec.workdir} (0700, owner {spec.username})" in lines
    st = os.stat(spec.workdir)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(spec.username).pw_uid, 0o700)
    assert _passwd_lines(spec.username) == 1


@pytest.mark.root
def test_remove_account_removes_user_group_home_and_workdir(root, prov, spec):
    prov.create_account(spec)
    (spec.workdir / "data.txt").write_text("x")
    lines = prov.remove_account(spec)
    assert lines == [f"rm -r {spec.workdir}", f"userdel --remove {spec.username}"]
    assert not prov.name_taken(spec.username)
    assert not spec.home.exists() and not spec.workdir.exists()
    assert prov.remove_account(spec) == [
        f"user {spec.username} and {spec.workdir} already gone: nothing to do"
    ]


@pytest.mark.root
def test_remove_keeps_a_workdir_owned_by_someone_else(root, prov, spec):
    prov.create_account(spec)
    os.chown(spec.workdir, 0, 0)
    with pytest.raises(ProvisioningError, match="is not owned by"):
        prov.remove_account(spec)
    assert spec.workdir.is_dir() and prov.name_taken(spec.username)


@pytest.mark.root
def test_a_leftover_home_is_not_reused(root, prov, spec):
    spec.home.mkdir(parents=True)
    with pytest.raises(ProvisioningError, match="already exists but user"):
        prov.create_account(spec)
    assert not prov.name_taken(spec.username)


# --- checks before anything runs (any user) --------------------------------------------------


def _bad(spec: AccountSpec, **changes) -> AccountSpec:
    return dataclasses.replace(spec, **changes)


BAD_INPUTS = {
    "colon-in-name": ({"username": "Bad:Name"}, "invalid user name"),
    "upper-case-name": ({"username": "Jdoe"}, "invalid user name"),
    "newline-after-name": ({"username": "jdoe\n"}, "invalid user name"),
    "too-long-name": ({"username": "a" * 33}, "invalid user name"),
    "gecos-colon": ({"gecos": "Jane:Doe"}, "invalid full name"),
    "gecos-comma": ({"gecos": "Doe, Jane"}, "invalid full name"),
    "gecos-equals": ({"gecos": "a=b"}, "invalid full name"),
    "gecos-newline": ({"gecos": "Jane\nroot::0:0::/:/bin/sh"}, "invalid full name"),
    "gecos-non-ascii": ({"gecos": "José"}, "invalid full name"),
    "relative-home": ({"home": "home/etqx"}, "must be an absolute path"),
    "dotdot-home": ({"home": "/tmp/../etc"}, "normalised"),
    "relative-workdir": ({"workdir": "work/etqx"}, "must be an absolute path"),
    "colon-workdir": ({"workdir": "/work/a:b"}, "without spaces or ':'"),
    "unknown-shell": ({"shell": "/nonexistent/shell"}, "not in /etc/shells"),
    "relative-shell": ({"shell": "bash"}, "must be an absolute path"),
    "missing-group": ({"groups": ("etqnosuchgroup",)}, "does not exist"),
    "bad-group": ({"groups": ("wheel;rm",)}, "invalid group name"),
}


@pytest.mark.parametrize("changes,message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_invalid_input_is_refused_before_any_command(prov, spec, spawned, changes, message):
    bad = _bad(spec, **changes)
    with pytest.raises(ProvisioningError, match=message):
        prov.create_account(bad)
    assert spawned == []
    assert not prov.name_taken(spec.username)
    assert not spec.home.exists() and not spec.workdir.exists()


@pytest.mark.parametrize("password", ["", "two\nlines", "tab\there", "caf\u00e9"])
def test_unusable_password_is_refused_before_any_command(prov, spec, spawned, password):
    with pytest.raises(ProvisioningError) as info:
        prov.set_initial_password(spec.username, password)
    assert spawned == []
    assert not password or password not in str(info.value)


def test_refuses_to_run_unless_root(prov, spec, spawned, monkeypatch):
    monkeypatch.setattr(linux.os, "geteuid", lambda: 1000)
    for action in (
        lambda: prov.create_account(spec),
        lambda: prov.set_initial_password(spec.username, "Secret123abc"),
        lambda: prov.remove_account(spec),
    ):
        with pytest.raises(ProvisioningError, match="must run as root"):
            action()
    assert spawned == []


def test_name_taken_looks_at_users_and_groups(prov, request):
    assert prov.name_taken("root")
    assert prov.name_taken("nogroup")  # a group without a user of that name
    assert not prov.name_taken("etq" + secrets.token_hex(6))
    assert not prov.name_taken("bad\0name")


def test_a_failed_command_reports_its_stderr_but_never_its_stdin():
    echo_stdin_and_fail = [
        sys.executable, "-c",
        "import sys; sys.stderr.write('no such user: ' + sys.stdin.read()); sys.exit(9)",
    ]
    with pytest.raises(ProvisioningError) as info:
        linux.run(echo_stdin_and_fail, input="etqx:Sup3rSecret\n", redact=("Sup3rSecret",))
    message = str(info.value)
    assert message.startswith(f"{os.path.basename(sys.executable)} failed (exit 9): no such user")
    assert "Sup3rSecret" not in message


def test_a_missing_command_is_a_provisioning_error():
    with pytest.raises(ProvisioningError, match="command not found"):
        linux.run(["etq-no-such-command"])


def test_generated_passwords():
    seen = set()
    for length in (12, 16, 40):
        for _ in range(200):
            pw = generate_password(length)
            assert len(pw) == length
            assert set(pw) <= set(string.ascii_letters + string.digits) - set("0O1lI")
            assert any(c.islower() for c in pw) and any(c.isupper() for c in pw)
            assert any(c.isdigit() for c in pw)
            seen.add(pw)
    assert len(seen) == 600
    assert len(generate_password()) == 16
    with pytest.raises(ValueError):
        generate_password(4)
