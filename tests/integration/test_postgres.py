"""The core flow and the double-submit race on PostgreSQL, as deployed."""

from __future__ import annotations

import pytest

from etrepo.models import AccountRequest, OutboxMail
from tests.support.portal import (
    Stack,
    applicant,
    count,
    get_request,
    mails_to,
    pg_url_fixture,  # noqa: F401  (the pg_url fixture)
    race_two_submits,
    submit_and_confirm,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def stack(pg_url, make_settings, clock):
    portal = Stack(make_settings(DATABASE_URL=pg_url), clock)
    yield portal
    portal.close()


def test_request_to_active_account_on_postgresql(stack):
    data = applicant(email="Jane.Doe@Uni.EDU", first_name="Jane", last_name="Doe")
    request_id = submit_and_confirm(stack.client, stack.worker, stack.transport, data)
    assert get_request(stack.client, request_id)["status"] == "confirmed"
    assert stack.worker.process_jobs_once() == 1
    stack.worker.delivery.deliver_due()
    state = get_request(stack.client, request_id)
    assert state["status"] == "active" and state["username"] == "jdoe"
    subjects = [m.subject for m in mails_to(stack.transport, "Jane.Doe@Uni.EDU")]
    assert subjects == ["[ETRepo] Email confirmation request", "[ETRepo] Your login credentials"]
    again = stack.client.post("/api/v1/requests", json={**data, "email": "jane.doe@uni.edu"})
    assert again.status_code == 409


def test_two_simultaneous_submits_make_one_row_on_postgresql(stack, monkeypatch):
    data = applicant()
    responses, tries = race_two_submits(stack.app, monkeypatch, data)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].get_json()["id"] == responses[1].get_json()["id"]
    assert tries == 3  # the unique constraint refused one insert
    assert count(stack.db, AccountRequest) == 1
    assert count(stack.db, OutboxMail) == 1
