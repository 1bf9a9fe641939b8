"""Provisioners for worker tests: one that always fails, one that dies once, one that waits."""

from __future__ import annotations

import threading

from etrepo.provisioning.dryrun import DryRunProvisioner
from etrepo.provisioning.interfaces import AccountSpec, ProvisioningError


class BrokenProvisioner:
    """Implements the provisioner contract; every account creation fails with ``reason``."""

    name = "broken"

    def __init__(self, reason: str = "useradd: group 'etusers' does not exist") -> None:
        self.reason = reason
        self.attempts: list[AccountSpec] = []

    def name_taken(self, name: str) -> bool:
        return False

    def create_account(self, spec: AccountSpec) -> list[str]:
        self.attempts.append(spec)
        raise ProvisioningError(self.reason)

    def set_initial_password(self, username: str, password: str) -> list[str]:
        raise ProvisioningError(self.reason)

    def remove_account(self, spec: AccountSpec) -> list[str]:
        return []


class RecordingProvisioner:
    """A dry-run provisioner that also records each call, and can be killed once at a step.

    ``die_at`` is "create_account" (before creating: the username is fixed already) or
    "set_initial_password" (after the account exists). The first call of that step raises
    KeyboardInterrupt, which no handler in the worker catches: the process would be gone.
    """

    def __init__(self, inner: DryRunProvisioner | None = None, die_at: str | None = None) -> None:
        self.inner = inner or DryRunProvisioner()
        self.name = self.inner.name
        self.die_at = die_at
        self.calls: list[tuple[str, str]] = []
        self.specs: list[AccountSpec] = []

    def _maybe_die(self, step: str) -> None:
        if self.die_at == step:
            self.die_at = None
            raise KeyboardInterrupt(f"killed in {step}")

    def name_taken(self, name: str) -> bool:
        return self.inner.name_taken(name)

    def create_account(self, spec: AccountSpec) -> list[str]:
        self.calls.append(("create_account", spec.username))
        self.specs.append(spec)
        self._maybe_die("create_account")
        return self.inner.create_account(spec)

    def set_initial_password(self, username: str, password: str) -> list[str]:
        self.calls.append(("set_initial_password", username))
        self._maybe_die("set_initial_password")
        return self.inner.set_initial_password(username, password)

    def remove_account(self, spec: AccountSpec) -> list[str]:
        return self.inner.remove_account(spec)

    def created(self) -> set[str]:
        """Names the dry run holds as created (what useradd would have left on the system)."""
        return {name for step, name in self.calls if step == "create_account"
                if self.inner.name_taken(name)}


class GateProvisioner(RecordingProvisioner):
    """Waits in create_account until ``release`` is set; ``started`` tells it got there."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def create_account(self, spec: AccountSpec) -> list[str]:
        self.started.set()
        if not self.release.wait(10):
            raise ProvisioningError("test gate never released")
        return super().create_account(spec)
