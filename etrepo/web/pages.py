"""Plain pages: home, a request's status, and the demo mailbox."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import literal, select
from sqlalchemy.exc import SQLAlchemyError

from etrepo.accounts.errors import NotFound
from etrepo.accounts.lifecycle import Status
from etrepo.models import Base

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

FINAL = {Status.ACTIVE, Status.FAILED, Status.REJECTED, Status.EXPIRED}

# The status badge in words; the raw value stays in its data-status attribute for machines.
STATUS_LABELS: dict[Status, str] = {
    Status.AWAITING_CONFIRMATION: "Awaiting confirmation",
    Status.CONFIRMED: "Confirmed",
    Status.AWAITING_APPROVAL: "Awaiting approval",
    Status.PROVISIONING: "Account being created",
    Status.ACTIVE: "Active",
    Status.FAILED: "Failed",
    Status.REJECTED: "Not approved",
    Status.EXPIRED: "Closed",
}


@bp.get("/")
def home() -> str:
    return render_template("home.html")


@bp.get("/requests/<request_id>")
def request_status(request_id: str) -> str:
    services = current_app.extensions["etrepo"]
    try:
        view = services.requests.get(request_id)
    except NotFound:
        abort(404)
    status = Status(view.status)
    return render_template("status.html", view=view, status_label=STATUS_LABELS[status],
                           refresh=status not in FINAL)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Ok only when the database answers and has its tables: one cheap query per table."""
    engine = current_app.extensions["etrepo"].db.engine
    try:
        connection = engine.connect()
    except SQLAlchemyError as exc:
        return _unavailable("database unreachable", exc)
    try:
        with connection:
            for table in Base.metadata.sorted_tables:
                connection.execute(select(literal(1)).select_from(table).limit(1)).all()
    except SQLAlchemyError as exc:
        return _unavailable("database not ready: run `etrepo db upgrade`", exc)
    return {"status": "ok"}, 200


def _unavailable(reason: str, exc: SQLAlchemyError) -> tuple[dict[str, str], int]:
    # One line for the admin: the driver's own message (e.g. "no table: account_requests")
    # says enough; a monitoring probe every few seconds must not fill the log with tracebacks.
    lines = str(getattr(exc, "orig", None) or exc).splitlines()
    log.warning("health check: %s (%s: %s)", reason, type(exc).__name__,
                lines[0] if lines else "")
    return {"status": "unavailable", "reason": reason}, 503


@bp.get("/demo/mailbox")
def demo_mailbox() -> str:
    settings = current_app.extensions["etrepo"].settings
    if not settings.DEMO or not settings.DEMO_MAILBOX:
        abort(404)
    from etrepo.mail.catcher import read_mailbox

    return render_template("mailbox.html", mails=read_mailbox(settings.DEMO_MAILBOX))
