"""The Flask application factory: pages, the API and the Dash form on one server."""

from __future__ import annotations

import logging
import os
import secrets
import sys

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from etrepo.clock import Clock
from etrepo.config import Settings, SettingsError
from etrepo.services import Services

log = logging.getLogger(__name__)

# The same words as `etrepo serve`.
ROOT_REFUSED = ("refusing to run the web process as root: run it as an unprivileged user "
                "(deploy/systemd/etrepo-web.service uses User=etrepo)")


def create_app(settings: Settings, *, clock: Clock | None = None,
               services: Services | None = None) -> Flask:
    """Build the web application. Opens no connection and writes no file."""
    if not settings.SECRET_KEY and not settings.DEMO:
        raise SettingsError("SECRET_KEY: required outside the demo (set ETREPO_SECRET_KEY)")
    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=settings.MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=settings.MAX_REQUEST_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.BASE_URL.startswith("https://"),
    )
    if settings.TRUSTED_PROXIES:
        n = settings.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["etrepo"] = services or Services.build(settings, clock)
    app.jinja_env.globals.update(settings=settings)

    from etrepo.web import api, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)

    from etrepo.dashapps import request_form

    request_form.init_app(app, settings)

    _register_error_pages(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app


def _register_error_pages(app: Flask) -> None:
    from etrepo.web.api import error_response

    def wants_json() -> bool:
        return request.path.startswith("/api/") or request.path.startswith("/request/_dash")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        message = {
            404: "There is no such page.",
            405: "This method is not allowed here.",
            413: f"The request is too large (at most {app.config['MAX_CONTENT_LENGTH']} bytes).",
        }.get(code, exc.description or exc.name)
        if wants_json():
            response = error_response(code, exc.name.lower().replace(" ", "_"), message)
        else:
            response = app.make_response(
                (render_template("error.html", code=code, title=exc.name, message=message), code))
        # The exception's own headers (405's Allow, 401's WWW-Authenticate, ...), not its body's.
        for name, value in exc.get_headers(request.environ):
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[str, int] | Response:
        # Logged with its traceback for the maintainers; the page says nothing of the inside.
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side. The maintainers can see what in the log."
        if wants_json():
            return error_response(500, "internal_error", message)
        return render_template("error.html", code=500, title="Server error", message=message), 500


# gunicorn's exit status for "the application could not be loaded": its arbiter stops, where
# after any other failure it would boot the workers again and again.
APP_LOAD_ERROR = 4


class _CannotServe(Exception):
    """Why the app cannot serve, in one line (the words of ``etrepo serve``)."""


def create_app_from_env() -> Flask:
    """For WSGI servers: ``gunicorn 'etrepo.app:create_app_from_env()'``.

    Behaves like ``etrepo serve``: refuses root (the web process faces the network and needs no
    privilege), wrong settings and a database without the current schema, each with one line
    on stderr and exit status 4, which stops gunicorn instead of having it respawn workers.
    Logs go to stdout in the CLI's format, unless logging is set up already (e.g. by an
    admin's gunicorn ``logconfig``)."""
    if not logging.getLogger().handlers:
        from etrepo.logs import setup_logging

        setup_logging()
    try:
        return _checked_app_from_env()
    except _CannotServe as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(APP_LOAD_ERROR)


def _checked_app_from_env() -> Flask:
    from etrepo.config import load_settings
    from etrepo.db import startup_problem

    if os.geteuid() == 0:
        raise _CannotServe(ROOT_REFUSED)
    try:
        settings = load_settings()
        app = create_app(settings)
    except SettingsError as exc:
        raise _CannotServe(f"configuration: {exc}") from None
    problem = startup_problem(app.extensions["etrepo"].db)
    if problem:
        app.extensions["etrepo"].db.dispose()
        raise _CannotServe(problem)
    return app
