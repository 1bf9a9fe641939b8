"""A real SMTP server for tests: plain, STARTTLS or implicit TLS, optionally with AUTH.

``SmtpSink`` wraps aiosmtpd on 127.0.0.1 and keeps what it receives as ``EmailMessage``
objects. It can refuse chosen recipients (550) or defer them (451), answer DATA with a chosen
reply, and be stopped and started again on the same port to simulate an outage.

Use the ``smtp_sink_factory`` fixture (``tests/conftest.py`` imports it)::

    def test_x(smtp_sink_factory):
        sink = smtp_sink_factory("starttls", user="alice", password="s3cret")
        ... SmtpTransport(host=sink.host, port=sink.port, ca_file=str(sink.ca_file), ...)
        mail = sink.wait_for(lambda m: m["Subject"] == "Hello")
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hmac
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from etrepo.mail.catcher import LocalController

SINK_HOST = "127.0.0.1"
MODES = ("none", "starttls", "tls")


def make_self_signed_cert(tmp_path: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """Write a self-signed server certificate (SAN DNS:hostname, IP:127.0.0.1) and its key.

    Returns ``(cert_path, key_path)``; the certificate is its own CA, so clients verify the
    server by passing ``cert_path`` as their CA file.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    cert_path = tmp_path / f"{hostname}-cert.pem"
    key_path = tmp_path / f"{hostname}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass(frozen=True)
class Received:
    """One accepted mail: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self._sink.user and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self._sink.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        if address.lower() in self._sink.deferred:
            return f"451 4.3.0 <{address}>: Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._sink.data_reply:
            return self._sink.data_reply
        raw = envelope.original_content or b""
        self._sink._add(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                # Line ends as a local mail store keeps them (the wire uses CRLF).
                message=email.message_from_bytes(
                    raw.replace(b"\r\n", b"\n"), policy=email.policy.default
                ),
                raw=raw,
            )
        )
        return "250 2.0.0 OK: queued"


class SmtpSink:
    """A test SMTP server on 127.0.0.1 (a free port, kept across stop/start).

    ``mode``: "none", "starttls" (STARTTLS required before MAIL) or "tls" (implicit TLS);
    the TLS modes need ``cert=(cert_path, key_path)``. With ``user`` set, MAIL is refused
    (530) until the client logged in with ``user``/``password``.

    Mutable knobs: ``refused`` / ``deferred`` (lower-case addresses answered 550 / 451 at
    RCPT) and ``data_reply`` (e.g. "554 5.6.0 Rejected": the answer to DATA instead of
    accepting).
    """

    def __init__(
        self,
        mode: str = "none",
        *,
        cert: tuple[Path, Path] | None = None,
        user: str = "",
        password: str = "",
        port: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode != "none" and cert is None:
            raise ValueError(f"mode {mode!r} needs cert=(cert_path, key_path)")
        self.mode = mode
        self.cert = cert
        self.user = user
        self.password = password
        self.host = SINK_HOST
        self.port = port
        self.refused: set[str] = set()
        self.deferred: set[str] = set()
        self.data_reply: str | None = None
        self.logins: list[str] = []
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._controller: LocalController | None = None

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The CA a client must trust to verify this server (the self-signed certificate)."""
        return self.cert[0] if self.cert else None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _server_context(self) -> ssl.SSLContext:
        assert self.cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return context

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise RuntimeError("sink already running")
        kwargs: dict[str, Any] = {"server_hostname": "localhost"}
        if self.mode == "tls":
            kwargs["ssl_context"] = self._server_context()
        elif self.mode == "starttls":
            kwargs["tls_context"] = self._server_context()
            kwargs["require_starttls"] = True
        if self.user:
            kwargs["authenticator"] = self._authenticate
            # Over implicit TLS aiosmtpd does not see the TLS layer (it only knows STARTTLS),
            # and plain-mode tests need AUTH without TLS: only STARTTLS mode requires it.
            # (Login is enforced in handle_MAIL, not by auth_required=True, which warns when
            # combined with auth_require_tls=False.)
            kwargs["auth_require_tls"] = self.mode == "starttls"
        controller = LocalController(
            _SinkHandler(self), hostname=self.host, port=self.port, **kwargs
        )
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self

    def stop(self) -> None:
        """Stop listening (the port stays reserved for :meth:`start`). Idempotent."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what came in -----------------------------------------------------------------------------

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self.user.encode())
            and hmac.compare_digest(auth_data.password, self.password.encode())
        )
        if ok:
            with self._changed:
                self.logins.append(self.user)
        # handled=False: aiosmtpd answers 535 on failure.
        return AuthResult(success=ok, handled=False)

    def _add(self, received: Received) -> None:
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool] | None = None,
        timeout: float = 10,
    ) -> EmailMessage:
        """The first received message matching ``predicate`` (any, if None); waits for it
        until ``timeout`` seconds have passed, then fails with AssertionError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for received in self._received:
                    if predicate is None or predicate(received.message):
                        return received.message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [str(r.message["Subject"]) for r in self._received]
                    raise AssertionError(
                        f"no matching mail within {timeout} s; received: {subjects}"
                    )
                self._changed.wait(remaining)


@pytest.fixture
def smtp_sink_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SmtpSink]]:
    """A factory ``make(mode="none", **SmtpSink kwargs) -> SmtpSink`` of started sinks.

    TLS modes get a fresh self-signed certificate for localhost/127.0.0.1 unless ``cert`` is
    given (``sink.ca_file`` is the file a client must trust). All sinks stop at teardown.
    """
    sinks: list[SmtpSink] = []
    certs: dict[str, tuple[Path, Path]] = {}

    def make(mode: str = "none", **kwargs: Any) -> SmtpSink:
        if mode != "none" and kwargs.get("cert") is None:
            if "localhost" not in certs:
                certs["localhost"] = make_self_signed_cert(tmp_path_factory.mktemp("smtp-cert"))
            kwargs["cert"] = certs["localhost"]
        sink = SmtpSink(mode, **kwargs)
        sinks.append(sink)
        return sink.start()

    yield make
    for sink in sinks:
        sink.stop()
