"""The ``etrepo`` command."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Any

import click

from etrepo import __version__
from etrepo.accounts.lifecycle import Status
from etrepo.config import Settings, SettingsError, load_settings
from etrepo.logs import setup_logging
from etrepo.provisioning.interfaces import ProvisioningError

log = logging.getLogger("etrepo")


def _load(overrides: dict[str, Any] | None = None) -> Settings:
    try:
        return load_settings(overrides=overrides)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="etrepo")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """ETRepo Portal: account requests, provisioning and mail for the research server.

    Settings come from the defaults, the Python file named by ETREPO_CONFIG and ETREPO_*
    variables; `etrepo config` shows them.
    """
    setup_logging(verbose)  # stdout, the journal under systemd: as the WSGI entry does


# --- configuration and schema ----------------------------------------------------------------
@main.command("config")
def show_config() -> None:
    """Show every setting, its value (secrets masked) and what it does."""
    settings = _load()
    for name, shown, help_text in settings.describe():
        click.echo(f"{name:24} {shown:40} {help_text}")


@main.group()
def db() -> None:
    """Database schema commands (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Create the schema, or migrate it to REVISION."""
    from sqlalchemy.exc import SQLAlchemyError

    from etrepo.db import Database, one_line

    settings = _load()
    database = Database(settings.database_url)
    try:
        database.upgrade(revision)
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database {database.safe_url}: {one_line(exc)}") from None
    click.echo(f"schema at {revision} in {database.safe_url}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (run in CI)."""
    from etrepo.db import Database, schema_differences

    settings = _load()
    differences = schema_differences(Database(settings.database_url))
    if differences:
        for line in differences:
            click.echo(line, err=True)
        raise click.ClickException("the models differ from the migrated schema")
    click.echo("models and migrations agree")


def _open_db(settings: Settings) -> Any:
    """The database, checked: reachable and at the migrations' head. One line otherwise."""
    from etrepo.db import Database, startup_problem

    database = Database(settings.database_url)
    problem = startup_problem(database)
    if problem:
        raise click.ClickException(problem)
    return database


# --- processes ---------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8010, show_default=True, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, help="Worker threads.")
def serve(host: str, port: int, threads: int) -> None:
    """Run the web application with waitress (production: gunicorn, see deploy/)."""
    from etrepo.app import ROOT_REFUSED, create_app

    if os.geteuid() == 0:
        raise click.ClickException(ROOT_REFUSED)

    settings = _load()
    try:
        app = create_app(settings)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    from etrepo.db import startup_problem

    problem = startup_problem(app.extensions["etrepo"].db)  # no schema: refuse to serve
    if problem:
        raise click.ClickException(problem)
    _serve_forever(app, host, port, threads)


def _serve_forever(app: Any, host: str, port: int, threads: int,
                   on_ready: Any = None) -> None:
    from waitress import create_server

    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="etrepo")
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    log.info("portal listening on http://%s:%s/", host, port)
    if on_ready:
        on_ready()

    def stop(*_: object) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except (KeyboardInterrupt, OSError):
        pass
    finally:
        server.close()


@main.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
def worker(once: bool) -> None:
    """Deliver the outbox and create the accounts of confirmed requests.

    The linux provisioner needs root; the dry-run provisioner creates nothing.
    """
    from etrepo.provisioning.worker import build_worker

    settings = _load()
    if settings.PROVISIONER == "linux" and os.geteuid() != 0:
        raise click.ClickException("PROVISIONER=linux needs root: run `etrepo worker` as root")
    database = _open_db(settings)
    try:
        the_worker = build_worker(settings, db=database)
        the_worker.check()
    except ProvisioningError as exc:  # e.g. a configured group that does not exist
        raise click.ClickException(f"configuration: {exc}") from None
    if once:
        jobs = the_worker.process_jobs_once()
        mails = the_worker.delivery.deliver_due()
        click.echo(f"{jobs} requests finished or failed, {mails} mails sent or given up")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("worker started (%s provisioner, polling every %.2fs)", settings.PROVISIONER,
             settings.WORKER_POLL_INTERVAL)
    the_worker.run(stop)
    log.info("worker stopped")


@main.command()
@click.option("--port", default=8010, show_default=True, help="Port of the portal.")
@click.option("--smtp-port", default=8025, show_default=True, help="Port of the mail catcher.")
@click.option("--instance", default="instance", show_default=True,
              help="Folder for the SQLite database, the secret key and the caught mail.")
def demo(port: int, smtp_port: int, instance: str) -> None:
    """Portal, worker (dry-run) and an SMTP catcher in one process, on loopback."""
    from etrepo.app import create_app
    from etrepo.mail.catcher import MailCatcher
    from etrepo.provisioning.worker import build_worker
    from etrepo.services import Services

    _check_port_free("127.0.0.1", port)
    folder = Path(instance).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        log.warning("running the demo as root: fine for a try, never for the real portal")
    catcher = MailCatcher(folder / "demo-mail.mbox", port=smtp_port)
    catcher.start()
    settings = _load({
        "DEMO": True,
        "INSTANCE_DIR": str(folder),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "PROVISIONER": "dry-run",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": catcher.port,
        "SMTP_SECURITY": "none",
        "SMTP_USER": "",
        "SMTP_PASSWORD": "",
        "DEMO_MAILBOX": str(folder / "demo-mail.mbox"),
        "SECRET_KEY": _instance_secret(folder),
    })
    services = Services.build(settings)
    services.db.upgrade()
    the_worker = build_worker(settings, db=services.db)
    try:
        the_worker.check()
    except ProvisioningError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    stop = threading.Event()
    thread = threading.Thread(target=the_worker.run, args=(stop,), name="worker", daemon=True)
    thread.start()
    app = create_app(settings, services=services)

    def ready() -> None:
        click.echo(
            f"\n  Portal:   http://127.0.0.1:{port}/\n"
            f"  Form:     http://127.0.0.1:{port}/request/\n"
            f"  Mailbox:  http://127.0.0.1:{port}/demo/mailbox  (SMTP catcher on port "
            f"{catcher.port})\n"
            f"  Accounts: dry-run (nothing is created)   Data: {folder}\n"
            "  Stop with Ctrl-C.\n"
        )

    try:
        _serve_forever(app, "127.0.0.1", port, 8, on_ready=ready)
    finally:
        stop.set()
        thread.join(timeout=10)
        catcher.stop()


