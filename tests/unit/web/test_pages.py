"""The plain pages: the status page shows what was typed, as text, and says where things stand."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest

from etrepo.accounts.lifecycle import Status
from etrepo.models import AccountRequest
from tests.support.portal import applicant, latest_code, post_confirm, post_request

MARKUP = "<img src=x onerror=alert(1)>"


class _Element(HTMLParser):
    """The attributes and the text of the element with a given id."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id, self.attrs, self.text, self._depth = element_id, None, "", 0

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if self._depth:
            self._depth += 1
        elif dict(attrs).get("id") == self.element_id:
            self.attrs, self._depth = dict(attrs), 1

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._depth:
            self.text += data


def element(html: str, element_id: str) -> tuple[dict[str, str], str]:
    parser = _Element(element_id)
    parser.feed(html)
    assert parser.attrs is not None, f"no #{element_id}"
    return parser.attrs, parser.text.strip()


def test_status_page_shows_the_name_as_typed(client):
    request_id = post_request(client, applicant()).get_json()["id"]
    page = client.get(f"/requests/{request_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Aurélien Lefèvre" in html
    assert "INFN Pisa" in html
    # The badge in words for the applicant, the raw value for machines.
    attrs, text = element(html, "status")
    assert (text, attrs["data-status"]) == ("Awaiting confirmation", "awaiting_confirmation")
    assert 'http-equiv="refresh"' in html  # keeps itself up to date while waiting


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_label_on_the_badge(client, db, clock, status):
    request_id = post_request(client, applicant()).get_json()["id"]
    with db.session() as session:
        row = session.get(AccountRequest, request_id)
        row.status, row.email_claim = status.value, None
        row.updated_at = clock.now() + dt.timedelta(seconds=1)
    attrs, text = element(client.get(f"/requests/{request_id}").get_data(as_text=True),
                          "status")
    assert attrs["data-status"] == status.value
    assert text and "_" not in text and text[0].isupper() and text != status.value


def test_status_page_shows_markup_as_text(client, db):
    request_id = post_request(client, applicant(institution=MARKUP,
                                                last_name="O'Brien")).get_json()["id"]
    html = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert MARKUP not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html
    assert "O&#39;Brien" in html or "O&#x27;Brien" in html


def test_failure_reason_is_shown_as_text(client, db, clock):
    request_id = post_request(client, applicant()).get_json()["id"]
    with db.session() as session:  # what a provisioner's error message might carry
        row = session.get(AccountRequest, request_id)
        row.status, row.failure_reason = "failed", f"useradd said {MARKUP}"
        row.email_claim = None
        row.updated_at = clock.now() + dt.timedelta(seconds=1)
    html = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "useradd said &lt;img" in html and MARKUP not in html
    assert 'http-equiv="refresh"' not in html  # a final state does not reload forever


def test_active_request_page_says_how_to_log_in(client, worker, transport):
    data = applicant()
    request_id = post_request(client, data).get_json()["id"]
    post_confirm(client, request_id, latest_code(worker, transport, data["email"]))
    worker.process_jobs_once()
    html = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "ssh alefevre@et.example.org" in html
    assert "check your mail" in html


def test_unknown_request_page_is_a_404_page(client):
    page = client.get(f"/requests/{MARKUP}")
    assert page.status_code == 404
    assert "text/html" in page.content_type
    html = page.get_data(as_text=True)
    assert "There is no such page." in html and "<img" not in html


def test_home_and_health(client):
    assert client.get("/").status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_status_page_colours_and_dry_run_notice(client, db, settings):
    request_id = post_request(client, applicant()).get_json()["id"]
    with db.session() as session:
        row = session.get(AccountRequest, request_id)
        row.status, row.username = Status.ACTIVE, "alefevre"
    page = client.get(f"/requests/{request_id}").get_data(as_text=True)
    attrs, _ = element(page, "status")
    assert "text-bg-success" in attrs["class"]  # green, as in the form
    assert "choose a new password" in page
    assert settings.PROVISIONER == "dry-run"
    assert "nothing was created on the server" in element(page, "dry-run")[1]
