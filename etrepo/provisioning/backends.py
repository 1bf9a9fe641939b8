"""Pick the provisioner named by ``Settings.PROVISIONER``."""

from __future__ import annotations

from etrepo.config import Settings
from etrepo.provisioning.interfaces import Provisioner


def make_provisioner(settings: Settings) -> Provisioner:
    """``"linux"``: real accounts (the worker must run as root); ``"dry-run"``: none."""
    if settings.PROVISIONER == "linux":
        from etrepo.provisioning.linux import LinuxProvisioner

        return LinuxProvisioner()
    if settings.PROVISIONER == "dry-run":
        from etrepo.provisioning.dryrun import DryRunProvisioner

        return DryRunProvisioner()
    raise ValueError(f"PROVISIONER: unknown backend {settings.PROVISIONER!r}")
