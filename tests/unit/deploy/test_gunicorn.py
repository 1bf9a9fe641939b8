"""deploy/gunicorn.conf.py: only settings gunicorn knows, no control socket in a home the web
user cannot write, and an access log that names the client, not nginx."""

from __future__ import annotations

import http.client
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.processes import until
from tests.support.requirements import need

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "deploy" / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT = 30.0
CLIENT = "203.0.113.7"

# A home nobody can write, not even root, as the web user's under ProtectHome=yes.
NO_HOME = "/proc/etrepo-test-no-home"

PROBE_APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
'''


def conf_settings() -> dict[str, object]:
    return {k: v for k, v in runpy.run_path(str(CONF)).items()
            if not k.startswith("_") and not callable(v)}


def gunicorn_config():  # type: ignore[no-untyped-def]
    try:
        from gunicorn.config import Config
    except ImportError:
        need(False, "gunicorn is not installed: pip install '.[production]'")
        raise
    return Config()


def test_every_name_in_the_file_is_a_gunicorn_setting():
    # gunicorn ignores unknown names without a word: a typo would turn a setting off.
    known = gunicorn_config().settings
    assert [name for name in conf_settings() if name not in known] == []


def test_the_control_socket_is_off():
    # By default gunicorn 25.1+ opens it in ~/.gunicorn: an ERROR at every start of the web
    # user, whose home is not writable.
    cfg = gunicorn_config()
    for name, value in conf_settings().items():
        cfg.set(name, value)
    assert cfg.control_socket_disable is True


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def wait_listening(process: subprocess.Popen[bytes], path: Path) -> bool:
    """Poll until the socket accepts (True), or gunicorn exits / the deadline passes (False)."""

    def accepts() -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))
        except OSError:
            return False
        return True

    return until(process, accepts, START_TIMEOUT)


def wait_logged(process: subprocess.Popen[bytes], path: Path, *texts: str) -> bool:
    """Poll the log until one of ``texts`` is in it (True), or gunicorn exits / the deadline."""
    return until(process, lambda: any(text in path.read_text() for text in texts),
                 START_TIMEOUT)


def test_gunicorn_with_this_file_starts_clean_and_logs_the_client(tmp_path):
    need(GUNICORN.is_file(), "gunicorn is not installed: pip install '.[production]'")
    (tmp_path / "probe_app.py").write_text(PROBE_APP)
    sock = tmp_path / "web.sock"
    log_path = tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["HOME"] = NO_HOME
    # The file as shipped; only the socket moves out of /run/etrepo (systemd makes that), and
    # debug lines tell when the arbiter is past its control socket (it opens it in a thread
    # once the workers are booted).
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", str(CONF), "--bind", f"unix:{sock}",
             "--log-level", "debug", "--pythonpath", str(tmp_path), "probe_app:app"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT)
    try:
        assert wait_listening(process, sock), log_path.read_text()
        assert wait_logged(process, log_path, "Control socket disabled", "Control server error",
                           "Control socket listening"), log_path.read_text()
        connection = UnixHTTPConnection(sock)
        # What nginx sends: the client's address last in X-Forwarded-For.
        connection.request("GET", "/probe", headers={"Host": "portal.test",
                                                     "X-Forwarded-For": CLIENT,
                                                     "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        connection.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    log = log_path.read_text()
    access = [line for line in log.splitlines() if '"GET /probe HTTP/1.1" 200' in line]
    assert len(access) == 1, log
    assert access[0].startswith(f"{CLIENT} - - ["), log
    assert "[ERROR]" not in log, log
