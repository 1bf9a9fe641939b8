"""The request service without HTTP: codes, tries, resends, expiry, nothing reserved early."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from etrepo.accounts.errors import CodeDead, Conflict, NotFound, RateLimited, WrongCode
from etrepo.accounts.lifecycle import (
    DESCRIPTIONS,
    HOLDS_ADDRESS,
    Status,
    TransitionError,
    check_transition,
)
from etrepo.accounts.service import RequestService
from etrepo.clock import FrozenClock
from etrepo.mail.transport import MemoryTransport
from etrepo.models import AccountRequest, OutboxMail, RateEvent
from etrepo.provisioning.dryrun import DryRunProvisioner
from etrepo.provisioning.worker import Worker
from tests.support.portal import applicant, count, latest_code, wrong_code


def test_code_length_comes_from_the_settings(make_settings, db, clock):
    settings = make_settings(CODE_LENGTH=9)
    transport = MemoryTransport()
    service = RequestService(db, settings, clock)
    worker = Worker(db, settings, DryRunProvisioner(), transport, clock)
    data = applicant()
    service.submit(data)
    code = latest_code(worker, transport, data["email"])
    assert len(code) == 9 and code.isdigit()


def test_wrong_codes_count_down_then_the_code_is_dead(services, worker, transport):
    data = applicant()
    view = services.requests.submit(data)
    right = latest_code(worker, transport, data["email"])
    left = []
    for _ in range(4):
        with pytest.raises(WrongCode) as info:
            services.requests.confirm(view.id, wrong_code(right))
        left.append(info.value.tries_left)
        assert f"{info.value.tries_left} tr" in info.value.message
    assert left == [4, 3, 2, 1]
    with pytest.raises(CodeDead, match=r"last try.*Ask for a new code"):
        services.requests.confirm(view.id, wrong_code(right))
    with pytest.raises(CodeDead, match="Ask for a new code"):
        services.requests.confirm(view.id, right)  # even the right one: it is dead
    assert services.requests.get(view.id).status == Status.AWAITING_CONFIRMATION


def test_an_empty_code_is_not_counted(services, worker, transport):
    data = applicant()
    view = services.requests.submit(data)
    right = latest_code(worker, transport, data["email"])
    for _ in range(10):
        with pytest.raises(WrongCode, match="enter the code"):
            services.requests.confirm(view.id, "   ")
    assert services.requests.confirm(view.id, right).status == Status.CONFIRMED


def test_a_new_code_kills_the_old_one_and_waits_for_the_cooldown(services, worker, transport,
                                                                 clock, settings):
    data = applicant()
    view = services.requests.submit(data)
    old = latest_code(worker, transport, data["email"])
    with pytest.raises(RateLimited) as info:
        services.requests.resend(view.id)
    assert info.value.retry_after == settings.RESEND_COOLDOWN
    clock.advance(settings.RESEND_COOLDOWN)
    services.requests.resend(view.id)
    new = latest_code(worker, transport, data["email"])
    if new != old:
        with pytest.raises(WrongCode):
            services.requests.confirm(view.id, old)
    assert services.requests.confirm(view.id, new).status == Status.CONFIRMED


def test_an_expired_code_says_ask_for_a_new_one_and_a_new_one_works(services, worker, transport,
                                                                     clock, settings):
    data = applicant()
    view = services.requests.submit(data)
    code = latest_code(worker, transport, data["email"])
    clock.advance(settings.CODE_TTL)
    with pytest.raises(CodeDead, match=r"expired\. Ask for a new code"):
        services.requests.confirm(view.id, code)
    services.requests.resend(view.id)
    assert services.requests.confirm(
        view.id, latest_code(worker, transport, data["email"])).status == Status.CONFIRMED


def test_confirming_twice_is_harmless(services, worker, transport):
    data = applicant()
    view = services.requests.submit(data)
    code = latest_code(worker, transport, data["email"])
    first = services.requests.confirm(view.id, code)
    again = services.requests.confirm(view.id, code)
    wrong = services.requests.confirm(view.id, wrong_code(code))
    assert first.status == again.status == wrong.status == Status.CONFIRMED
    with pytest.raises(Conflict, match="already confirmed"):
        services.requests.resend(view.id)


def test_nothing_is_reserved_before_the_address_is_confirmed(services, worker, transport):
    """John Doe who never confirms does not take 'jdoe' from the John Doe who does."""
    never = services.requests.submit(applicant(first_name="John", last_name="Doe"))
    data = applicant(first_name="Jonathan", last_name="Doe")
    later = services.requests.submit(data)
    services.requests.confirm(later.id, latest_code(worker, transport, data["email"]))
    worker.process_jobs_once()
    assert services.requests.get(later.id).username == "jdoe"
    assert services.requests.get(never.id).username is None


def test_expire_stale_purges_only_old_unconfirmed_requests(services, worker, transport, clock,
                                                           settings, db):
    old = services.requests.submit(applicant())
    confirmed_data = applicant()
    confirmed = services.requests.submit(confirmed_data)
    services.requests.confirm(confirmed.id,
                              latest_code(worker, transport, confirmed_data["email"]))
    clock.advance(settings.REQUEST_TTL - 10)
    young = services.requests.submit(applicant())
    assert services.requests.expire_stale() == 0
    clock.advance(11)
    assert services.requests.expire_stale() == 1
    assert services.requests.get(old.id).status == Status.EXPIRED
    assert services.requests.get(young.id).status == Status.AWAITING_CONFIRMATION
    assert services.requests.get(confirmed.id).status == Status.CONFIRMED
    with pytest.raises(CodeDead, match="submit the form again"):
        services.requests.confirm(old.id, "123456")
    with pytest.raises(CodeDead, match="submit the form again"):
        services.requests.resend(old.id)
    with db.session() as session:  # the expired one no longer holds its address
        assert session.get(AccountRequest, old.id).email_claim is None
    # counters older than the window are dropped with it
    assert count(db, RateEvent, RateEvent.at < clock.now() - _window(settings)) == 0


def _window(settings):
    import datetime as dt

    return dt.timedelta(seconds=settings.RATE_LIMIT_WINDOW)


def test_unknown_ids_are_not_found(services):
    for bad in ("nope", "", "x" * 33, "../../etc/passwd"):
        with pytest.raises(NotFound):
            services.requests.get(bad)
        with pytest.raises(NotFound):
            services.requests.confirm(bad, "123456")
        with pytest.raises(NotFound):
            services.requests.resend(bad)


def test_the_view_hides_code_hash_and_lease(services):
    view = services.requests.submit(applicant())
    assert not {"code_hash", "lease_owner", "email", "client_addr"} & set(vars(view))


def test_submit_limit_per_client_address(make_settings, db):
    settings = make_settings(RATE_LIMIT_SUBMITS=3)
    service = RequestService(db, settings, FrozenClock())
    for _ in range(3):
        service.submit(applicant(), client_addr="192.0.2.7")
    with pytest.raises(RateLimited, match="Too many requests from your network"):
        service.submit(applicant(), client_addr="192.0.2.7")
    service.submit(applicant(), client_addr="192.0.2.8")  # another network is not affected
    assert count(db, AccountRequest) == 4


def test_a_refused_submit_leaves_nothing_behind(services, db):
    with pytest.raises(Exception, match="last_name"):
        services.requests.submit(applicant(last_name="Ana:Lopez"))
    assert count(db, AccountRequest) == 0
    assert count(db, OutboxMail) == 0
    assert count(db, RateEvent) == 0


def test_every_state_has_a_description_and_transitions_are_checked():
    assert set(DESCRIPTIONS) == set(Status)
    check_transition("awaiting_confirmation", Status.CONFIRMED)
    with pytest.raises(TransitionError):
        check_transition("awaiting_confirmation", Status.ACTIVE)
    with pytest.raises(TransitionError):
        check_transition("active", Status.CONFIRMED)
    assert Status.EXPIRED not in HOLDS_ADDRESS and Status.ACTIVE in HOLDS_ADDRESS


def test_one_request_per_address_in_the_database(services, db):
    """Two rows claiming one address are refused by the database itself."""
    from sqlalchemy.exc import IntegrityError

    view = services.requests.submit(applicant(email="Jane.Doe@Uni.EDU"))
    with db.session() as session:
        row = session.get(AccountRequest, view.id)
        clone = {c.key: getattr(row, c.key) for c in AccountRequest.__table__.columns}
    clone["id"] = "another-id"
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(AccountRequest(**clone))
    with db.session() as session:
        claims = session.scalars(select(AccountRequest.email_claim)).all()
    assert claims == ["jane.doe@uni.edu"]


def test_withdrawing_closes_only_an_unconfirmed_request(services, worker, transport):
    open_one = services.requests.submit(applicant())
    assert services.requests.withdraw(open_one.id).status == "expired"
    assert services.requests.withdraw(open_one.id).status == "expired"  # twice is harmless
    with pytest.raises(CodeDead):
        services.requests.confirm(open_one.id, "123456")
    data = applicant()
    confirmed = services.requests.submit(data)
    services.requests.confirm(confirmed.id, latest_code(worker, transport, data["email"]))
    assert services.requests.withdraw(confirmed.id).status == "confirmed"


def test_request_ids_are_safe_on_a_command_line(services):
    """`etrepo requests show ID` must never see an id that looks like an option ('-P...')."""
    import re

    for _ in range(50):
        view = services.requests.submit(applicant())
        assert re.fullmatch(r"[0-9a-f]{32}", view.id)
