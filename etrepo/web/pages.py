"""Plain pages: home, a request's status, and the demo mailbox."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import literal, select
from sqlalchemy.exc import SQLAlchemyError

from etrepo.accounts.errors import NotFound
from etrepo.accounts.lifecycle import FINAL, Status
from etrepo.db import one_line, schema_problem
from etrepo.models import Base

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)


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
# Bootstrap colours of a state, the same on the status page and in the form.
STATUS_COLORS: dict[Status, str] = {
    Status.ACTIVE: "success", Status.FAILED: "danger", Status.REJECTED: "secondary",
    Status.EXPIRED: "secondary",
}


def status_color(status: Status) -> str:
    return STATUS_COLORS.get(status, "info")


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
                           status_color=status_color(status), refresh=status not in FINAL)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Ok only when the database answers and has its tables: one cheap query per table."""
    db = current_app.extensions["etrepo"].db
    not_ready = "database not ready: run `etrepo db upgrade`"
    try:
        problem = schema_problem(db)  # also: no SQLite file yet (and none is created here)
    except SQLAlchemyError as exc:
        return _unavailable("database unreachable", f"{type(exc).__name__}: {one_line(exc)}")
    if problem:
        return _unavailable(not_ready, problem)
    try:
        with db.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                connection.execute(select(literal(1)).select_from(table).limit(1)).all()
    except SQLAlchemyError as exc:
        return _unavailable(not_ready, f"{type(exc).__name__}: {one_line(exc)}")
    return {"status": "ok"}, 200


def _unavailable(reason: str, detail: str) -> tuple[dict[str, str], int]:
    # The detail (a path, the driver's message) goes to the log, in one line: a monitoring
    # probe every few seconds must not fill it with tracebacks, nor tell the world the paths.
    log.warning("health check: %s (%s)", reason, detail)
    return {"status": "unavailable", "reason": reason}, 503


@bp.get("/demo/mailbox")
def demo_mailbox() -> str:
    settings = current_app.extensions["etrepo"].settings
    if not settings.DEMO or not settings.DEMO_MAILBOX:
        abort(404)
    from etrepo.mail.catcher import read_mailbox

    return render_template("mailbox.html", mails=read_mailbox(settings.DEMO_MAILBOX))
