"""The provisioner contract: one narrow, idempotent method per privileged action."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class AccountSpec:
    """Everything needed to create one account; all fields already validated, ASCII only."""

    username: str
    gecos: str  # ASCII full name, without ':' ',' '=' or control characters
    home: Path
    workdir: Path
    shell: str
    groups: tuple[str, ...] = ()


class ProvisioningError(Exception):
    """An action failed. The message is safe to show (it never holds a password)."""


class Provisioner(Protocol):
    name: str

    def preflight(self, groups: tuple[str, ...], shell: str) -> None:
        """Raise ProvisioningError if accounts with these settings cannot be made here (a
        missing group, a shell that does not exist, no privilege): checked at worker start,
        so a wrong setting stops the worker instead of failing every request."""
        ...

    def name_taken(self, name: str) -> bool:
        """True if ``name`` is an existing user or group on the system."""
        ...

    def create_account(self, spec: AccountSpec) -> list[str]:
        """Create user, home and work directory. A rerun after any crash is a no-op that
        completes what is missing. Returns the actions taken (or that would be), one per line,
        for the request's history. Raises ProvisioningError if the name belongs to someone else.
        """
        ...

    def set_initial_password(self, username: str, password: str) -> list[str]:
        """Set the password (via stdin, never argv) and expire it so the first login must
        change it. Returns the actions taken, without the password."""
        ...

    def remove_account(self, spec: AccountSpec) -> list[str]:
        """Remove user, home and work directory; a no-op if already gone."""
        ...
