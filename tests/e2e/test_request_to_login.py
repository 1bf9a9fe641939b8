"""From the request form in a real browser to a real SSH login.

Everything is real except the machine's sshd and mail relay: headless Chromium (Debian's) drives
the Dash form served by waitress, the worker runs in a thread against the same SQLite file and
delivers mail over SMTP to an ``SmtpSink``, and in the full test it creates a real Linux account
(root) that then logs in to a test sshd on 127.0.0.1.

No test waits with a sleep: Playwright's auto-waiting ``expect`` is used for the page, and
:func:`poll_until` (a deadline) for the mail and the database. Two in-process hooks make races
deterministic instead of lucky: :class:`HeldProvisioner` keeps the worker in "provisioning" until
the page has shown it, and :class:`SubmitBarrier` lets three submits reach the service together.

Screenshots for a human: /tmp/e2e-modal.png (the code modal), /tmp/e2e-ready.png (ready),
/tmp/e2e-change-details.png (the modal's way back to the form) and /tmp/e2e-phone-*.png (390 px).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paramiko
import pytest
import waitress
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select
from waitress import wasyncore

from etrepo.accounts.errors import ServiceError
from etrepo.accounts.lifecycle import DESCRIPTIONS, Status
from etrepo.accounts.validation import NAME_MAX
from etrepo.app import create_app
from etrepo.clock import SystemClock
from etrepo.config import Settings
from etrepo.dashapps import ids
from etrepo.db import Database
from etrepo.models import AccountRequest, OutboxMail
from etrepo.provisioning.interfaces import AccountSpec, Provisioner
from etrepo.provisioning.worker import build_worker
from etrepo.services import Services
from tests.conftest import code_from
from tests.integration import test_ssh_login as ssh_login  # its login check, reused
from tests.support.requirements import need_program, need_root
from tests.support.smtp import SmtpSink
from tests.support.users import purge_user

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 10_000  # any single wait in the page
READY_LIMIT_S = 5.0  # confirm click -> "ready" on the page
MARKUP = "<img src=x onerror=alert(1)>"
CONFIRMATION_SUBJECT = "Email confirmation request"
CREDENTIALS_SUBJECT = "Your login credentials"
HOLD_LIMIT_S = 15.0  # the longest the held provisioner waits for the test to let it go


def require_browser(*, root: bool = False) -> str:
    """Skip (or fail under ETREPO_TEST_STRICT=1) without Debian's chromium, or without root
    when ``root``; returns chromium's path."""
    if root:
        need_root()
    return need_program("chromium", "chromium")


def poll_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """``predicate()``'s first truthy value, asking again until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the pause between two looks
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        pause.wait(interval)


def unique_letters(n: int = 8) -> str:
    """Letters only: names may not hold digits."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def unique_email(prefix: str) -> str:
    return f"{prefix}.{secrets.token_hex(5)}@example.org"


def body_of(message: EmailMessage) -> str:
    return message.get_content()


# --- the portal: web server + worker + SMTP sink ---------------------------------------------


class HeldProvisioner:
    """The worker's real provisioner, but ``create_account`` first waits for ``release``.

    The page polls the status once a second and a real ``useradd`` takes a fraction of that, so
    without a hold the "being created" state would mostly never be on screen. The test lets the
    worker go as soon as the page showed it. The wait is bounded, so a broken page cannot hang
    the worker.
    """

    def __init__(self, inner: Provisioner) -> None:
        self.inner = inner
        self.name = inner.name
        self.release = threading.Event()
        self.started_at: float | None = None  # time.monotonic() when the worker got here
        self.released_at: float | None = None
        self.done_at: float | None = None  # the password set: the account is made

    def name_taken(self, name: str) -> bool:
        return self.inner.name_taken(name)

    def create_account(self, spec: AccountSpec) -> list[str]:
        if self.started_at is None:
            self.started_at = time.monotonic()
        self.release.wait(HOLD_LIMIT_S)
        if self.released_at is None:
            self.released_at = time.monotonic()
        return self.inner.create_account(spec)

    def set_initial_password(self, username: str, password: str) -> list[str]:
        actions = self.inner.set_initial_password(username, password)
        self.done_at = time.monotonic()
        return actions

    def remove_account(self, spec: AccountSpec) -> list[str]:
        return self.inner.remove_account(spec)