def _check_port_free(host: str, port: int) -> None:
    """Before starting the catcher and the worker: a busy port is one line, not a traceback."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror} "
                                       "(is another portal running? try --port)") from None


def _instance_secret(folder: Path) -> str:
    path = folder / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


# --- maintainers' views ----------------------------------------------------------------
@main.group()
def requests() -> None:
    """Look at account requests."""


@requests.command("list")
@click.option("--status", default=None, help="Only requests in this state.",
              type=click.Choice([s.value for s in Status]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="At most this many, newest first.")
def requests_list(status: str | None, limit: int) -> None:
    """The newest requests, one a line."""
    from sqlalchemy import select

    from etrepo.models import AccountRequest

    settings = _load()
    with _open_db(settings).session() as session:
        query = select(AccountRequest).order_by(AccountRequest.created_at.desc()).limit(limit)
        if status:
            query = query.where(AccountRequest.status == status)
        rows = session.scalars(query).all()
        if rows:
            click.echo(f"{'id':32}  {'status':22} {'created (UTC)':16}  {'username':12} name")
        for r in rows:
            click.echo(f"{r.id:32}  {r.status:22} {r.created_at:%Y-%m-%d %H:%M}  "
                       f"{r.username or '-':12} {r.display_name} <{r.email}>")


def _get_request(session: Any, request_id: str) -> Any:
    from etrepo.models import AccountRequest

    request = session.get(AccountRequest, request_id)
    if request is None:
        raise click.ClickException(f"no request {request_id}")
    return request


@requests.command("show")
@click.argument("request_id")
def requests_show(request_id: str) -> None:
    """One request with its history."""
    from sqlalchemy import select

    from etrepo.models import RequestEvent

    settings = _load()
    with _open_db(settings).session() as session:
        r = _get_request(session, request_id)
        click.echo(f"{r.display_name} <{r.email}>, {r.institution}")
        click.echo(f"status {r.status}, username {r.username or '-'}, attempts {r.attempts}")
        if r.failure_reason:
            click.echo(f"reason: {r.failure_reason}")
        for e in session.scalars(select(RequestEvent).where(RequestEvent.request_id == r.id)
                                 .order_by(RequestEvent.id)):
            click.echo(f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.kind:16} {e.detail}")


@requests.command("retry")
@click.argument("request_id")
def requests_retry(request_id: str) -> None:
    """Put a failed request back in the queue."""
    from etrepo.accounts.service import add_event, set_status
    from etrepo.clock import utcnow

    settings = _load()
    with _open_db(settings).session() as session:
        r = _get_request(session, request_id)
        if r.status != Status.FAILED:
            raise click.ClickException(f"request {request_id} is {r.status}: only a failed "
                                       "request can be retried")
        set_status(r, Status.CONFIRMED, utcnow())
        r.attempts, r.next_attempt_at = 0, utcnow()
        add_event(session, r.id, utcnow(), "retry", "queued again by a maintainer")
    click.echo(f"request {request_id} queued again")


@main.command("outbox")
@click.option("--all", "show_all", is_flag=True, help="Also list delivered and cancelled mails.")
@click.option("--retry-now", is_flag=True,
              help="Make every waiting mail due now (after an SMTP outage is fixed).")
def outbox_cmd(show_all: bool, retry_now: bool) -> None:
    """The mail backlog: what waits, why, and what failed for good."""
    from sqlalchemy import select

    from etrepo.mail.outbox import backlog
    from etrepo.models import OutboxMail

    settings = _load()
    with _open_db(settings).session() as session:
        if retry_now:
            from etrepo.clock import utcnow
            from etrepo.mail.outbox import retry_now as make_due

            click.echo(f"{make_due(session, utcnow())} waiting mails are due now")
        counts = backlog(session)
        click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "empty")
        query = select(OutboxMail).order_by(OutboxMail.id)
        if not show_all:
            query = query.where(OutboxMail.status.in_(["pending", "failed"]))
        for m in session.scalars(query):
            when = (f"next try {m.next_attempt_at:%Y-%m-%d %H:%M:%S}" if m.status == "pending"
                    else f"{m.status} {m.sent_at or m.created_at:%Y-%m-%d %H:%M:%S}")
            click.echo(f"{m.id:6} {m.status:9} {m.kind:14} attempts {m.attempts:3}  "
                       f"{m.to_addr:32} {when}  {m.last_error or ''}".rstrip())


if __name__ == "__main__":  # pragma: no cover
    main()
