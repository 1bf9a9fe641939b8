"""A provisioner that changes nothing: it says what the linux one would run.

It validates exactly like :class:`~etrepo.provisioning.linux.LinuxProvisioner` (so a request
that would fail for real fails here too), looks names up for real (harmless, no root), and
remembers the accounts it "created" so that its ``name_taken`` sees them. That memory belongs
to the instance (the process's one worker holds one), so two instances, e.g. two tests, never
see each other's pretend accounts.
"""

from __future__ import annotations

import logging
import pwd
import shlex
import threading

from etrepo.provisioning import linux
from etrepo.provisioning.interfaces import AccountSpec

log = logging.getLogger(__name__)

PREFIX = "would run: "
NOTHING = "would do nothing: "

def _would(lines: list[str], prefix: str = PREFIX) -> list[str]:
    out = [prefix + line for line in lines]
    for line in out:
        log.info("%s", line)
    return out


class DryRunProvisioner:
    """Creates nothing and runs no command; returns the action lines prefixed 'would run: '."""

    name = "dry-run"

    def __init__(self) -> None:
        self._created: dict[str, AccountSpec] = {}  # username -> spec "created" here
        self._lock = threading.Lock()

    def preflight(self, groups: tuple[str, ...], shell: str) -> None:
        # The same checks as the real backend, less root: a dry run shows what would fail.
        linux.check_groups(groups)
        linux.check_shell(shell)

    def name_taken(self, name: str) -> bool:
        with self._lock:
            if name in self._created:
                return True
        return linux.name_exists(name)

    def create_account(self, spec: AccountSpec) -> list[str]:
        linux.check_spec(spec)
        with self._lock:
            known = self._created.get(spec.username)
            if known is not None:
                linux.ensure_not_foreign(spec, _fake_passwd(known))
                return _would([f"user {spec.username} exists already (dry run)"], NOTHING)
            real = linux.lookup_user(spec.username)
            linux.ensure_not_foreign(spec, real)
            self._created[spec.username] = spec
        if real is not None:
            return _would([f"user {spec.username} exists already"], NOTHING)
        return _would([
            shlex.join(linux.useradd_argv(spec)),
            linux.workdir_line(spec),
        ])

    def set_initial_password(self, username: str, password: str) -> list[str]:
        linux.check_username(username)
        linux.check_password(password)
        return _would(linux.password_actions(username))

    def remove_account(self, spec: AccountSpec) -> list[str]:
        linux.check_removal(spec)
        with self._lock:
            known = self._created.pop(spec.username, None)
        real = linux.lookup_user(spec.username)
        if known is None and real is None:
            return _would([f"user {spec.username} does not exist"], NOTHING)
        linux.ensure_not_foreign(spec, real)
        return _would([f"rm -r {spec.workdir}", shlex.join(linux.userdel_argv(spec.username))])


def _fake_passwd(spec: AccountSpec) -> pwd.struct_passwd:
    return pwd.struct_passwd(
        (spec.username, "x", -1, -1, spec.gecos, str(spec.home), spec.shell)
    )