@dataclass
class Portal:
    url: str
    settings: Settings
    db: Database
    services: Services
    sink: SmtpSink
    provisioner: Any
    # Run after the worker and the web server stopped (user removal and the like).
    after_stop: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def requests_for(self, email: str) -> list[AccountRequest]:
        with self.db.session() as session:
            return list(session.scalars(
                select(AccountRequest).where(AccountRequest.email_normalized == email.lower())
            ))

    def outbox_for(self, email: str, kind: str) -> list[OutboxMail]:
        with self.db.session() as session:
            return list(session.scalars(
                select(OutboxMail).where(OutboxMail.to_addr == email, OutboxMail.kind == kind)
            ))

    def mails_to(self, email: str, subject_part: str = "") -> list[EmailMessage]:
        return [m for m in self.sink.messages
                if email in str(m["To"]) and subject_part in str(m["Subject"])]

    def wait_mail(self, email: str, subject_part: str, count: int = 1,
                  timeout: float = 10.0) -> EmailMessage:
        """The ``count``-th mail to ``email`` whose subject holds ``subject_part``."""
        def enough() -> list[EmailMessage] | None:
            found = self.mails_to(email, subject_part)
            return found if len(found) >= count else None

        return poll_until(enough, timeout, f"mail #{count} '{subject_part}' to {email}")[
            count - 1]


def _stop_server(server: Any, thread: threading.Thread) -> None:
    server.task_dispatcher.shutdown()  # its request threads
    # Close every socket (listener, connections, the trigger itself) in the server's own loop
    # thread, which the trigger runs this in: closing them from here races its select().
    # The loop then ends, its map being empty.
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(timeout=10)
    assert not thread.is_alive(), "waitress did not stop"


def _stop_worker(stop: threading.Event, thread: threading.Thread,
                 provisioner: Any) -> None:
    stop.set()
    if isinstance(provisioner, HeldProvisioner):
        provisioner.release.set()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the worker did not stop"


