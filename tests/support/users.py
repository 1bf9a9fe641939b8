"""Throwaway Linux users for tests run as root."""

from __future__ import annotations

import grp
import pwd
import subprocess


def purge_user(name: str) -> None:
    """Remove a throwaway user and its group whatever the test did (safe if already gone)."""
    try:
        pwd.getpwnam(name)
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
    except KeyError:
        pass
    try:
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], capture_output=True, check=False)
    except KeyError:
        pass
