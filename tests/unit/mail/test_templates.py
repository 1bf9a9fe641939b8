"""The two mails: what the applicant must find in them."""

from __future__ import annotations

import re

from etrepo.mail import templates
from tests.conftest import code_from


def test_confirmation_mail(make_settings):
    settings = make_settings(SITE_NAME="ET Sardinia", CODE_TTL=1200,
                             HELPDESK_EMAIL="help@et.example.org")
    subject, body = templates.confirmation_mail(settings, "Zoë Ødegård", "042424")
    assert subject == "[ET Sardinia] Email confirmation request"
    assert body.startswith("Dear Zoë Ødegård,\n")
    assert code_from(body) == "042424"
    assert "valid for 20 minutes" in body
    assert "replies to it are not read" in body
    assert "For help, write to help@et.example.org." in body


def test_credentials_mail(make_settings):
    settings = make_settings(HOSTNAME="et-repo.example.org", HELPDESK_EMAIL="help@example.org")
    subject, body = templates.credentials_mail(settings, "Zoë Ødegård", "zodegard",
                                               "Pw-4f7Kq9xT2mZr")
    assert subject == "[ETRepo] Your login credentials"
    lines = body.splitlines()
    assert "Username: zodegard" in lines
    assert "Password: Pw-4f7Kq9xT2mZr" in lines
    assert re.search(r"^\s+ssh zodegard@et-repo\.example\.org$", body, re.MULTILINE)
    assert "You must change this password at your first login" in body
    assert "replies to it are not read" in body
    assert "For help, write to help@example.org." in body


def test_mails_end_with_a_real_signature_separator(make_settings):
    _, body = templates.confirmation_mail(make_settings(), "Zoë", "123456")
    assert "\n-- \n" in body  # with its space: clients fold what follows as a signature


def test_credentials_mail_of_a_dry_run_says_nothing_was_created(make_settings):
    _, real = templates.credentials_mail(make_settings(PROVISIONER="linux"), "Z", "z", "pw")
    _, dry = templates.credentials_mail(make_settings(PROVISIONER="dry-run"), "Z", "z", "pw")
    assert "dry-run" not in real
    assert "no account was created" in dry


def test_every_mail_is_marked_auto_generated():
    from etrepo.mail.interfaces import OutgoingMail
    from etrepo.mail.transport import build_message

    message = build_message(OutgoingMail("a@example.org", "A", "s", "b"), "E <n@example.org>")
    assert message["Auto-Submitted"] == "auto-generated"
