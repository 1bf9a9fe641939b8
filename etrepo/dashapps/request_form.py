"""The account request form: a Dash page on the Flask server, at /request/.

Callbacks are plain functions of their inputs that call the request service and return what
the page shows; ``init_app`` wires them to one Dash app. (They are registered per app rather
than with the global ``dash.callback``: Dash hands global callbacks to the first app only,
and the factory builds many apps in one process, in tests and in the demo.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import Flask, current_app, request

from etrepo.accounts.errors import RateLimited, ServiceError
from etrepo.accounts.lifecycle import FINAL, Status
from etrepo.accounts.validation import ValidationError, check_field
from etrepo.config import Settings
from etrepo.dashapps import ids
from etrepo.dashapps.hardening import PortalDash, guard
from etrepo.web.pages import status_color

log = logging.getLogger(__name__)

# No maxLength on the inputs: the browser would cut a pasted value silently, where the server
# says "at most N characters".
FIELDS: list[tuple[str, str, str, bool]] = [
    # (field, label, input type, required)
    ("first_name", "First name", "text", True),
    ("last_name", "Last name", "text", True),
    ("institution", "Institution", "text", True),
    ("email", "Email", "email", True),
    ("github", "GitHub account (optional)", "text", False),
]


# --- layout -----------------------------------------------------------------------------
def _nav(settings: Settings) -> html.Nav:
    links = [("Home", "/"), ("Request an account", "/request/"),
             ("Go to JupyterHub", settings.JUPYTERHUB_URL),
             ("Documentation", settings.DOCS_URL), ("Contacts", settings.CONTACTS_URL)]
    # flex-wrap (as in templates/_nav.html): on a phone the links wrap onto more lines instead
    # of running off the screen (no Bootstrap JS is loaded, so no collapse toggler).
    return html.Nav(className="navbar navbar-expand navbar-dark bg-dark", children=html.Div(
        className="container flex-wrap", children=[
            html.A(settings.SITE_NAME, href="/", className="navbar-brand"),
            html.Ul(className="navbar-nav flex-wrap", children=[
                html.Li(html.A(text, href=href, className="nav-link"), className="nav-item")
                for text, href in links
            ]),
        ]))


def _field(name: str, label: str, kind: str, required: bool) -> dbc.Row:
    return dbc.Row(className="mb-3", children=[
        dbc.Label(label, html_for=ids.field(name), width=3),
        dbc.Col(width=9, children=[
            dbc.Input(id=ids.field(name), type=kind, required=required,
                      autoComplete={"first_name": "given-name", "last_name": "family-name",
                                    "email": "email", "institution": "organization"}
                      .get(name, "off")),
            dbc.FormFeedback(id=ids.feedback(name), type="invalid"),
        ]),
    ])


def layout(settings: Settings) -> html.Div:
    return html.Div([
        _nav(settings),
        dbc.Container(className="my-4", style={"maxWidth": "52rem"}, children=[
            html.H1("Request an account", className="h3 mb-3"),
            html.P([
                f"An account on the {settings.SITE_NAME} server gives you an SSH login at ",
                html.Code(settings.HOSTNAME),
                ", a home and a private work directory, access to JupyterHub and the shared "
                "conda environments, and read access to the site recordings. "
                "We will mail you a code to confirm your address, then your login credentials.",
            ]),
            html.Div(id=ids.FORM, children=[_field(*spec) for spec in FIELDS]),
            dbc.Alert(id=ids.FORM_ALERT, is_open=False, color="danger"),
            dbc.Button("Submit request", id=ids.SUBMIT, color="primary", n_clicks=0),
            html.Div(id=ids.PROGRESS, className="mt-4"),
            dcc.Store(id=ids.REQUEST_ID),
            dcc.Interval(id=ids.POLL, interval=500, disabled=True),
            dbc.Modal(id=ids.MODAL, is_open=False, backdrop="static", keyboard=False, children=[
                dbc.ModalHeader(dbc.ModalTitle("Verify your email"), close_button=False),
                dbc.ModalBody([
                    html.P(id=ids.MODAL_TEXT),
                    dbc.Input(id=ids.CODE, type="text", inputMode="numeric",
                              autoComplete="one-time-code", placeholder="Code from the mail"),
                    html.Div(id=ids.CODE_MESSAGE, className="mt-2"),
                ]),
                dbc.ModalFooter([
                    # On the left (me-auto), apart from the two buttons about the code.
                    dbc.Button("Change my details", id=ids.CHANGE_DETAILS, color="secondary",
                               outline=True, n_clicks=0, className="me-auto"),
                    dbc.Button("Send a new code", id=ids.RESEND, color="link", n_clicks=0),
                    dbc.Button("Confirm", id=ids.CONFIRM, color="primary", n_clicks=0),
                ]),
            ]),
        ]),
    ])


# --- callbacks as plain functions -----------------------------------------------------------
def _service():  # type: ignore[no-untyped-def]
    return current_app.extensions["etrepo"].requests


def _settings() -> Settings:
    return current_app.extensions["etrepo"].settings


def _hostname() -> str:
    return _settings().HOSTNAME


def _client() -> str:
    return request.remote_addr or ""


def submit(n_clicks: int, *values: str | None) -> tuple[Any, ...]:
    """Returns: per field (invalid, message), alert text, alert open, request id, modal open,
    modal text, submit disabled."""
    names = [f[0] for f in FIELDS]
    data = dict(zip(names, values, strict=True))
    invalid = {name: False for name in names}
    messages = {name: "" for name in names}
    alert, request_id, modal_text = "", no_update, no_update
    try:
        view = _service().submit(data, _client())
    except ValidationError as exc:
        for name, message in exc.fields.items():
            if name in invalid:
                invalid[name], messages[name] = True, message
        alert = ""
    except ServiceError as exc:
        alert = exc.message
    else:
        request_id = view.id
        modal_text = (f"We have sent a code to {data['email']}. Enter it here to confirm "
                      "your address. It may take a minute to arrive; look in the spam folder too.")
    per_field = [x for name in names for x in (invalid[name], messages[name])]
    opened = request_id is not no_update
    return (*per_field, alert, bool(alert), request_id, opened, modal_text, opened)


def check_one(name: str, value: str | None) -> tuple[bool, str]:
    """Live feedback when the applicant leaves a field: (invalid, message). An empty field is
    not scolded before the first submit."""
    if not value:
        return False, ""
    _, problem = check_field(name, value)
    return bool(problem), problem or ""


def _check_on_blur(name: str, n_blur: int, value: str | None) -> tuple[bool, str]:
    return check_one(name, value)


def confirm(n_clicks: int, n_submit: int, code: str | None, request_id: str | None
            ) -> tuple[Any, bool, bool, Any]:
    """Returns: code message, modal open, poll disabled, progress panel."""
    if not request_id:
        return no_update, no_update, no_update, no_update
    try:
        view = _service().confirm(request_id, code or "", _client())
    except ServiceError as exc:
        return dbc.Alert(exc.message, color="danger", className="mb-0"), True, True, no_update
    return "", False, False, progress_panel(view)


def change_details(n_clicks: int, request_id: str | None) -> tuple[bool, bool, str, str, None]:
    """Back to the form to correct a detail (a mistyped address). The request just made is
    withdrawn, so its code can no longer make a second account; the applicant submits again.
    Returns: modal open, submit disabled, code message, code, request id."""
    if request_id:
        with contextlib.suppress(ServiceError):  # unknown id: nothing to withdraw
            _service().withdraw(request_id)
    return False, False, "", "", None


def resend(n_clicks: int, request_id: str | None) -> Any:
    if not request_id:
        return no_update
    try:
        _service().resend(request_id, _client())
    except RateLimited as exc:
        return dbc.Alert(exc.message, color="warning", className="mb-0")
    except ServiceError as exc:
        return dbc.Alert(exc.message, color="danger", className="mb-0")
    return dbc.Alert("A new code is on its way. The previous one no longer works.",
                     color="info", className="mb-0")


def poll(n_intervals: int, request_id: str | None) -> tuple[Any, bool]:
    """Returns: progress panel, poll disabled."""
    if not request_id:
        return no_update, True
    try:
        view = _service().get(request_id)
    except ServiceError:
        return no_update, True
    return progress_panel(view), Status(view.status) in FINAL


def progress_panel(view: Any) -> dbc.Alert:
    color = status_color(Status(view.status))
    spinner = [] if Status(view.status) in FINAL else [dbc.Spinner(size="sm",
                                                                    spinner_class_name="me-2")]
    return dbc.Alert(color=color, id=ids.STATUS_ALERT, children=[
        html.Div([*spinner, html.Span(view.description, id=ids.STATUS_TEXT)],
                 **{"data-status": view.status}),
        *([html.Div(["Your username is ", html.Code(view.username, id=ids.USERNAME),
                     ". Log in with ", html.Code(f"ssh {view.username}@{_hostname()}"),
                     "; you will be asked to choose a new password."], className="my-2")]
          if view.username else []),
        *([html.Div("This portal runs with the dry-run provisioner: nothing was created on "
                    "the server.", className="my-2 fw-semibold", id=ids.DRY_RUN)]
          if view.username and _settings().PROVISIONER == "dry-run" else []),
        html.Small(["Status page: ", html.A(f"/requests/{view.id}", href=f"/requests/{view.id}")]),
    ])


# --- wiring ---------------------------------------------------------------------------------
def init_app(server: Flask, settings: Settings) -> Dash:
    dash_app = PortalDash(
        __name__,
        server=server,
        url_base_pathname="/request/",
        external_stylesheets=["/static/bootstrap.min.css"],
        title=f"Request an account · {settings.SITE_NAME}",
        serve_locally=True,
        update_title=None,
    )
    dash_app.layout = lambda: layout(settings)
    names = [f[0] for f in FIELDS]

    dash_app.callback(
        [o for n in names for o in (Output(ids.field(n), "invalid"),
                                    Output(ids.feedback(n), "children"))]
        + [Output(ids.FORM_ALERT, "children"), Output(ids.FORM_ALERT, "is_open"),
           Output(ids.REQUEST_ID, "data"), Output(ids.MODAL, "is_open"),
           Output(ids.MODAL_TEXT, "children"), Output(ids.SUBMIT, "disabled")],
        Input(ids.SUBMIT, "n_clicks"),
        [State(ids.field(n), "value") for n in names],
        prevent_initial_call=True,
    )(submit)
    for name in names:
        dash_app.callback(
            Output(ids.field(name), "invalid", allow_duplicate=True),
            Output(ids.feedback(name), "children", allow_duplicate=True),
            Input(ids.field(name), "n_blur"),
            State(ids.field(name), "value"),
            prevent_initial_call=True,
        )(functools.partial(_check_on_blur, name))
    dash_app.callback(
        Output(ids.CODE_MESSAGE, "children"),
        Output(ids.MODAL, "is_open", allow_duplicate=True),
        Output(ids.POLL, "disabled"),
        Output(ids.PROGRESS, "children"),
        Input(ids.CONFIRM, "n_clicks"),
        Input(ids.CODE, "n_submit"),
        State(ids.CODE, "value"),
        State(ids.REQUEST_ID, "data"),
        prevent_initial_call=True,
    )(confirm)
    dash_app.callback(
        Output(ids.MODAL, "is_open", allow_duplicate=True),
        Output(ids.SUBMIT, "disabled", allow_duplicate=True),
        Output(ids.CODE_MESSAGE, "children", allow_duplicate=True),
        Output(ids.CODE, "value"),
        Output(ids.REQUEST_ID, "data", allow_duplicate=True),
        Input(ids.CHANGE_DETAILS, "n_clicks"),
        State(ids.REQUEST_ID, "data"),
        prevent_initial_call=True,
    )(change_details)
    dash_app.callback(
        Output(ids.CODE_MESSAGE, "children", allow_duplicate=True),
        Input(ids.RESEND, "n_clicks"),
        State(ids.REQUEST_ID, "data"),
        prevent_initial_call=True,
    )(resend)
    dash_app.callback(
        Output(ids.PROGRESS, "children", allow_duplicate=True),
        Output(ids.POLL, "disabled", allow_duplicate=True),
        Input(ids.POLL, "n_intervals"),
        State(ids.REQUEST_ID, "data"),
        prevent_initial_call=True,
    )(poll)
    guard(server, dash_app)
    return dash_app
