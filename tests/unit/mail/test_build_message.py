"""build_message: headers, UTF-8, header injection; and MemoryTransport, which uses it."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage

import pytest

from etrepo.mail.interfaces import MailError, OutgoingMail
from etrepo.mail.transport import MemoryTransport, SmtpTransport, build_message

SENDER = "ETRepo <no-reply@localhost>"


def _mail(**changes: str) -> OutgoingMail:
    fields = {
        "to_addr": "zoe@example.org",
        "to_name": "Zoë Ødegård",
        "subject": "Your account",
        "body": "Hello,\nyour code is 424242.\n",
    }
    fields.update(changes)
    return OutgoingMail(**fields)


def _reparse(message: EmailMessage) -> EmailMessage:
    """What a receiving mail program sees."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_and_body() -> None:
    when = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    msg = _reparse(build_message(_mail(), SENDER, now=when))

    assert str(msg["From"]) == "ETRepo <no-reply@localhost>"
    assert msg["Subject"] == "Your account"
    assert msg["Date"].datetime == when
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@localhost>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg.get_content() == "Hello,\nyour code is 424242.\n"
    assert not msg.defects


def test_naive_now_is_utc() -> None:
    msg = _reparse(build_message(_mail(), SENDER, now=dt.datetime(2026, 3, 1, 12, 30)))
    assert msg["Date"].datetime == dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)


def test_message_ids_are_unique() -> None:
    ids = {build_message(_mail(), SENDER)["Message-ID"] for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize("name", ["Zoë Ødegård", "Aurélien Lefèvre", "Łukasz Żółć", "李小龍",
                                  'Müller, Hans "Hansi" (Dr.)'])
def test_unicode_display_names_are_encoded_and_survive(name: str) -> None:
    raw = build_message(_mail(to_name=name), "Aurélien Lefèvre <a@example.org>").as_bytes()
    assert raw.isascii()  # RFC 2047 encoded words / quoted-printable: 7-bit clean
    msg = _reparse(build_message(_mail(to_name=name), "Aurélien Lefèvre <a@example.org>"))
    (to,) = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, "zoe@example.org")
    assert msg["From"].addresses[0].display_name == "Aurélien Lefèvre"


def test_unicode_subject_and_body() -> None:
    body = "Grüße, Zoë! Ø å ß ✓ — « fin »\n"
    msg = _reparse(build_message(_mail(subject="Compte créé — Zoë", body=body), SENDER))
    assert msg["Subject"] == "Compte créé — Zoë"
    assert msg.get_content() == body


def test_crlf_in_body_is_normalised() -> None:
    msg = _reparse(build_message(_mail(body="one\r\ntwo\rthree\n"), SENDER))
    assert msg.get_content() == "one\ntwo\nthree\n"


def test_empty_display_name_gives_bare_address() -> None:
    msg = build_message(_mail(to_name=""), SENDER)
    assert str(msg["To"]) == "zoe@example.org"


@pytest.mark.parametrize("subject", [
    "Hi\r\nBcc: victim@example.org",
    "Hi\nBcc: victim@example.org",
    "Hi\rBcc: victim@example.org",
    "Hi\x00there",
    "Hi\u2028there",
])
def test_header_injection_in_subject_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        build_message(_mail(subject=subject), SENDER)


@pytest.mark.parametrize("name", ["Zoë\r\nBcc: victim@example.org", "Zoë\nX: y", "a\rb"])
def test_header_injection_in_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        build_message(_mail(to_name=name), SENDER)


@pytest.mark.parametrize("addr", [
    "zoe@example.org\r\nBcc: victim@example.org",
    "zoe@example.org\n",
    "zoe@example.org, victim@example.org",
    "zoe@example.org>, <victim@example.org",
    "<zoe@example.org>",
    "zoe example@example.org",
    "zoe",
    "zoe@a@b",
    "",
])
def test_bad_or_injected_recipient_address_is_refused(addr: str) -> None:
    with pytest.raises(ValueError, match="address"):
        build_message(_mail(to_addr=addr), SENDER)


@pytest.mark.parametrize("sender", [
    "ETRepo <no-reply@localhost>\r\nBcc: victim@example.org",
    "ETRepo\n <no-reply@localhost>",
    "nobody",
    "",
])
def test_bad_or_injected_sender_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        build_message(_mail(), sender)


def test_tab_in_subject_is_allowed() -> None:
    assert build_message(_mail(subject="a\tb"), SENDER)["Subject"] == "a\tb"


# --- constructors refuse bad configuration ---------------------------------------------------


def test_smtp_transport_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpTransport(host="h", port=25, security="ssl", sender=SENDER)
    with pytest.raises(ValueError, match="sender"):
        SmtpTransport(host="h", port=25, sender="no address here")
    with pytest.raises(ValueError, match="timeout"):
        SmtpTransport(host="h", port=25, sender=SENDER, timeout=0)


# --- MemoryTransport ---------------------------------------------------------------------------


def test_memory_transport_keeps_mails() -> None:
    transport = MemoryTransport()
    transport.send(_mail(subject="one"))
    transport.send(_mail(subject="two"))
    assert [m.subject for m in transport.sent] == ["one", "two"]


def test_memory_transport_simulates_outage_and_recovery() -> None:
    transport = MemoryTransport(fail_with=MailError("down", permanent=False))
    with pytest.raises(MailError) as caught:
        transport.send(_mail())
    assert caught.value.permanent is False
    assert transport.sent == []

    transport.fail_with = None
    transport.send(_mail())
    assert len(transport.sent) == 1


def test_memory_transport_refuses_what_smtp_would_refuse() -> None:
    transport = MemoryTransport()
    with pytest.raises(ValueError):
        transport.send(_mail(subject="x\r\nBcc: victim@example.org"))
    assert transport.sent == []
