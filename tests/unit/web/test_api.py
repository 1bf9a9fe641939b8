"""The JSON API: answers, error shapes, limits, and its OpenAPI document."""

from __future__ import annotations

import importlib.util
import re

import pytest

from etrepo.models import AccountRequest, OutboxMail
from tests.support.portal import (
    applicant,
    count,
    get_request,
    latest_code,
    post_confirm,
    post_request,
    post_resend,
    wrong_code,
)

API = "/api/v1"


def error_of(response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    body = response.get_json()
    assert body["message"]
    if kind:
        assert body["error"] == kind
    return body


# --- the happy path and statuses --------------------------------------------------------------
def test_request_goes_through_its_statuses(client, worker, transport, settings):
    data = applicant()
    created = post_request(client, data)
    assert created.status_code == 201
    body = created.get_json()
    assert body["status"] == "awaiting_confirmation"
    assert body["description"].startswith("Waiting for you to confirm")
    assert body["status_url"].endswith(f"/requests/{body['id']}")
    assert body["username"] is None and body["failure_reason"] is None
    assert body["code_expires_at"] and body["resend_available_at"]
    assert len(body["id"]) >= 16  # unguessable: the id is the key to the request

    code = latest_code(worker, transport, data["email"])
    confirmed = post_confirm(client, body["id"], code)
    assert confirmed.status_code == 200
    assert confirmed.get_json()["status"] == "confirmed"
    assert confirmed.get_json()["code_expires_at"] is None

    worker.process_jobs_once()
    active = get_request(client, body["id"])
    assert active["status"] == "active"
    assert active["username"] == "alefevre"
    assert "check your mail" in active["description"]


def test_confirm_is_idempotent(client, worker, transport):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    code = latest_code(worker, transport, data["email"])
    for _ in range(3):
        response = post_confirm(client, request_id, code)
        assert response.status_code == 200
        assert response.get_json()["status"] == "confirmed"
    worker.process_jobs_once()
    again = post_confirm(client, request_id, code)
    assert again.status_code == 200 and again.get_json()["status"] == "active"
    assert len([m for m in transport.sent if "credentials" in m.subject]) == 0  # not delivered
    worker.delivery.deliver_due()
    assert len([m for m in transport.sent if "credentials" in m.subject]) == 1


def test_resend_after_confirmation_is_a_conflict(client, worker, transport):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    post_confirm(client, request_id, latest_code(worker, transport, data["email"]))
    error_of(post_resend(client, request_id), 409, "conflict")


# --- not found ----------------------------------------------------------------------------
@pytest.mark.parametrize("request_id", ["nope", "x" * 40, "%00", "..%2F..%2Fetc"])
def test_unknown_id_is_a_json_404(client, request_id):
    error_of(client.get(f"{API}/requests/{request_id}"), 404, "not_found")
    error_of(post_confirm(client, request_id, "123456"), 404, "not_found")
    error_of(post_resend(client, request_id), 404, "not_found")


def test_unknown_api_path_is_a_json_404(client):
    error_of(client.get(f"{API}/nothing-here"), 404)
    error_of(client.delete(f"{API}/requests"), 405)


# --- wrong input never gives a 500 -------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("[1, 2]", "application/json"),
        ('"text"', "application/json"),
        ("null", "application/json"),
        ("{not json", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        ("[" * 50_000, "application/json"),  # nested deeper than the parser goes
        ('{"a":' * 10_000, "application/json"),
        ("first_name=Ana", "application/x-www-form-urlencoded"),
        ('{"first_name": "Ana"}', "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(client, db, raw, content_type):
    response = client.post(f"{API}/requests", data=raw, content_type=content_type)
    error_of(response, 400, "bad_request")
    assert count(db, AccountRequest) == 0


def test_unknown_fields_are_named(client, db):
    body = error_of(post_request(client, applicant(is_admin=True, uid=0)), 422,
                    "validation_failed")
    assert body["fields"] == {"is_admin": "Unknown field.", "uid": "Unknown field."}
    assert count(db, AccountRequest) == 0


def test_wrong_types_are_field_errors(client):
    body = error_of(post_request(client, applicant(first_name=["A"], email=7)), 422)
    assert body["fields"] == {"first_name": "Must be text.", "email": "Must be text."}


def test_a_code_that_is_not_text_is_a_field_error(client):
    request_id = post_request(client, applicant()).get_json()["id"]
    for code in (123456, None, ["1"]):
        response = client.post(f"{API}/requests/{request_id}/confirm", json={"code": code})
        assert error_of(response, 422)["fields"] == {"code": "Must be text."}


def test_something_that_is_not_a_code_uses_up_no_try(client, settings):
    request_id = post_request(client, applicant()).get_json()["id"]
    for junk in ("abcdef", "12345", "1234567", "x" * 64):
        body = error_of(client.post(f"{API}/requests/{request_id}/confirm", json={"code": junk}),
                        400)
        assert body["message"] == f"The code is the {settings.CODE_LENGTH} digits in the mail."
    assert error_of(client.post(f"{API}/requests/{request_id}/confirm",
                                json={"code": "x" * 65}), 422)["fields"] == {
        "code": "Too long: at most 64 characters."}
    wrong = client.post(f"{API}/requests/{request_id}/confirm", json={"code": "000000"})
    assert f"{settings.CODE_MAX_TRIES - 1} tries left" in error_of(wrong, 400)["message"]


# --- sizes ------------------------------------------------------------------------------------
FIVE_MB = 5 * 1024 * 1024


@pytest.mark.parametrize("content_type", ["application/json", "text/plain",
                                          "application/x-www-form-urlencoded",
                                          "application/octet-stream"])
def test_a_5_mb_body_is_a_json_413(client, db, settings, content_type):
    payload = b'{"first_name": "' + b"a" * FIVE_MB + b'"}'
    response = client.post(f"{API}/requests", data=payload, content_type=content_type)
    body = error_of(response, 413)
    assert str(settings.MAX_REQUEST_BYTES) in body["message"]
    assert count(db, AccountRequest) == 0


def test_a_5_mb_body_to_the_other_operations_is_a_413_too(client):
    request_id = post_request(client, applicant()).get_json()["id"]
    for path in (f"/requests/{request_id}/confirm", f"/requests/{request_id}/resend"):
        response = client.post(API + path, data=b"1" * FIVE_MB, content_type="application/json")
        error_of(response, 413)


def test_a_body_just_under_the_limit_is_read(client, settings):
    filler = "a" * (settings.MAX_REQUEST_BYTES - 1000)
    response = post_request(client, applicant(institution=filler))
    assert error_of(response, 422)["fields"] == {
        "institution": "Too long: at most 200 characters."}


def test_a_300_character_last_name_is_a_422_naming_the_limit(client, db):
    body = error_of(post_request(client, applicant(last_name="x" * 300)), 422)
    assert body["fields"] == {"last_name": "Your last name is too long: at most 64 characters."}
    assert count(db, AccountRequest) == 0 and count(db, OutboxMail) == 0


# --- limits -----------------------------------------------------------------------------------
def test_resend_too_soon_is_a_429_with_retry_after(client, settings, clock):
    request_id = post_request(client, applicant()).get_json()["id"]
    response = post_resend(client, request_id)
    body = error_of(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == str(settings.RESEND_COOLDOWN)
    assert body["retry_after"] == settings.RESEND_COOLDOWN
    clock.advance(30)
    assert post_resend(client, request_id).headers["Retry-After"] == "30"
    clock.advance(30)
    assert post_resend(client, request_id).status_code == 200


def test_wrong_code_is_a_400_with_tries_left(client, worker, transport):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    code = latest_code(worker, transport, data["email"])
    body = error_of(post_confirm(client, request_id, wrong_code(code)), 400, "wrong_code")
    assert "4 tries left" in body["message"]


def test_responses_carry_security_headers(client):
    response = client.get(f"{API}/openapi.json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


# --- OpenAPI ----------------------------------------------------------------------------------
def _resolve(document: dict, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_document_describes_the_four_operations(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]

    operations = {(method.upper(), path): op for path, item in document["paths"].items()
                  for method, op in item.items()}
    assert set(operations) == {
        ("POST", "/api/v1/requests"),
        ("GET", "/api/v1/requests/{request_id}"),
        ("POST", "/api/v1/requests/{request_id}/confirm"),
        ("POST", "/api/v1/requests/{request_id}/resend"),
    }
    expected_errors = {
        ("POST", "/api/v1/requests"): {"400", "409", "413", "422", "429"},
        ("GET", "/api/v1/requests/{request_id}"): {"404"},
        ("POST", "/api/v1/requests/{request_id}/confirm"): {"400", "404", "410", "413", "422",
                                                            "429"},
        ("POST", "/api/v1/requests/{request_id}/resend"): {"404", "409", "410", "429"},
    }
    ids = [op["operationId"] for op in operations.values()]
    assert len(set(ids)) == 4
    for key, op in operations.items():
        codes = set(op["responses"])
        assert expected_errors[key] <= codes, (key, codes)
        assert any(code.startswith("2") for code in codes)
        for code, answer in op["responses"].items():
            assert answer["description"]
            if code.startswith("4"):
                schema = answer["content"]["application/json"]["schema"]
                assert _resolve(document, schema["$ref"])["title"] == "Error"
        params = re.findall(r"{(\w+)}", key[1])
        assert [p["name"] for p in op.get("parameters", [])] == params
        for p in op.get("parameters", []):
            assert p["in"] == "path" and p["required"] is True
    assert "requestBody" in operations[("POST", "/api/v1/requests")]
    new_request = _resolve(document, operations[("POST", "/api/v1/requests")]["requestBody"]
                           ["content"]["application/json"]["schema"]["$ref"])
    assert set(new_request["required"]) == {"first_name", "last_name", "institution", "email"}
    assert new_request["properties"]["last_name"]["maxLength"] == 64
    for ref in _refs(document):
        assert _resolve(document, ref)  # every reference points at a schema
    if importlib.util.find_spec("openapi_spec_validator"):  # the full check where installed
        from openapi_spec_validator import validate

        validate(document)
