"""The demo's MailCatcher: SmtpTransport -> real SMTP -> mbox + console summary."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

import pytest

from etrepo.mail.catcher import MailCatcher, read_mailbox
from etrepo.mail.interfaces import MailError, OutgoingMail
from etrepo.mail.transport import SmtpTransport


def _transport(port: int, timeout: float = 5.0) -> SmtpTransport:
    return SmtpTransport(
        host="127.0.0.1", port=port, security="none", timeout=timeout,
        sender="ETRepo <no-reply@localhost>",
    )


def test_caught_mail_is_in_mailbox_and_printed(tmp_path: Path) -> None:
    box = tmp_path / "demo" / "mailbox.mbox"
    console = io.StringIO()
    body = "Bonjour Zoë Ødegård,\n\nvotre code : 424242\n\nÀ bientôt ✓\n"
    with MailCatcher(box, port=0, stream=console) as catcher:
        assert catcher.port > 0
        # SmtpTransport waits for the server's 250 to DATA, which comes after the mbox write.
        _transport(catcher.port).send(OutgoingMail(
            to_addr="zoe@example.org", to_name="Zoë Ødegård",
            subject="Votre code — ETRepo", body=body,
        ))

    (mail,) = read_mailbox(box)
    assert mail["from"] == "ETRepo <no-reply@localhost>"
    assert mail["to"] == "Zoë Ødegård <zoe@example.org>"
    assert mail["subject"] == "Votre code — ETRepo"
    assert mail["body"] == body
    assert mail["date"]

    printed = console.getvalue()
    assert "Votre code — ETRepo" in printed
    assert "Zoë Ødegård <zoe@example.org>" in printed
    assert "ETRepo <no-reply@localhost>" in printed
    assert "424242" in printed


def test_mailbox_is_newest_first_and_a_valid_mbox(tmp_path: Path) -> None:
    box = tmp_path / "mailbox.mbox"
    with MailCatcher(box, stream=io.StringIO()) as catcher:
        transport = _transport(catcher.port)
        for n in range(3):
            transport.send(OutgoingMail("a@example.org", "A", f"mail {n}",
                                        f"From the start\nline {n}\n"))
        mails = read_mailbox(box)  # no waiting: send() returns after the catcher's 250

    assert [m["subject"] for m in mails] == ["mail 2", "mail 1", "mail 0"]
    assert mails[0]["body"].endswith("line 2\n")
    standard = mailbox.mbox(str(box), create=False)
    try:
        assert len(standard) == 3
        assert all(msg.get_from().startswith("no-reply@localhost ") for msg in standard)
    finally:
        standard.close()


def test_missing_mailbox_is_empty(tmp_path: Path) -> None:
    assert read_mailbox(tmp_path / "nothing-yet.mbox") == []
    assert read_mailbox("") == []  # DEMO_MAILBOX unset


def test_mailbox_file_is_private(tmp_path: Path) -> None:
    box = tmp_path / "mailbox.mbox"
    with MailCatcher(box, stream=io.StringIO()) as catcher:
        _transport(catcher.port).send(OutgoingMail("a@example.org", "A", "secret", "pw"))
    assert box.stat().st_mode & 0o077 == 0


def test_stop_and_restart_on_the_same_port(tmp_path: Path) -> None:
    box = tmp_path / "mailbox.mbox"
    catcher = MailCatcher(box, stream=io.StringIO()).start()
    try:
        port = catcher.port
        catcher.stop()
        assert not catcher.running
        with pytest.raises(MailError) as caught:
            _transport(port, timeout=2.0).send(OutgoingMail("a@example.org", "A", "lost", "x"))
        assert caught.value.permanent is False

        catcher.start()
        assert catcher.port == port
        _transport(port).send(OutgoingMail("a@example.org", "A", "after restart", "x"))
        assert [m["subject"] for m in read_mailbox(box)] == ["after restart"]
    finally:
        catcher.stop()


def test_start_twice_is_an_error(tmp_path: Path) -> None:
    catcher = MailCatcher(tmp_path / "m.mbox", stream=io.StringIO())
    with catcher, pytest.raises(RuntimeError):
        catcher.start()


def test_caught_bodies_have_plain_newlines(tmp_path):
    from etrepo.mail.catcher import parse_mail, text_body

    raw = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nline one\r\n    123456\r\n")
    assert text_body(parse_mail(raw)) == "line one\n    123456\n"
