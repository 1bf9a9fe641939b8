"""The failure cases of shared/cases/requests.md, each with its own data, through the API.

Each test is named after its case: test_case<N>_...
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from etrepo.mail.interfaces import MailError
from etrepo.mail.transport import build_message
from etrepo.models import AccountRequest, OutboxMail, RateEvent
from etrepo.provisioning.worker import Worker
from tests.conftest import code_from
from tests.support.fakes import RecordingProvisioner
from tests.support.portal import (
    applicant,
    cli_env,
    count,
    get_request,
    latest_code,
    mails_to,
    post_confirm,
    post_request,
    post_resend,
    race_two_submits,
    run_cli,
    submit_and_confirm,
    wrong_code,
)


def nothing_stored(db) -> bool:
    return count(db, AccountRequest) == 0 and count(db, OutboxMail) == 0 and \
        count(db, RateEvent) == 0


# --- 1. accented names -----------------------------------------------------------------------
def test_case1_accented_name_kept_as_typed_username_and_gecos_ascii(
        client, transport, settings, db, clock):
    provisioner = RecordingProvisioner()
    worker = Worker(db, settings, provisioner, transport, clock)
    data = applicant(first_name="Aurélien", last_name="Lefèvre")
    request_id = submit_and_confirm(client, worker, transport, data)

    page = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "Aurélien Lefèvre" in page
    confirmation = mails_to(transport, data["email"])[0]
    assert confirmation.to_name == "Aurélien Lefèvre"
    assert confirmation.body.startswith("Dear Aurélien Lefèvre,")
    message = build_message(confirmation, settings.MAIL_FROM)  # what SMTP would carry
    assert message["To"].addresses[0].display_name == "Aurélien Lefèvre"
    assert message.get_content().startswith("Dear Aurélien Lefèvre,")

    worker.process_jobs_once()
    worker.delivery.deliver_due()
    (spec,) = provisioner.specs
    assert spec.username == "alefevre"
    assert spec.gecos == "Aurelien Lefevre" and spec.gecos.isascii()
    assert get_request(client, request_id)["username"] == "alefevre"
    creds = mails_to(transport, data["email"])[-1]
    assert creds.body.startswith("Dear Aurélien Lefèvre,")
    assert "Username: alefevre" in creds.body


# --- 2. separators in names ------------------------------------------------------------------
@pytest.mark.parametrize("last_name", ["Ana:Lopez", "Lopez,Ana", "Lopez=Ana", "Ana\nLopez",
                                       "Ana\rLopez", "Ana\tLopez", "Ana\x00Lopez",
                                       "Ana\x07Lopez", "Ana\x1b[2JLopez", "Ana\u2028Lopez",
                                       "Lopez:x:0:0::/root:/bin/sh"])
def test_case2_separators_in_a_name_are_a_field_error_and_nothing_is_created(
        client, db, last_name):
    response = post_request(client, applicant(last_name=last_name))
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {"last_name"}
    assert "letters, spaces, hyphens, apostrophes and periods" in body["fields"]["last_name"]
    assert nothing_stored(db)


def test_case2_separators_in_the_first_name_too(client, db):
    response = post_request(client, applicant(first_name="Ana,", last_name="Lopez"))
    assert response.status_code == 422 and set(response.get_json()["fields"]) == {"first_name"}
    assert nothing_stored(db)


# --- 3. email case ---------------------------------------------------------------------------
def test_case3_email_case_one_normal_form_and_mail_to_the_address_as_typed(
        client, worker, transport, db):
    first = applicant(email="Jane.Doe@Uni.EDU", first_name="Jane", last_name="Doe")
    request_id = submit_and_confirm(client, worker, transport, first)
    assert [m.to_addr for m in transport.sent] == ["Jane.Doe@Uni.EDU"]

    for later in ("jane.doe@uni.edu", "JANE.DOE@UNI.EDU", " jane.doe@uni.edu ",
                  "jane.doe@uni.ＥＤＵ"):
        response = post_request(client, {**first, "email": later})
        assert response.status_code == 409, later
        assert "already exists for this email address" in response.get_json()["message"]
    assert count(db, AccountRequest) == 1

    worker.process_jobs_once()
    worker.delivery.deliver_due()
    assert get_request(client, request_id)["status"] == "active"
    assert [m.to_addr for m in transport.sent] == ["Jane.Doe@Uni.EDU", "Jane.Doe@Uni.EDU"]
    with db.session() as session:
        row = session.get(AccountRequest, request_id)
        assert (row.email, row.email_normalized) == ("Jane.Doe@Uni.EDU", "jane.doe@uni.edu")


def test_case3_a_second_spelling_before_confirmation_replaces_the_first(
        client, worker, transport, db):
    first = applicant(email="Jane.Doe@Uni.EDU", first_name="Jane", last_name="Doe")
    old_id = post_request(client, first).get_json()["id"]
    old_code = latest_code(worker, transport, "Jane.Doe@Uni.EDU")
    new_id = post_request(client, {**first, "email": "jane.doe@uni.edu"}).get_json()["id"]
    new_code = latest_code(worker, transport, "jane.doe@uni.edu")
    assert new_id != old_id
    with db.session() as session:
        claims = session.scalars(select(AccountRequest.email_claim)
                                 .where(AccountRequest.email_claim.is_not(None))).all()
    assert claims == ["jane.doe@uni.edu"]  # one request holds the address
    assert post_confirm(client, old_id, old_code).status_code == 410
    assert post_confirm(client, new_id, new_code).status_code == 200


# --- 4. guessing the code --------------------------------------------------------------------
def test_case4_a_script_sweeping_codes_kills_the_code_after_5_wrong_tries(
        client, worker, transport):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    right = latest_code(worker, transport, data["email"])
    answers = []
    for n in range(0, 10_000):  # the script: 0000, 0001, ... in the code's length
        guess = str(n).zfill(len(right))
        if guess == right:
            continue
        response = post_confirm(client, request_id, guess)
        answers.append(response.status_code)
        if response.status_code != 400:
            break
    assert answers == [400, 400, 400, 400, 410]
    dead = post_confirm(client, request_id, right)  # too late, even for the right code
    assert dead.status_code == 410
    assert dead.get_json()["error"] == "code_dead"
    assert "Ask for a new code" in dead.get_json()["message"]
    assert get_request(client, request_id)["status"] == "awaiting_confirmation"


def test_case4_new_codes_have_a_cooldown(client, worker, transport, clock, settings):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    old = latest_code(worker, transport, data["email"])
    for _ in range(5):
        post_confirm(client, request_id, wrong_code(old))
    too_soon = post_resend(client, request_id)
    assert too_soon.status_code == 429
    assert int(too_soon.headers["Retry-After"]) == settings.RESEND_COOLDOWN
    clock.advance(settings.RESEND_COOLDOWN)
    assert post_resend(client, request_id).status_code == 200
    assert post_resend(client, request_id).status_code == 429  # and again a cooldown
    new = latest_code(worker, transport, data["email"])
    assert post_confirm(client, request_id, new).status_code == 200


def test_case4_resubmitting_from_many_networks_cannot_flood_one_inbox(
        client, transport, worker, settings):
    """Each new submission mails a code: they count per address mailed to, whatever the IP."""
    data = applicant()
    answers = [post_request(client, {**data, "first_name": f"Jane{'x' * n}"},
                            addr=f"203.0.113.{n}").status_code
               for n in range(1, settings.RATE_LIMIT_MAILS_TO + 3)]
    assert answers.count(201) == settings.RATE_LIMIT_MAILS_TO
    assert answers[-1] == 429
    worker.delivery.deliver_due()
    # Each replacement cancels the code mail before it: only the newest, live code is sent.
    assert len(mails_to(transport, data["email"])) == 1


def test_case4_per_client_address_limit_stops_a_sweep_across_requests(
        client, worker, transport, settings):
    """One address, many requests of its own, 5 guesses each: stopped at the limit."""
    tries = 0
    refused = None
    for _ in range(settings.RATE_LIMIT_CONFIRMS // settings.CODE_MAX_TRIES + 1):
        request_id = post_request(client, applicant(), addr="198.51.100.7").get_json()["id"]
        for n in range(settings.CODE_MAX_TRIES):
            response = post_confirm(client, request_id, str(n).zfill(6), addr="198.51.100.7")
            if response.status_code == 429:
                refused = response
                break
            tries += 1
        if refused:
            break
    assert tries == settings.RATE_LIMIT_CONFIRMS
    assert refused is not None and int(refused.headers["Retry-After"]) > 0
    # the applicant next door is not affected
    data = applicant()
    request_id = post_request(client, data, addr="198.51.100.8").get_json()["id"]
    code = latest_code(worker, transport, data["email"])
    assert post_confirm(client, request_id, code, addr="198.51.100.8").status_code == 200


def test_case4_per_email_limit_stops_a_sweep_from_many_addresses(
        client, worker, transport, settings, clock):
    """One email, a fresh request and a fresh client address after every dead code."""
    data = applicant()
    tries = 0
    refused = None
    for n in range(settings.RATE_LIMIT_CONFIRMS // settings.CODE_MAX_TRIES + 1):
        addr = f"203.0.113.{n + 1}"
        response = post_request(client, data, addr=addr)
        assert response.status_code == 201
        request_id = response.get_json()["id"]
        for guess in range(settings.CODE_MAX_TRIES):
            response = post_confirm(client, request_id, str(guess).zfill(6), addr=addr)
            if response.status_code == 429:
                refused = response
                break
            tries += 1
        if refused:
            break
        clock.advance(settings.RESEND_COOLDOWN)
    assert tries == settings.RATE_LIMIT_CONFIRMS
    assert refused.get_json()["error"] == "rate_limited"
    # even the right code waits for the window: the sweep gains nothing by being lucky
    right = latest_code(worker, transport, data["email"])
    assert post_confirm(client, request_id, right, addr="192.0.2.99").status_code == 429


# --- 5. stuck after a typo or an expired code ----------------------------------------------
def test_case5_typo_in_the_address_submit_again_nothing_was_reserved(
        client, worker, transport, services, clock, settings):
    typo = applicant(first_name="John", last_name="Doe", email="john.doe@uni.eud")
    typo_id = post_request(client, typo).get_json()["id"]
    right = {**typo, "email": "john.doe@uni.edu"}
    right_id = post_request(client, right).get_json()["id"]
    assert right_id != typo_id
    code = latest_code(worker, transport, "john.doe@uni.edu")
    assert post_confirm(client, right_id, code).status_code == 200
    worker.process_jobs_once()
    assert get_request(client, right_id)["username"] == "jdoe"  # the typo held no name
    clock.advance(settings.REQUEST_TTL + 1)
    assert services.requests.expire_stale() == 1
    assert get_request(client, typo_id)["status"] == "expired"


def test_case5_expired_code_ask_for_a_new_code(client, worker, transport, clock, settings):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    old = latest_code(worker, transport, data["email"])
    clock.advance(settings.CODE_TTL + 1)
    expired = post_confirm(client, request_id, old)
    assert expired.status_code == 410
    assert "expired. Ask for a new code" in expired.get_json()["message"]
    assert post_resend(client, request_id).status_code == 200
    new = latest_code(worker, transport, data["email"])
    assert post_confirm(client, request_id, new).status_code == 200


def test_case5_expired_code_submit_again(client, worker, transport, clock, settings):
    data = applicant()
    old_id = post_request(client, data).get_json()["id"]
    latest_code(worker, transport, data["email"])
    clock.advance(settings.CODE_TTL + 1)
    again = post_request(client, data)
    assert again.status_code == 201
    new_id = again.get_json()["id"]
    assert new_id != old_id
    assert len(mails_to(transport, data["email"])) == 1
    code = latest_code(worker, transport, data["email"])
    assert len(mails_to(transport, data["email"])) == 2
    assert post_confirm(client, new_id, code).status_code == 200
    assert get_request(client, old_id)["status"] == "expired"


def test_case5_stale_unconfirmed_requests_are_purged_and_the_address_is_free(
        client, services, clock, settings, db):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    clock.advance(settings.REQUEST_TTL - 1)
    assert services.requests.expire_stale() == 0
    clock.advance(2)
    assert services.requests.expire_stale() == 1
    state = get_request(client, request_id)
    assert state["status"] == "expired"
    assert "Submit the form again" in state["description"]
    dead = post_confirm(client, request_id, "123456")
    assert dead.status_code == 410 and "submit the form again" in dead.get_json()["message"]
    assert post_request(client, data).status_code == 201


# --- 6. double submit ------------------------------------------------------------------------
def test_case6_double_click_gives_one_request_one_mail_one_account(
        client, worker, transport, db):
    data = applicant()
    first, second, tab = (post_request(client, data) for _ in range(3))
    assert first.status_code == second.status_code == tab.status_code == 201
    assert first.get_json()["id"] == second.get_json()["id"] == tab.get_json()["id"]
    assert count(db, AccountRequest) == 1
    code = latest_code(worker, transport, data["email"])
    assert len(mails_to(transport, data["email"])) == 1
    request_id = first.get_json()["id"]
    assert post_confirm(client, request_id, code).status_code == 200
    assert post_confirm(client, request_id, code).status_code == 200
    worker.process_jobs_once()
    worker.process_jobs_once()
    assert post_request(client, data).status_code == 409
    worker.delivery.deliver_due()
    assert [m.subject for m in mails_to(transport, data["email"])] == [
        "[ETRepo] Email confirmation request", "[ETRepo] Your login credentials"]


def test_case6_two_simultaneous_submits_make_one_row_sqlite_file(
        app, db, monkeypatch, worker, transport, settings):
    assert settings.database_url.startswith("sqlite:///")
    data = applicant()
    responses, tries = race_two_submits(app, monkeypatch, data)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].get_json()["id"] == responses[1].get_json()["id"]
    assert tries == 3  # both inserted; the constraint refused one, which then found the other
    assert count(db, AccountRequest) == 1
    assert count(db, OutboxMail) == 1
    worker.delivery.deliver_due()
    assert len(mails_to(transport, data["email"])) == 1


# --- 7. SMTP down at submit time -------------------------------------------------------------
def test_case7_smtp_down_request_saved_mail_waits_then_leaves(
        client, worker, transport, clock, settings, db):
    transport.fail_with = MailError("SMTP 127.0.0.1:25: connection refused "
                                    "(is the SMTP server running?)")
    data = applicant()
    response = post_request(client, data)
    assert response.status_code == 201
    request_id = response.get_json()["id"]
    assert worker.delivery.deliver_due() == 0
    assert transport.sent == []
    assert get_request(client, request_id)["status"] == "awaiting_confirmation"

    backlog = run_cli(["outbox"], cli_env(settings))
    assert backlog.exit_code == 0, backlog.output
    assert "pending: 1" in backlog.output
    assert data["email"] in backlog.output
    assert "connection refused" in backlog.output

    transport.fail_with = None  # SMTP is back
    assert worker.delivery.deliver_due() == 0  # waits out its backoff
    clock.advance(10)
    assert worker.delivery.deliver_due() == 1
    code = code_from(mails_to(transport, data["email"])[0].body)
    assert post_confirm(client, request_id, code).status_code == 200
    after = run_cli(["outbox"], cli_env(settings))
    assert "sent: 1" in after.output and "pending" not in after.output


# --- 8. markup in names ----------------------------------------------------------------------
MARKUP = "<img src=x onerror=alert(1)>"


def test_case8_markup_as_a_name_is_a_field_error(client, db):
    response = post_request(client, applicant(first_name=MARKUP))
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"first_name"}
    assert MARKUP not in response.get_data(as_text=True)
    assert nothing_stored(db)


def test_case8_markup_that_is_accepted_is_shown_as_text_on_pages_and_in_mails(
        client, worker, transport, settings):
    data = applicant(first_name="Seán", last_name="O'Brien", institution=MARKUP)
    request_id = post_request(client, data).get_json()["id"]
    page = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert MARKUP not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    worker.delivery.deliver_due()
    (mail,) = mails_to(transport, data["email"])
    assert mail.body.startswith("Dear Seán O'Brien,")  # plain text: no entities either
    message = build_message(mail, settings.MAIL_FROM)
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    admin = run_cli(["requests", "show", request_id], cli_env(settings))
    assert admin.exit_code == 0 and MARKUP in admin.output  # a terminal shows it as it is


# --- 9. very long input ----------------------------------------------------------------------
def test_case9_a_300_character_last_name_is_a_field_error_naming_the_limit(client, db):
    response = post_request(client, applicant(last_name="L" * 300))
    assert response.status_code == 422
    assert response.get_json()["fields"] == {
        "last_name": "Your last name is too long: at most 64 characters."}
    assert nothing_stored(db)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_case9_a_5_mb_body_is_a_413_never_a_500(client, db, content_type):
    body = b'{"last_name": "' + b"L" * (5 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/requests", data=body, content_type=content_type)
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert nothing_stored(db)


def test_case7_after_an_outage_only_the_live_code_arrives(client, worker, transport, clock,
                                                          settings):
    """SMTP down, the applicant asks for a new code: when SMTP is back, the dead code's mail
    is not delivered after the live one (it is cancelled), and nothing arrives once the
    address is confirmed."""
    data = applicant()
    transport.fail_with = MailError("connection refused")
    request_id = post_request(client, data).get_json()["id"]
    worker.delivery.deliver_due()
    clock.advance(settings.RESEND_COOLDOWN)
    assert post_resend(client, request_id).status_code == 200
    transport.fail_with = None
    clock.advance(20)  # SMTP is back; the live code has minutes left
    worker.delivery.deliver_due()
    codes = [m for m in mails_to(transport, data["email"]) if "confirmation" in m.subject.lower()]
    assert len(codes) == 1  # the first code died with the resend: its mail was cancelled
    with worker.db.session() as session:
        statuses = sorted(session.scalars(select(OutboxMail.status).where(
            OutboxMail.request_id == request_id)))
    assert statuses == ["cancelled", "sent"]


def test_case4_a_workshop_behind_one_address_is_not_a_sweep(client, worker, transport,
                                                            settings):
    """Right codes do not count against the per-address limit: only wrong ones do."""
    nat = "198.51.100.99"
    for _ in range(settings.RATE_LIMIT_CONFIRMS + 2):
        data = applicant()
        request_id = post_request(client, data, addr=nat).get_json()["id"]
        code = latest_code(worker, transport, data["email"])
        assert post_confirm(client, request_id, code, addr=nat).status_code == 200


def test_case4_a_refusal_says_how_long_to_wait(client, worker, transport, settings):
    nat = "198.51.100.98"
    refused = None
    for _ in range(settings.RATE_LIMIT_CONFIRMS // settings.CODE_MAX_TRIES + 1):
        data = applicant()
        request_id = post_request(client, data, addr=nat).get_json()["id"]
        code = latest_code(worker, transport, data["email"])
        for _ in range(settings.CODE_MAX_TRIES):
            response = post_confirm(client, request_id, wrong_code(code), addr=nat)
            if response.status_code == 429:
                refused = response
                break
        if refused:
            break
    assert refused is not None
    assert re.search(r"Please try again in \d+ minutes?\.", refused.get_json()["message"])


def test_case7_a_code_mail_that_could_not_leave_in_time_is_not_sent_dead(
        client, worker, transport, clock, settings):
    data = applicant()
    transport.fail_with = MailError("connection refused")
    post_request(client, data)
    worker.delivery.deliver_due()
    clock.advance(settings.CODE_TTL + 1)
    transport.fail_with = None
    worker.delivery.deliver_due()
    assert mails_to(transport, data["email"]) == []  # ask for a new code instead
