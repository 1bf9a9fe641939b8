"""A provisioned account logs in over real SSH and is made to change its password first.

What Debian 12 (OpenSSH 9.2p1 + PAM, pam_unix) does with a password expired by
``chage --lastday 0``:

* password authentication is *accepted* ("Accepted password for ..." in sshd's log); PAM's
  account stage says the token must be renewed, so sshd then only lets the session change it:
  with a pty the client sees
  "You are required to change your password immediately (administrator enforced)."
  (pam_unix, shown with the login messages), then "WARNING: Your password has expired." and
  "You must change your password now and login again!" from sshd, which runs passwd:
  "Changing password for <user>." / "Current password: ". After the change the connection
  ends. Without a pty sshd prints "Password change required but no TTY available." and the
  command exits 1 without running.
* keyboard-interactive runs PAM's password change inside authentication: after the
  "Password: " prompt comes the prompt "You are required to change your password immediately
  (administrator enforced).\\nChanging password for <user>.\\nCurrent password: ", then
  "New password: " and "Retype new password: "; the login succeeds only after the change.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import signal
import socket
import time

import paramiko
import pytest

from etrepo.provisioning.interfaces import AccountSpec
from etrepo.provisioning.linux import LinuxProvisioner, generate_password
from tests.support import sshd as sshd_support
from tests.support.requirements import need_root
from tests.support.users import purge_user

pytestmark = pytest.mark.root
sshd_server = sshd_support.sshd_server  # the fixture factory

EXPIRED_PAM = "You are required to change your password immediately (administrator enforced)."
EXPIRED_SSHD = "WARNING: Your password has expired."
MUST_CHANGE = "You must change your password now and login again!"
NO_TTY = "Password change required but no TTY available."
TIMEOUT = 20.0




def _wait_no_processes(uid: int) -> None:
    """Let the closed sessions' processes end (poll with a deadline); stragglers are ours to
    kill, by pid: only this test's throwaway user runs as ``uid``."""
    deadline = time.monotonic() + 10.0
    while sshd_support.user_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in sshd_support.user_processes(uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Account:
    def __init__(self, spec: AccountSpec, password: str) -> None:
        self.spec = spec
        self.username = spec.username
        self.password = password
        self.transports: list[paramiko.Transport] = []

    def connect(self, server) -> paramiko.Transport:
        t = paramiko.Transport((server.host, server.port))
        self.transports.append(t)
        t.start_client(timeout=TIMEOUT)
        return t


@pytest.fixture
def account(tmp_path, request):
    need_root()
    prov = LinuxProvisioner()
    name = "etq" + secrets.token_hex(6)
    spec = AccountSpec(
        username=name,
        gecos="Etq Ssh Test",
        home=tmp_path / "home" / name,
        workdir=tmp_path / "work" / name,
        shell="/bin/bash",
    )
    acc = Account(spec, generate_password())

    def cleanup() -> None:
        for t in acc.transports:
            t.close()
        try:
            _wait_no_processes(pwd.getpwnam(name).pw_uid)
            prov.remove_account(spec)
        finally:
            purge_user(name)  # even if the provisioner failed: no test user is left behind

    request.addfinalizer(cleanup)
    prov.create_account(spec)
    lines = prov.set_initial_password(name, acc.password)
    assert not any(acc.password in line for line in lines)
    return acc


class Prompts:
    """keyboard-interactive answers by prompt, recording every prompt the server sent."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.seen: list[str] = []

    def __call__(self, title, instructions, prompts):
        out = []
        for text, _echo in prompts:
            self.seen.append(text)
            last = text.strip().splitlines()[-1] if text.strip() else ""
            out.append(self.answers.get(last, ""))
        return out


def login(t: paramiko.Transport, username: str, password: str) -> None:
    """Password auth; a server that only offers keyboard-interactive gets the password there."""
    try:
        t.auth_password(username, password, fallback=False)
    except paramiko.BadAuthenticationType as exc:
        if "keyboard-interactive" not in exc.allowed_types:
            raise
        t.auth_interactive(username, Prompts({"Password:": password}))


def read_until(channel: paramiko.Channel, needle: str, timeout: float = TIMEOUT) -> str:
    """Everything the channel sent until ``needle`` appeared (or EOF / the deadline)."""
    channel.settimeout(0.25)
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data.decode("utf-8", "replace") and time.monotonic() < deadline:
        try:
            chunk = channel.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def run_command(t: paramiko.Transport, command: str) -> tuple[int, str, str]:
    ch = t.open_session(timeout=TIMEOUT)
    ch.settimeout(TIMEOUT)
    ch.exec_command(command)
    out = ch.makefile("rb").read().decode()
    err = ch.makefile_stderr("rb").read().decode()
    return ch.recv_exit_status(), out, err


def test_first_login_must_change_the_password(sshd_server, account):
    server = sshd_server()

    # Without a terminal nothing runs: the password must be changed first.
    t0 = account.connect(server)
    login(t0, account.username, account.password)
    assert t0.is_authenticated()  # the expired password is accepted ...
    status, out, err = run_command(t0, "id -un")
    assert (status, out) == (1, "")  # ... but the command does not run
    assert err.splitlines() == [EXPIRED_SSHD, NO_TTY]
    t0.close()

    # With a terminal the server says so and starts passwd. (PAM's message comes with the
    # login messages, which sshd shows once per connection: hence a fresh one.)
    t = account.connect(server)
    login(t, account.username, account.password)
    ch = t.open_session(timeout=TIMEOUT)
    ch.get_pty()
    ch.invoke_shell()
    shown = read_until(ch, "Current password: ")
    assert EXPIRED_PAM in shown
    assert f"{EXPIRED_SSHD}\r\n{MUST_CHANGE}\r\n" in shown
    assert shown.endswith(f"Changing password for {account.username}.\r\nCurrent password: ")

    # Completing the change ends the connection; the new password then just works.
    new = generate_password()
    ch.sendall((account.password + "\n").encode())
    assert read_until(ch, "New password: ").endswith("New password: ")
    ch.sendall((new + "\n").encode())
    assert read_until(ch, "Retype new password: ").endswith("Retype new password: ")
    ch.sendall((new + "\n").encode())
    assert "passwd: password updated successfully" in read_until(ch, "successfully")
    assert ch.recv_exit_status() == 0
    t.close()

    t2 = account.connect(server)
    login(t2, account.username, new)
    status, out, _err = run_command(t2, "id -un")
    assert (status, out.strip()) == (0, account.username)
    assert f"Accepted password for {account.username}" in server.log()

    with pytest.raises(paramiko.AuthenticationException):
        account.connect(server).auth_password(account.username, account.password)


def test_keyboard_interactive_first_login_changes_the_password(sshd_server, account):
    server = sshd_server()
    new = generate_password()
    prompts = Prompts({
        "Password:": account.password,
        "Current password:": account.password,
        "New password:": new,
        "Retype new password:": new,
    })
    t = account.connect(server)
    t.auth_interactive(account.username, prompts)
    assert t.is_authenticated()
    assert prompts.seen == [
        "Password: ",
        f"{EXPIRED_PAM}\nChanging password for {account.username}.\nCurrent password: ",
        "New password: ",
        "Retype new password: ",
    ]
    status, out, _err = run_command(t, "id -un")
    assert (status, out.strip()) == (0, account.username)


def test_keyboard_interactive_login_that_does_not_change_is_refused(sshd_server, account):
    server = sshd_server()
    prompts = Prompts({"Password:": account.password})  # then leaves "Current password" empty
    t = account.connect(server)
    with pytest.raises(paramiko.AuthenticationException):
        t.auth_interactive(account.username, prompts)
    assert prompts.seen[0] == "Password: "
    assert EXPIRED_PAM in prompts.seen[1] and prompts.seen[1].endswith("Current password: ")


def test_a_wrong_password_is_refused(sshd_server, account):
    server = sshd_server()
    wrong = generate_password()
    with pytest.raises(paramiko.AuthenticationException):
        account.connect(server).auth_password(account.username, wrong, fallback=False)
    prompts = Prompts({"Password:": wrong})
    with pytest.raises(paramiko.AuthenticationException):
        account.connect(server).auth_interactive(account.username, prompts)
    assert prompts.seen and EXPIRED_PAM not in "".join(prompts.seen)
    assert f"Failed password for {account.username}" in server.log()
    with socket.create_connection((server.host, server.port), timeout=5):
        pass  # the server is still up after the failures
