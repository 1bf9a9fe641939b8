"""The benchmark must keep working: a tiny run of it, as root, on real useradd."""

from __future__ import annotations

import pwd
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.requirements import need_root

pytestmark = pytest.mark.root
BENCH = Path(__file__).resolve().parents[2] / "bench" / "provisioning.py"


def test_the_provisioning_benchmark_runs_and_leaves_no_user_behind():
    need_root()
    # Every user name of the run holds the tag: another run at the same time has another one.
    tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    result = subprocess.run([sys.executable, str(BENCH), "-n", "3", "--single", "1",
                             "--tag", tag], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ratio worker / bare loop:" in result.stdout
    assert "median confirm-to-active" in result.stdout
    assert [p.pw_name for p in pwd.getpwall() if tag in p.pw_name] == []
