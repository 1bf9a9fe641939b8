"""Skip a test whose real part is missing here, or fail it under ETREPO_TEST_STRICT=1 (CI)."""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = os.environ.get("ETREPO_TEST_STRICT", "") not in ("", "0")


def need(condition: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``condition``; under strict mode a missing part fails."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"ETREPO_TEST_STRICT=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (real useradd/sshd): run the tests as root")


def need_program(path_or_name: str, package: str) -> str:
    found = shutil.which(path_or_name)
    need(found is not None, f"{path_or_name} not found: install Debian's {package}")
    assert found is not None
    return found
