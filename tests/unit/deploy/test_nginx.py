"""deploy/nginx/etrepo.conf in a real nginx (Debian 12 ships 1.22).

The site file is used as shipped; only what each deployment sets differently is rewritten:
server name, certificate paths, listen addresses (free ports on 127.0.0.1) and the upstream
(a small HTTP server in this test that answers with the request it got). nginx runs as root in
the foreground with its pid file and logs in a temporary folder, and is stopped at teardown.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support import processes
from tests.support.requirements import need_program, need_root

REPO = Path(__file__).resolve().parents[3]
SITE = REPO / "deploy" / "nginx" / "etrepo.conf"
SERVER_NAME = "portal.test"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


# --- the upstream: answers with what it was sent --------------------------------------------
@dataclass
class Upstream:
    server: ThreadingHTTPServer
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    @property
    def port(self) -> int:
        return self.server.server_address[1]


def start_upstream() -> Upstream:
    upstream: Upstream

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            upstream.seen.append((self.command, self.path))
            body = json.dumps({"headers": dict(self.headers.items()),
                               "body_length": length}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Echo)  # listening from here on
    server.daemon_threads = True
    upstream = Upstream(server)
    threading.Thread(target=server.serve_forever, name="upstream", daemon=True).start()
    return upstream


# --- a certificate for the test server name -------------------------------------------------
def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


# --- the site file with this test's values ---------------------------------------------------
def site_for_test(*, http_port: int, https_port: int, upstream_port: int, cert: Path,
                  key: Path) -> str:
    text = SITE.read_text()
    rewrites = [
        (r"^(\s*)listen 80;$", rf"\g<1>listen {HOST}:{http_port};"),
        (r"^\s*listen \[::\]:80;\n", ""),
        (r"^(\s*)listen 443 ssl http2;$", rf"\g<1>listen {HOST}:{https_port} ssl http2;"),
        (r"^\s*listen \[::\]:443 ssl http2;\n", ""),
        (r"server unix:/run/etrepo/web\.sock", f"server {HOST}:{upstream_port}"),
        (r"^(\s*)ssl_certificate\s+\S+;$", rf"\g<1>ssl_certificate {cert};"),
        (r"^(\s*)ssl_certificate_key\s+\S+;$", rf"\g<1>ssl_certificate_key {key};"),
        (r"^(\s*)server_name et-repo\.example\.org;$", rf"\g<1>server_name {SERVER_NAME};"),
    ]
    for pattern, replacement in rewrites:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count >= 1, f"{SITE.name} no longer has {pattern!r}: update this test"
    return text


def main_config(folder: Path) -> str:
    return f"""
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/etrepo.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    folder: Path
    http_port: int
    https_port: int
    cert: Path
    upstream: Upstream

    def log(self) -> str:
        return "".join(path.read_text(errors="replace")
                       for path in (self.folder / "stderr.log", self.folder / "error.log")
                       if path.exists())

    def https(self, path: str) -> str:
        return f"https://{HOST}:{self.https_port}{path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # fast shutdown: the master stops its workers, then exits
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def wait_listening(nginx: Nginx) -> bool:
    return processes.wait_listening(nginx.process, HOST, (nginx.http_port, nginx.https_port),
                                    START_TIMEOUT)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    need_root()
    binary = need_program("/usr/sbin/nginx", "nginx")
    folder = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed(folder)
    upstream = start_upstream()
    conf = folder / "nginx.conf"
    conf.write_text(main_config(folder))
    started: Nginx | None = None
    try:
        for _attempt in range(3):  # another process may take a free port first
            http_port, https_port = free_port(), free_port()
            (folder / "etrepo.conf").write_text(site_for_test(
                http_port=http_port, https_port=https_port, upstream_port=upstream.port,
                cert=cert, key=key))
            command = [binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
            test = subprocess.run([*command, "-t"], capture_output=True, text=True)
            assert test.returncode == 0, f"nginx -t:\n{test.stderr}"
            with (folder / "stderr.log").open("wb") as stderr:
                process = subprocess.Popen([*command, "-g", "daemon off;"],
                                           stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
            started = Nginx(process, folder, http_port, https_port, cert, upstream)
            if wait_listening(started):
                break
            started.stop()
            if "Address already in use" not in started.log():
                pytest.fail(f"nginx did not start:\n{started.log()}", pytrace=False)
        else:
            pytest.fail(f"nginx found no free ports:\n{started and started.log()}", pytrace=False)
        yield started
    finally:
        if started is not None:
            started.stop()
        upstream.server.shutdown()
        upstream.server.server_close()


def test_http_is_redirected_to_https(nginx):
    response = requests.get(f"http://{HOST}:{nginx.http_port}/requests/abc?lang=en",
                            headers={"Host": SERVER_NAME}, allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{SERVER_NAME}/requests/abc?lang=en"


def test_https_offers_http2_to_the_browsers(nginx):
    context = ssl.create_default_context(cafile=str(nginx.cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (socket.create_connection((HOST, nginx.https_port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls):
        assert tls.selected_alpn_protocol() == "h2"


def test_https_sends_hsts_and_gives_the_app_the_client_and_the_scheme(nginx):
    response = requests.get(nginx.https("/api/v1/requests/abc"), verify=str(nginx.cert),
                            headers={"Host": SERVER_NAME, "X-Forwarded-For": "198.51.100.9"},
                            timeout=10)
    assert response.status_code == 200, nginx.log()
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    got = response.json()["headers"]
    # nginx appends the address it saw; the app (TRUSTED_PROXIES=1) takes that last one.
    assert got["X-Forwarded-For"] == f"198.51.100.9, {HOST}"
    assert got["X-Forwarded-Proto"] == "https"
    assert got["X-Forwarded-Host"] == SERVER_NAME
    assert got["Host"] == SERVER_NAME


def test_a_body_over_the_limit_gets_the_apps_json_413_from_nginx(nginx, client):
    body = b"x" * 100_000
    headers = {"Host": SERVER_NAME, "Content-Type": "application/json"}
    response = requests.post(nginx.https("/api/v1/requests"), data=body, headers=headers,
                             verify=str(nginx.cert), timeout=10)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    # The very answer the app gives to the same request on its own.
    apps = client.post("/api/v1/requests", data=body, content_type="application/json")
    assert apps.status_code == 413
    assert response.json() == apps.get_json()
    assert response.json()["error"] == "request_entity_too_large"
    assert ("POST", "/api/v1/requests") not in nginx.upstream.seen  # stopped at nginx
