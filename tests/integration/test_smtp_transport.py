"""SmtpTransport against a real SMTP server (aiosmtpd) in each security mode."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etrepo.config import load_settings
from etrepo.mail.interfaces import MailError, OutgoingMail
from etrepo.mail.transport import SmtpTransport
from tests.support import smtp as smtp_support
from tests.support.smtp import SmtpSink

# The fixture, until tests/conftest.py provides it for every test module.
smtp_sink_factory = smtp_support.smtp_sink_factory

SENDER = "ETRepo <no-reply@localhost>"
PASSWORD = "Pa55-w0rd-never-shown"


def _mail(subject: str = "Hello", **changes: str) -> OutgoingMail:
    fields = {
        "to_addr": "alice@example.org",
        "to_name": "Alice Example",
        "subject": subject,
        "body": "Your code is 123456.\n",
    }
    fields.update(changes)
    return OutgoingMail(**fields)


def _transport(sink: SmtpSink, **overrides: Any) -> SmtpTransport:
    kwargs: dict[str, Any] = {
        "host": sink.host,
        "port": sink.port,
        "security": sink.mode,
        "ca_file": str(sink.ca_file) if sink.ca_file else "",
        "timeout": 5.0,
        "sender": SENDER,
    }
    kwargs.update(overrides)
    return SmtpTransport(**kwargs)


def _send_error(transport: SmtpTransport, mail: OutgoingMail) -> MailError:
    with pytest.raises(MailError) as caught:
        transport.send(mail)
    return caught.value


# --- delivery in each mode ---------------------------------------------------------------------


def test_plain_delivery(smtp_sink_factory: Callable[..., SmtpSink]) -> None:
    sink = smtp_sink_factory("none")
    _transport(sink).send(_mail("Plain"))

    got = sink.wait_for(lambda m: m["Subject"] == "Plain")
    assert got["To"].addresses[0].addr_spec == "alice@example.org"
    assert got["From"].addresses[0].addr_spec == "no-reply@localhost"
    assert got["Message-ID"] and got["Date"]
    assert got.get_content() == "Your code is 123456.\n"
    (received,) = sink.received
    assert received.mail_from == "no-reply@localhost"
    assert received.rcpt_tos == ("alice@example.org",)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_delivery_verified_with_ca_file(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode)
    _transport(sink).send(_mail(f"Over {mode}"))
    assert sink.wait_for(lambda m: m["Subject"] == f"Over {mode}")


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_verifies_by_host_name_too(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode)
    _transport(sink, host="localhost").send(_mail("By name"))
    assert sink.wait_for(lambda m: m["Subject"] == "By name")


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_unknown_certificate_is_refused_by_default(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode)
    error = _send_error(_transport(sink, ca_file=""), _mail("Must not arrive"))

    assert error.permanent is False
    assert "certificate" in str(error)
    assert sink.messages == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_verify_false_accepts_unknown_certificate(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode)
    _transport(sink, ca_file="", verify=False).send(_mail("Trusted link"))
    assert sink.wait_for(lambda m: m["Subject"] == "Trusted link")


def test_starttls_mode_fails_when_server_offers_no_starttls(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("none")
    error = _send_error(_transport(sink, security="starttls"), _mail())
    assert error.permanent is False
    assert "STARTTLS" in str(error)
    assert sink.messages == []


# --- login ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "starttls", "tls"])
def test_login_success(smtp_sink_factory: Callable[..., SmtpSink], mode: str) -> None:
    sink = smtp_sink_factory(mode, user="portal", password=PASSWORD)
    _transport(sink, user="portal", password=PASSWORD).send(_mail("With login"))

    assert sink.wait_for(lambda m: m["Subject"] == "With login")
    assert sink.logins == ["portal"]


@pytest.mark.parametrize("mode", ["none", "starttls"])
def test_wrong_password_is_a_mail_error_without_the_password(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode, user="portal", password=PASSWORD)
    wrong = "Wr0ng-" + PASSWORD
    error = _send_error(_transport(sink, user="portal", password=wrong), _mail())

    assert error.permanent is False  # a configuration problem: fixed by the admin, then retry
    assert "login" in str(error) and "535" in str(error)
    assert wrong not in str(error) and PASSWORD not in str(error)
    assert sink.messages == [] and sink.logins == []


def test_server_requiring_login_refuses_anonymous_sender(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("none", user="portal", password=PASSWORD)
    error = _send_error(_transport(sink), _mail())
    assert error.permanent is False
    assert "530" in str(error)


# --- outages and refusals ----------------------------------------------------------------------


def test_stopped_server_is_a_quick_temporary_error_and_recovery_works(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("none")
    transport = _transport(sink, timeout=2.0)
    sink.stop()

    started = time.monotonic()
    error = _send_error(transport, _mail("During outage"))
    assert time.monotonic() - started < 2.0
    assert error.permanent is False
    assert "refused" in str(error)

    sink.start()  # same port
    transport.send(_mail("After outage"))
    assert sink.wait_for(lambda m: m["Subject"] == "After outage")
    assert [m["Subject"] for m in sink.messages] == ["After outage"]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections but never says anything."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_silent_server_times_out_as_temporary_error(silent_server: int) -> None:
    transport = SmtpTransport(
        host="127.0.0.1", port=silent_server, timeout=0.3, sender=SENDER
    )
    started = time.monotonic()
    error = _send_error(transport, _mail())
    assert time.monotonic() - started < 3.0
    assert error.permanent is False
    assert "no answer within 0.3 s" in str(error)


def test_recipient_refused_with_550_is_permanent(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("none")
    sink.refused.add("nobody@example.org")
    error = _send_error(_transport(sink), _mail(to_addr="nobody@example.org"))

    assert error.permanent is True
    assert "550" in str(error) and "nobody@example.org" in str(error)
    _transport(sink).send(_mail("Others still work"))
    assert [m["Subject"] for m in sink.messages] == ["Others still work"]


def test_recipient_deferred_with_451_is_temporary(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("none")
    sink.deferred.add("busy@example.org")
    error = _send_error(_transport(sink), _mail(to_addr="busy@example.org"))
    assert error.permanent is False
    assert "451" in str(error)


@pytest.mark.parametrize(("reply", "permanent"), [
    ("554 5.6.0 Message rejected", True),
    ("452 4.3.1 Insufficient system storage", False),
])
def test_data_refusal(
    smtp_sink_factory: Callable[..., SmtpSink], reply: str, permanent: bool
) -> None:
    sink = smtp_sink_factory("none")
    sink.data_reply = reply
    error = _send_error(_transport(sink), _mail())
    assert error.permanent is permanent
    assert reply.split()[0] in str(error)
    assert "123456" not in str(error)  # never the body


# --- content ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "starttls"])
def test_non_ascii_names_and_body_arrive_intact(
    smtp_sink_factory: Callable[..., SmtpSink], mode: str
) -> None:
    sink = smtp_sink_factory(mode)
    transport = _transport(sink, sender="Aurélien Lefèvre <aurelien@example.org>")
    body = "Bonjour Zoë Ødegård,\nvotre compte « zodegard » est prêt. Grüße, Ł ß ✓\n"
    transport.send(
        _mail("Compte créé — Zoë", to_addr="zoe@example.org", to_name="Zoë Ødegård", body=body)
    )

    got = sink.wait_for(lambda m: m["Subject"] == "Compte créé — Zoë")
    (to,) = got["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë Ødegård", "zoe@example.org")
    (sender,) = got["From"].addresses
    assert sender.display_name == "Aurélien Lefèvre"
    assert got.get_content_type() == "text/plain"
    assert got.get_content_charset() == "utf-8"
    assert got.get_content() == body
    assert sink.received[0].raw.isascii()  # 7-bit clean on the wire


def test_header_injection_is_refused_before_connecting() -> None:
    transport = SmtpTransport(host="127.0.0.1", port=9, sender=SENDER, timeout=0.5)
    with pytest.raises(ValueError):
        transport.send(_mail("Hi\r\nBcc: victim@example.org"))


def test_password_never_in_errors_or_repr(smtp_sink_factory: Callable[..., SmtpSink]) -> None:
    sink = smtp_sink_factory("starttls", user="portal", password=PASSWORD)
    failures = [
        _send_error(_transport(sink, user="portal", password=PASSWORD, ca_file=""), _mail()),
        _send_error(_transport(sink, user="portal", password=PASSWORD, port=1), _mail()),
        _send_error(_transport(sink, user="nobody", password=PASSWORD), _mail()),
    ]
    for error in failures:
        assert PASSWORD not in str(error) and PASSWORD not in repr(error)
        assert error.__cause__ is None and error.__suppress_context__
    assert PASSWORD not in repr(_transport(sink, user="portal", password=PASSWORD))


def test_from_settings_uses_every_smtp_setting(
    smtp_sink_factory: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink_factory("tls", user="portal", password=PASSWORD)
    settings = load_settings(environ={}, overrides={
        "SMTP_HOST": sink.host, "SMTP_PORT": sink.port, "SMTP_SECURITY": "tls",
        "SMTP_USER": "portal", "SMTP_PASSWORD": PASSWORD, "SMTP_CA_FILE": str(sink.ca_file),
        "SMTP_VERIFY": True, "SMTP_TIMEOUT": 4.0, "MAIL_FROM": "Portal <portal@localhost>",
    })
    transport = SmtpTransport.from_settings(settings)
    assert transport.timeout == 4.0
    transport.send(_mail("From settings"))

    got = sink.wait_for(lambda m: m["Subject"] == "From settings")
    assert str(got["From"]) == "Portal <portal@localhost>"
    assert sink.logins == ["portal"]
