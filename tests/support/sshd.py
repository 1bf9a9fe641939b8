"""A real OpenSSH server for tests: ``sshd -D -e`` on 127.0.0.1 with its own config and keys.

``sshd_server`` is a fixture factory: the test calls it to start a server, which is stopped
at teardown::

    def test_login(sshd_server):
        server = sshd_server()              # an SshdServer, listening already
        ... paramiko to server.host, server.port ...

Import it into a test module with ``sshd_server = tests.support.sshd.sshd_server``.
Needs root and Debian's openssh-server; without them the test is skipped (or fails under
ETREPO_TEST_STRICT=1).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import wait_listening
from tests.support.requirements import need_program, need_root

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
HOST = "127.0.0.1"


@dataclass
class SshdServer:
    host: str
    port: int
    config: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        """What sshd wrote so far (-e: its log goes to stderr, captured in this file)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _config_text(
    port: int, host_key: Path, pid_file: Path, allow_users: str, extra: Mapping[str, str]
) -> str:
    options = {
        "ListenAddress": HOST,
        "Port": str(port),
        "HostKey": str(host_key),
        "PidFile": str(pid_file),
        "UsePAM": "yes",
        "PasswordAuthentication": "yes",
        "KbdInteractiveAuthentication": "yes",
        "PubkeyAuthentication": "no",
        "AuthorizedKeysFile": "none",
        "PermitRootLogin": "no",
        # Only throwaway test accounts may log in to this server.
        "AllowUsers": allow_users,
        "PrintMotd": "no",
        "PrintLastLog": "no",
        "UseDNS": "no",
        "X11Forwarding": "no",
        "AllowTcpForwarding": "no",
        "LoginGraceTime": "30",
        "LogLevel": "VERBOSE",
        **extra,
    }
    return "".join(f"{k} {v}\n" for k, v in options.items())


def _check_config(sshd: str, config: Path) -> None:
    """``sshd -t``; newer OpenSSH (9.8+) would penalise our deliberate wrong passwords."""
    base = config.read_text(encoding="utf-8")
    config.write_text(base + "PerSourcePenalties no\n", encoding="utf-8")
    test = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    if test.returncode != 0 and "PerSourcePenalties" in test.stderr:
        config.write_text(base, encoding="utf-8")  # an older sshd without penalties
        test = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    if test.returncode != 0:
        pytest.fail(f"sshd -t rejected the test config: {test.stderr.strip()}", pytrace=False)


@pytest.fixture
def sshd_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SshdServer]]:
    need_root()
    sshd = need_program(SSHD, "openssh-server")
    keygen = need_program("ssh-keygen", "openssh-client")
    started: list[SshdServer] = []

    def start(*, allow_users: str = "etq*", extra: Mapping[str, str] | None = None) -> SshdServer:
        base = tmp_path_factory.mktemp("sshd")
        host_key = base / "ssh_host_ed25519_key"
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "etrepo-test", "-f", str(host_key)],
            check=True,
            capture_output=True,
        )
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation chroot
        config = base / "sshd_config"
        log_path = base / "sshd.log"
        last_log = ""
        for _attempt in range(3):  # another process may grab the free port first
            port = _free_port()
            config.write_text(
                _config_text(port, host_key, base / "sshd.pid", allow_users, extra or {}),
                encoding="utf-8",
            )
            _check_config(sshd, config)
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            server = SshdServer(HOST, port, config, log_path, proc)
            started.append(server)
            if wait_listening(proc, HOST, (port,), START_TIMEOUT):
                return server
            last_log = server.log()
            server.stop()
            if "Address already in use" not in last_log:
                break
        pytest.fail(f"sshd did not start listening:\n{last_log}", pytrace=False)

    yield start
    for server in started:
        server.stop()


def user_processes(uid: int) -> list[int]:
    """Pids of the processes whose real uid is ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                if int(line.split()[1]) == uid:
                    pids.append(int(entry.name))
                break
    return pids
