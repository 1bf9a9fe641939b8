"""Plain pages: home, a request's status, and the demo mailbox."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from etrepo.accounts.errors import NotFound
from etrepo.accounts.lifecycle import Status

bp = Blueprint("pages", __name__)

FINAL = {Status.ACTIVE, Status.FAILED, Status.REJECTED, Status.EXPIRED}


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
    return render_template("status.html", view=view, refresh=Status(view.status) not in FINAL)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/demo/mailbox")
def demo_mailbox() -> str:
    settings = current_app.extensions["etrepo"].settings
    if not settings.DEMO or not settings.DEMO_MAILBOX:
        abort(404)
    from etrepo.mail.catcher import read_mailbox

    return render_template("mailbox.html", mails=read_mailbox(settings.DEMO_MAILBOX))