@pytest.fixture
def start_portal(make_settings, smtp_sink_factory, tmp_path: Path
                 ) -> Iterator[Callable[..., Portal]]:
    """``start(hold=False, **settings) -> Portal``: web server, worker and sink, all real and
    all stopped at teardown (then the portal's ``after_stop`` callbacks run)."""
    with contextlib.ExitStack() as stack:

        def start(*, hold: bool = False, **overrides: Any) -> Portal:
            sink = smtp_sink_factory("none")
            values: dict[str, Any] = {
                "SMTP_HOST": sink.host,
                "SMTP_PORT": sink.port,
                "SMTP_SECURITY": "none",
                "HOSTNAME": "127.0.0.1",
                "HOME_BASE": str(tmp_path / "home"),
                "WORK_BASE": str(tmp_path / "work"),
            }
            values.update(overrides)
            settings = make_settings(**values)
            db = Database(settings.database_url)
            stack.callback(db.dispose)
            db.upgrade()
            # The real clock (the `services` fixture's is frozen): codes, cooldowns and the
            # worker's queue all run on wall time here.
            services = Services.build(settings, SystemClock(), db=db)
            app = create_app(settings, services=services)
            server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
            server_thread = threading.Thread(target=server.run, name="waitress", daemon=True)
            server_thread.start()
            stack.callback(_stop_server, server, server_thread)

            worker_db = Database(settings.database_url)  # as a separate process would
            stack.callback(worker_db.dispose)
            worker = build_worker(settings, db=worker_db)
            if hold:
                worker.provisioner = HeldProvisioner(worker.provisioner)
            portal = Portal(url=f"http://127.0.0.1:{server.effective_port}", settings=settings,
                            db=db, services=services, sink=sink, provisioner=worker.provisioner)
            stack.callback(portal.after_stop.close)  # after the worker stopped (LIFO)
            stop = threading.Event()
            worker_thread = threading.Thread(target=worker.run, args=(stop,), name="worker",
                                             daemon=True)
            worker_thread.start()
            stack.callback(_stop_worker, stop, worker_thread, worker.provisioner)
            return portal

        yield start


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Tabs:
    """One browser context (a fresh profile); every tab of it records the dialogs it got."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.dialogs: list[str] = []

    def open(self, path: str) -> Page:
        page = self.context.new_page()
        page.on("dialog", self._dialog)
        page.goto(self.base_url + path)
        return page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def open_tabs(browser: Browser, start_portal) -> Iterator[Callable[[Portal], Tabs]]:
    """``open_tabs(portal) -> Tabs``. (It depends on ``start_portal`` so that the browser's
    connections are closed before the servers stop.)"""
    contexts: list[BrowserContext] = []

    def make(portal: Portal, width: int = 1100, height: int = 900) -> Tabs:
        # Reduced motion: Bootstrap then shows the modal without a fade, so screenshots and
        # visibility checks see it whole.
        context = browser.new_context(reduced_motion="reduce",
                                      viewport={"width": width, "height": height})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        return Tabs(context, portal.url)

    yield make
    for context in contexts:
        context.close()


# --- the form -------------------------------------------------------------------------------


def by_id(page: Page, component_id: str) -> Any:
    return page.locator(f"#{component_id}")


def open_form(tabs: Tabs) -> Page:
    page = tabs.open("/request/")
    expect(by_id(page, ids.SUBMIT)).to_be_enabled()
    return page


def fill_form(page: Page, **values: str) -> None:
    for name, value in values.items():
        by_id(page, ids.field(name)).fill(value)


def record_statuses(page: Page) -> None:
    """From now on the page keeps (in ``window.__e2e``) every status it shows, with
    performance.now() times, the time of the Confirm click, and a flag a reload would lose."""
    page.evaluate("""([confirmId, textId]) => {
        const rec = {noReload: true, confirmAt: null, statuses: []};
        window.__e2e = rec;
        document.addEventListener('click', (e) => {
            if (e.target.closest('#' + confirmId) && rec.confirmAt === null) {
                rec.confirmAt = performance.now();
            }
        }, true);
        const look = () => {
            const el = document.getElementById(textId);
            if (!el) return;
            const status = el.parentElement.getAttribute('data-status');
            const last = rec.statuses[rec.statuses.length - 1];
            if (!last || last.status !== status || last.text !== el.textContent) {
                rec.statuses.push({status, text: el.textContent, at: performance.now()});
            }
        };
        new MutationObserver(look).observe(document.body, {
            subtree: true, childList: true, characterData: true, attributes: true});
    }""", [ids.CONFIRM, ids.STATUS_TEXT])


def record_submits(page: Page) -> list[int]:
    """A list that receives the HTTP status of every submit callback the page sends."""
    statuses: list[int] = []

    def on_response(response: Any) -> None:
        if not urlsplit(response.url).path.endswith("/_dash-update-component"):
            return
        inputs = json.loads(response.request.post_data or "{}").get("inputs", [])
        if any(i.get("id") == ids.SUBMIT for i in inputs):
            statuses.append(response.status)

    page.on("response", on_response)
    return statuses


def status_text(page: Page, status: Status) -> Any:
    return page.locator(f'[data-status="{status.value}"] > #{ids.STATUS_TEXT}')


# === 1. the whole way: form -> code -> account -> credentials mail -> SSH login ================


@pytest.mark.root
def test_request_confirm_provision_and_ssh_login(start_portal, open_tabs, sshd_server,
                                                 tmp_path):
    """The applicant's whole way, as they see it. The worker is held in "provisioning" (see
    HeldProvisioner) until the page showed that state, so that the page's live update of it is
    checked too; the printed timings say how long the hold and the real work took."""
    require_browser(root=True)
    home_base, work_base = tmp_path / "home", tmp_path / "work"
    portal = start_portal(PROVISIONER="linux", hold=True)
    transports: list[paramiko.Transport] = []

    @portal.after_stop.callback
    def remove_what_was_created() -> None:
        # After the worker stopped, even if the test failed half-way: no test user and no
        # work directory is left behind.
        for t in transports:
            t.close()
        for user in pwd.getpwall():
            if Path(user.pw_dir).is_relative_to(home_base):
                ssh_login._wait_no_processes(user.pw_uid)
                purge_user(user.pw_name)  # userdel --remove, then the group if left
        shutil.rmtree(work_base, ignore_errors=True)
        shutil.rmtree(home_base, ignore_errors=True)

    suffix = unique_letters()
    first, last = "Zoë", "Ødegård" + suffix
    email = unique_email("zoe.odegard")
    tabs = open_tabs(portal)
    page = open_form(tabs)
    form_url = page.url
    fill_form(page, first_name=first, last_name=last, institution="Università di Pisa",
              email=email)
    record_statuses(page)
    by_id(page, ids.SUBMIT).click()

    modal = by_id(page, ids.MODAL)
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("Verify your email")
    expect(by_id(page, ids.MODAL_TEXT)).to_contain_text(f"We have sent a code to {email}")

    code = code_from(body_of(portal.wait_mail(email, CONFIRMATION_SUBJECT)))
    by_id(page, ids.CODE).fill(code)
    page.screenshot(path="/tmp/e2e-modal.png")
    by_id(page, ids.CONFIRM).click()
    confirmed_at = time.monotonic()

    expect(modal).to_be_hidden()
    # Live, through the page's own polling: the held worker is in "provisioning" ...
    expect(status_text(page, Status.PROVISIONING)).to_have_text(
        DESCRIPTIONS[Status.PROVISIONING])
    expect(by_id(page, ids.STATUS_TEXT)).to_contain_text("being created")
    portal.provisioner.release.set()
    # ... and then the account is ready.
    ready = status_text(page, Status.ACTIVE)
    expect(ready).to_have_text(DESCRIPTIONS[Status.ACTIVE],
                               timeout=int(READY_LIMIT_S * 1000))
    shown_ready_at = time.monotonic()
    page.screenshot(path="/tmp/e2e-ready.png")

    record = page.evaluate("window.__e2e")
    assert record["noReload"] is True and page.url == form_url  # no reload, no navigation
    shown = [s["status"] for s in record["statuses"]]
    assert shown == [Status.CONFIRMED, Status.PROVISIONING, Status.ACTIVE]
    assert record["confirmAt"] is not None
    ready_at = next(s["at"] for s in record["statuses"] if s["status"] == Status.ACTIVE)
    latency = (ready_at - record["confirmAt"]) / 1000
    gate = portal.provisioner
    print(f"\nconfirm-to-ready latency: {latency:.3f} s on the page "
          f"({shown_ready_at - confirmed_at:.3f} s seen from the test); the worker picked the "
          f"job up {gate.started_at - confirmed_at:.3f} s after the click, was held "
          f"{gate.released_at - gate.started_at:.3f} s until the page showed 'being created', "
          f"then made the account in {gate.done_at - gate.released_at:.3f} s; "
          f"statuses shown: {shown}")
    assert latency < READY_LIMIT_S

    # The credentials mail.
    body = body_of(portal.wait_mail(email, CREDENTIALS_SUBJECT))
    user_match = re.search(r"^Username: (\S+)$", body, re.MULTILINE)
    pw_match = re.search(r"^Password: (\S+)$", body, re.MULTILINE)
    assert user_match and pw_match, body
    username, password = user_match.group(1), pw_match.group(1)
    assert username == "zodegard" + suffix  # Zoë Ødegård... -> z + odegard...
    assert f"ssh {username}@127.0.0.1" in body
    assert password not in page.content()  # the password is in the mail only
    (request,) = portal.requests_for(email)
    assert (request.status, request.username) == (Status.ACTIVE, username)
    expect(by_id(page, ids.USERNAME)).to_have_text(username)  # the page names the login too

    # The account on this machine.
    user = pwd.getpwnam(username)
    assert Path(user.pw_dir) == home_base / username
    assert os.stat(user.pw_dir).st_uid == user.pw_uid
    workdir = os.lstat(work_base / username)
    assert stat.S_ISDIR(workdir.st_mode)
    assert stat.S_IMODE(workdir.st_mode) == 0o700
    assert (workdir.st_uid, workdir.st_gid) == (user.pw_uid, user.pw_gid)

    # The SSH login with the mailed password: accepted, then told to change it first
    # (the same checks as tests/integration/test_ssh_login.py).
    server = sshd_server(allow_users=username)

    def connect() -> paramiko.Transport:
        t = paramiko.Transport((server.host, server.port))
        transports.append(t)
        t.start_client(timeout=ssh_login.TIMEOUT)
        return t

    t0 = connect()
    ssh_login.login(t0, username, password)
    assert t0.is_authenticated()
    status, out, err = ssh_login.run_command(t0, "id -un")
    assert (status, out) == (1, "")
    assert err.splitlines() == [ssh_login.EXPIRED_SSHD, ssh_login.NO_TTY]

    t1 = connect()
    ssh_login.login(t1, username, password)
    channel = t1.open_session(timeout=ssh_login.TIMEOUT)
    channel.get_pty()
    channel.invoke_shell()
    said = ssh_login.read_until(channel, "Current password: ")
    assert ssh_login.EXPIRED_PAM in said
    assert f"{ssh_login.EXPIRED_SSHD}\r\n{ssh_login.MUST_CHANGE}\r\n" in said
    assert said.endswith(f"Changing password for {username}.\r\nCurrent password: ")
    assert f"Accepted password for {username}" in server.log()


# === 2. inline validation =====================================================================


def test_invalid_fields_are_marked_inline_and_nothing_is_sent(start_portal, open_tabs):
    portal = start_portal()
    tabs = open_tabs(portal)
    page = open_form(tabs)
    email = unique_email("ana")
    first = by_id(page, ids.field("first_name"))
    # No input cuts what is typed or pasted: a long name is kept whole, and the server's
    # message says what the limit is (a silent cut would have sent 64 letters and passed).
    for name in ("first_name", "last_name", "institution", "email", "github"):
        assert by_id(page, ids.field(name)).get_attribute("maxlength") is None, name
    fill_form(page, first_name="A" * 300, last_name="Ana:Lopez", institution="CSIC",
              email=email)
    expect(first).to_have_value("A" * 300)
    by_id(page, ids.SUBMIT).click()

    first_feedback = by_id(page, ids.feedback("first_name"))
    last_feedback = by_id(page, ids.feedback("last_name"))
    expect(first_feedback).to_be_visible()
    expect(first_feedback).to_have_text(
        f"Your first name is too long: at most {NAME_MAX} characters.")
    expect(last_feedback).to_be_visible()
    expect(last_feedback).to_contain_text("may contain letters, spaces, hyphens, apostrophes")
    expect(first).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(by_id(page, ids.field("last_name"))).to_have_class(re.compile(r"\bis-invalid\b"))
    # Each message sits under its own field, in the same column.
    for name in ("first_name", "last_name"):
        field_box = by_id(page, ids.field(name)).bounding_box()
        feedback_box = by_id(page, ids.feedback(name)).bounding_box()
        assert field_box and feedback_box
        assert feedback_box["y"] >= field_box["y"] + field_box["height"] - 1
        assert abs(feedback_box["x"] - field_box["x"]) < 2
    for name in ("institution", "email", "github"):
        expect(by_id(page, ids.feedback(name))).to_be_hidden()
        expect(by_id(page, ids.field(name))).not_to_have_class(re.compile(r"\bis-invalid\b"))

    expect(by_id(page, ids.MODAL)).to_be_hidden()
    expect(by_id(page, ids.SUBMIT)).to_be_enabled()
    assert portal.requests_for(email) == []
    assert portal.outbox_for(email, "confirmation") == []
    with pytest.raises(AssertionError):
        portal.sink.wait_for(timeout=1.0)  # and nothing reaches the SMTP server
    assert tabs.dialogs == []


def test_a_field_is_checked_when_the_applicant_leaves_it(start_portal, open_tabs):
    """Live feedback: a wrong field is marked on leaving it, before any submit; fixing it
    clears the mark; an untouched empty field is not scolded."""
    portal = start_portal()
    page = open_form(open_tabs(portal))
    last = by_id(page, ids.field("last_name"))
    last.fill("Ana:Lopez")
    last.press("Tab")
    expect(by_id(page, ids.feedback("last_name"))).to_contain_text("may contain letters")
    expect(last).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(by_id(page, ids.field("institution"))).not_to_have_class(re.compile(r"\bis-invalid\b"))
    last.fill("López")
    last.press("Tab")
    expect(last).not_to_have_class(re.compile(r"\bis-invalid\b"))
    expect(by_id(page, ids.MODAL)).to_be_hidden()
    assert portal.sink.messages == []


# === 3. markup is text ==========================================================================


def test_markup_in_names_and_institution_is_shown_as_text(start_portal, open_tabs):
    portal = start_portal()
    tabs = open_tabs(portal)
    page = open_form(tabs)
    email = unique_email("markup")

    # As a name it is refused, and the message does not render it.
    fill_form(page, first_name=MARKUP, last_name="Lopez", institution="CSIC", email=email)
    by_id(page, ids.SUBMIT).click()
    expect(by_id(page, ids.feedback("first_name"))).to_contain_text("may contain letters")
    expect(by_id(page, ids.MODAL)).to_be_hidden()
    expect(by_id(page, ids.field("first_name"))).to_have_value(MARKUP)
    expect(page.locator('img[src="x"]')).to_have_count(0)
    assert portal.requests_for(email) == []

    # As an institution it is accepted, and stays text on the form and on the status page.
    fill_form(page, first_name="Ana", institution=MARKUP)
    by_id(page, ids.SUBMIT).click()
    expect(by_id(page, ids.MODAL)).to_be_visible()
    expect(by_id(page, ids.feedback("first_name"))).to_be_hidden()
    expect(by_id(page, ids.field("institution"))).to_have_value(MARKUP)
    expect(page.locator('img[src="x"]')).to_have_count(0)
    (request,) = portal.requests_for(email)
    assert request.institution == MARKUP

    status_page = tabs.open(f"/requests/{request.id}")
    expect(status_page.locator("#institution")).to_have_text(MARKUP)
    expect(status_page.get_by_text(MARKUP, exact=True)).to_be_visible()
    expect(status_page.locator("#name")).to_have_text("Ana Lopez")
    expect(status_page.locator('img[src="x"]')).to_have_count(0)
    expect(status_page.locator("img")).to_have_count(0)
    assert MARKUP.replace("<", "&lt;").replace(">", "&gt;") in status_page.content()

    # Confirm, so that the progress panel of the form shows too; still no markup runs.
    code = code_from(body_of(portal.wait_mail(email, CONFIRMATION_SUBJECT)))
    by_id(page, ids.CODE).fill(code)
    by_id(page, ids.CONFIRM).click()
    expect(status_text(page, Status.ACTIVE)).to_be_visible()
    expect(page.locator('img[src="x"]')).to_have_count(0)
    assert tabs.dialogs == []


# === 4. double submit ===========================================================================


class SubmitBarrier:
    """Wraps the portal's ``RequestService.submit``: each call waits until ``parties`` calls
    are in the server, then all go on together, so the submits really race each other.
    (Without it the server answers the first click in milliseconds and the disabled button
    takes the second.)"""

    def __init__(self, portal: Portal, parties: int) -> None:
        self.inner = portal.services.requests.submit
        self.barrier = threading.Barrier(parties, timeout=PAGE_TIMEOUT_MS / 1000 / 2)
        self.calls = 0
        self.outcomes: list[str] = []
        self._lock = threading.Lock()
        portal.services.requests.submit = self  # an instance attribute: this portal only

    def __call__(self, data: dict[str, object], client_addr: str = "") -> Any:
        with self._lock:
            self.calls += 1
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()  # a broken barrier shows in `calls`; go on regardless
        try:
            view = self.inner(data, client_addr)
        except Exception as exc:
            with self._lock:
                self.outcomes.append(f"{type(exc).__name__}: {exc}")
            raise
        with self._lock:
            self.outcomes.append(view.id)
        return view


def test_double_submit_and_second_tab_make_one_request_and_one_mail(start_portal, open_tabs):
    portal = start_portal()
    tabs = open_tabs(portal)
    email = unique_email("double")
    data = {"first_name": "Bruno", "last_name": "Cortés", "institution": "IFAE",
            "email": email}
    first, second = open_form(tabs), open_form(tabs)
    fill_form(first, **data)
    fill_form(second, **data)
    answers = [record_submits(first), record_submits(second)]
    race = SubmitBarrier(portal, parties=3)
    # Submit twice in one tab (the first answer is held, so the button is still enabled)
    # and once in a second tab: three submits of the same application, at the same moment.
    first.bring_to_front()  # a background tab gets few animation frames: clicks would lag
    by_id(first, ids.SUBMIT).click()
    by_id(first, ids.SUBMIT).click()
    second.bring_to_front()
    by_id(second, ids.SUBMIT).click()
    for page in (first, second):
        expect(by_id(page, ids.MODAL)).to_be_visible()
        expect(by_id(page, ids.MODAL_TEXT)).to_contain_text(email)
        expect(by_id(page, ids.FORM_ALERT)).to_be_hidden()
    poll_until(lambda: sum(map(len, answers)) >= 3, 5, "the three submit answers")

    assert race.calls == 3
    assert answers == [[200, 200], [200]]
    (request,) = portal.requests_for(email)
    assert race.outcomes == [request.id] * 3
    assert len(portal.outbox_for(email, "confirmation")) == 1
    portal.wait_mail(email, CONFIRMATION_SUBJECT)
    # A second mail would be on its way by now if there were one: look a little longer.
    with pytest.raises(AssertionError):
        portal.wait_mail(email, CONFIRMATION_SUBJECT, count=2, timeout=1.5)
    assert len(portal.mails_to(email)) == 1
    assert tabs.dialogs == []


# === 5. a new code ==============================================================================


RESEND_COOLDOWN = 1


def test_send_a_new_code_waits_for_the_cooldown_and_kills_the_old_code(start_portal,
                                                                        open_tabs):
    portal = start_portal(RESEND_COOLDOWN=RESEND_COOLDOWN)
    tabs = open_tabs(portal)
    page = open_form(tabs)
    email = unique_email("resend")
    fill_form(page, first_name="Chiara", last_name="D'Amico", institution="INFN",
              email=email)
    by_id(page, ids.SUBMIT).click()
    expect(by_id(page, ids.MODAL)).to_be_visible()
    message = by_id(page, ids.CODE_MESSAGE)

    # Within the cooldown: a wait message, no new mail.
    by_id(page, ids.RESEND).click()
    expect(message).to_contain_text(re.compile(r"Please wait \d+ seconds? before asking"))
    first_code = code_from(body_of(portal.wait_mail(email, CONFIRMATION_SUBJECT)))
    (request,) = portal.requests_for(email)
    assert request.code_sent_at is not None
    assert len(portal.outbox_for(email, "confirmation")) == 1

    # Past it (by the portal's own clock): a new code, mailed; the old one is dead.
    clock = SystemClock()
    resend_at = request.code_sent_at + dt.timedelta(seconds=RESEND_COOLDOWN)
    poll_until(lambda: clock.now() > resend_at, RESEND_COOLDOWN + 5, "the resend cooldown")
    by_id(page, ids.RESEND).click()
    expect(message).to_contain_text("A new code is on its way")
    second_code = code_from(body_of(portal.wait_mail(email, CONFIRMATION_SUBJECT, count=2)))
    assert len(portal.mails_to(email)) == 2

    by_id(page, ids.CODE).fill(first_code)
    by_id(page, ids.CONFIRM).click()
    if first_code != second_code:  # one chance in 10**6 that they are the same
        expect(message).to_contain_text("The code is not correct")
        expect(by_id(page, ids.MODAL)).to_be_visible()
        by_id(page, ids.CODE).fill(second_code)
        by_id(page, ids.CONFIRM).click()
    expect(by_id(page, ids.MODAL)).to_be_hidden()
    expect(by_id(page, ids.STATUS_TEXT)).to_be_visible()
    (request,) = portal.requests_for(email)
    assert request.status != Status.AWAITING_CONFIRMATION
    assert tabs.dialogs == []


def test_change_my_details_after_a_typo_mails_the_code_to_the_new_address(start_portal,
                                                                          open_tabs):
    """The applicant sees a typo in the address the modal names: "Change my details" closes
    the modal, the form is as they left it, and submitting the corrected address mails a
    code there, and that code confirms."""
    portal = start_portal()
    tabs = open_tabs(portal)
    page = open_form(tabs)
    typo, email = unique_email("fabio.rosi"), unique_email("fabio.rossi")
    fill_form(page, first_name="Fabio", last_name="Rossi", institution="INFN Genova",
              email=typo)
    by_id(page, ids.SUBMIT).click()
    modal, text = by_id(page, ids.MODAL), by_id(page, ids.MODAL_TEXT)
    expect(modal).to_be_visible()
    expect(text).to_contain_text(f"We have sent a code to {typo}")
    portal.wait_mail(typo, CONFIRMATION_SUBJECT)
    expect(by_id(page, ids.SUBMIT)).to_be_disabled()

    change = by_id(page, ids.CHANGE_DETAILS)
    expect(change).to_have_text("Change my details")
    footer = [b.get_attribute("id") for b in page.locator(".modal-footer button").all()]
    assert footer[0] == ids.CHANGE_DETAILS  # on the left
    page.screenshot(path="/tmp/e2e-change-details.png")
    change.click()
    expect(modal).to_be_hidden()
    expect(by_id(page, ids.SUBMIT)).to_be_enabled()
    expect(by_id(page, ids.field("email"))).to_have_value(typo)  # the details are kept
    expect(by_id(page, ids.field("last_name"))).to_have_value("Rossi")

    fill_form(page, email=email)
    by_id(page, ids.SUBMIT).click()
    expect(modal).to_be_visible()
    expect(text).to_contain_text(f"We have sent a code to {email}")
    expect(text).not_to_contain_text(typo)
    code = code_from(body_of(portal.wait_mail(email, CONFIRMATION_SUBJECT)))
    assert len(portal.mails_to(typo)) == 1 and len(portal.mails_to(email)) == 1

    by_id(page, ids.CODE).fill(code)
    by_id(page, ids.CONFIRM).click()
    expect(modal).to_be_hidden()
    expect(by_id(page, ids.STATUS_TEXT)).to_be_visible()
    (request,) = portal.requests_for(email)
    assert request.status != Status.AWAITING_CONFIRMATION
    (mistyped,) = portal.requests_for(typo)
    # Withdrawn when the applicant went back: its code cannot make a second account.
    assert mistyped.status == Status.EXPIRED
    with pytest.raises(ServiceError):
        portal.services.requests.confirm(mistyped.id, "000000")
    assert tabs.dialogs == []


# === 6. a phone's width ==========================================================================


PHONE = (390, 800)


def test_pages_fit_a_phone_without_sideways_scrolling(start_portal, open_tabs):
    """At 390 px the navigation wraps instead of running off the screen: no horizontal
    scrollbar, and every link (Documentation and Contacts too) is on the screen."""
    portal = start_portal()
    view = portal.services.requests.submit(
        {"first_name": "Elena", "last_name": "Fabbri", "institution": "INFN Napoli",
         "email": unique_email("phone")}, "127.0.0.1")
    width, height = PHONE
    tabs = open_tabs(portal, width=width, height=height)
    for name, path in [("home", "/"), ("form", "/request/"), ("status", f"/requests/{view.id}")]:
        page = open_form(tabs) if path == "/request/" else tabs.open(path)
        links = page.locator("nav .nav-link")
        expect(links).to_have_count(5)
        page.screenshot(path=f"/tmp/e2e-phone-{name}.png", full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, (name, scroll_width)
        for link in links.all():
            expect(link).to_be_visible()
            box = link.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (
                name, link.text_content(), box)
    # On a wide screen the navigation stays one row.
    for page in (open_form(open_tabs(portal)), open_tabs(portal).open("/")):
        tops = {round(link.bounding_box()["y"]) for link in page.locator("nav .nav-link").all()}
        assert len(tops) == 1, (page.url, tops)
