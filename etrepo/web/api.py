"""JSON API ``/api/v1``. Its OpenAPI 3 document is built from the routes and models below."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import RequestEntityTooLarge

from etrepo import __version__
from etrepo.accounts.errors import RateLimited, ServiceError
from etrepo.accounts.lifecycle import Status
from etrepo.accounts.service import RequestView
from etrepo.accounts.validation import (
    EMAIL_MAX,
    GITHUB_MAX,
    INSTITUTION_MAX,
    NAME_MAX,
    ValidationError,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


# --- schemas (documentation and output shape; the domain does the validating) -----------------
class RequestIn(BaseModel):
    model_config = ConfigDict(title="NewRequest", extra="forbid")
    first_name: str = Field(max_length=NAME_MAX, examples=["Aurélien"])
    last_name: str = Field(max_length=NAME_MAX, examples=["Lefèvre"])
    institution: str = Field(max_length=INSTITUTION_MAX, examples=["INFN Pisa"])
    email: str = Field(max_length=EMAIL_MAX, examples=["a.lefevre@example.org"])
    github: str | None = Field(default=None, max_length=GITHUB_MAX, examples=["alefevre"])


class ConfirmIn(BaseModel):
    model_config = ConfigDict(title="Confirmation", extra="forbid")
    code: str = Field(max_length=64, description="The code from the confirmation mail.")


class RequestOut(BaseModel):
    model_config = ConfigDict(title="Request")
    id: str = Field(description="Unguessable id: keep it, it is the way back to the request.")
    status: Status
    description: str = Field(description="The status in words, for the applicant.")
    status_url: str
    username: str | None = Field(default=None, description="Set once the account is active.")
    failure_reason: str | None = Field(default=None, description="Set when status is failed.")
    created_at: dt.datetime
    code_expires_at: dt.datetime | None = None
    resend_available_at: dt.datetime | None = None


class ErrorOut(BaseModel):
    model_config = ConfigDict(title="Error")
    error: str = Field(description="Machine-readable kind, e.g. validation_failed.")
    message: str = Field(description="What went wrong, for a person.")
    fields: dict[str, str] | None = Field(default=None, description="Per-field problems.")
    retry_after: int | None = Field(default=None, description="Seconds to wait (429).")


# --- routes, recorded for the OpenAPI document --------------------------------------------
@dataclass(frozen=True)
class RouteDoc:
    path: str
    method: str
    summary: str
    operation_id: str
    body: type[BaseModel] | None
    responses: dict[int, tuple[str, type[BaseModel] | None]]


ROUTES: list[RouteDoc] = []

COMMON_ERRORS = {
    400: ("Malformed request (not a JSON object)", ErrorOut),
    413: ("Request body too large", ErrorOut),
}


def api_route(path: str, method: str, summary: str, *, body: type[BaseModel] | None = None,
              responses: dict[int, tuple[str, type[BaseModel] | None]]) -> Callable:
    def decorate(view: Callable) -> Callable:
        ROUTES.append(RouteDoc(path, method, summary, view.__name__, body,
                               {**responses, **(COMMON_ERRORS if body else {})}))
        bp.add_url_rule(path, view_func=view, methods=[method])
        return view

    return decorate


def _services():  # type: ignore[no-untyped-def]
    return current_app.extensions["etrepo"]


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)  # raises 413 itself when the body is too large
    except RecursionError:  # '[[[[...' nested deeper than the parser goes: not a 500
        data = None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    unknown = set(data) - set(model.model_fields)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    return data


class BadRequest(ServiceError):
    http_status = 400


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment is not None else None


def _out(view: RequestView) -> dict[str, Any]:
    return RequestOut(
        id=view.id,
        status=Status(view.status),
        description=view.description,
        status_url=_services().settings.BASE_URL.rstrip("/")
        + url_for("pages.request_status", request_id=view.id),
        username=view.username,
        failure_reason=view.failure_reason,
        created_at=_utc(view.created_at),
        code_expires_at=_utc(view.code_expires_at),
        resend_available_at=_utc(view.resend_available_at),
    ).model_dump(mode="json")


def client_addr() -> str:
    return request.remote_addr or ""


@api_route("/requests", "POST", "Ask for an account; a code is mailed to the address.",
           body=RequestIn,
           responses={201: ("Request stored, confirmation mail queued", RequestOut),
                      409: ("The address already has an account or a confirmed request",
                            ErrorOut),
                      422: ("Invalid fields", ErrorOut), 429: ("Too many requests", ErrorOut)})
def create_request() -> tuple[Response, int]:
    view = _services().requests.submit(_json_body(RequestIn), client_addr())
    return jsonify(_out(view)), 201


@api_route("/requests/<request_id>", "GET", "Where a request stands.",
           responses={200: ("The request", RequestOut), 404: ("No such request", ErrorOut)})
def get_request(request_id: str) -> Response:
    return jsonify(_out(_services().requests.get(request_id)))


@api_route("/requests/<request_id>/confirm", "POST", "Confirm the email address with the code.",
           body=ConfirmIn,
           responses={200: ("Confirmed (or already confirmed)", RequestOut),
                      400: ("Wrong code; the message says how many tries are left", ErrorOut),
                      404: ("No such request", ErrorOut),
                      410: ("The code or the request is dead: ask for a new code", ErrorOut),
                      422: ("Invalid fields", ErrorOut), 429: ("Too many tries", ErrorOut)})
def confirm_request(request_id: str) -> Response:
    code = _json_body(ConfirmIn).get("code")
    if not isinstance(code, str):
        raise ValidationError({"code": "Must be text."})
    if len(code) > 64:
        raise ValidationError({"code": "Too long: at most 64 characters."})
    return jsonify(_out(_services().requests.confirm(request_id, code, client_addr())))


@api_route("/requests/<request_id>/resend", "POST", "Mail a new code (the old one dies).",
           responses={200: ("A new code is on its way", RequestOut),
                      404: ("No such request", ErrorOut),
                      409: ("Already confirmed", ErrorOut),
                      410: ("The request expired", ErrorOut),
                      429: ("Too soon; see retry_after", ErrorOut)})
def resend_code(request_id: str) -> Response:
    return jsonify(_out(_services().requests.resend(request_id, client_addr())))


@bp.before_request
def refuse_large_bodies() -> None:
    """413 for any body over the limit, whatever its type and whether the route reads it."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(build_openapi())


# --- errors ---------------------------------------------------------------------------------
def error_response(status: int, kind: str, message: str, **extra: Any) -> Response:
    body = ErrorOut(error=kind, message=message, **extra).model_dump(exclude_none=True)
    response = jsonify(body)
    response.status_code = status
    if extra.get("retry_after"):
        response.headers["Retry-After"] = str(extra["retry_after"])
    return response


def _kind(exc: ServiceError) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError) -> Response:
    if isinstance(exc, ValidationError):
        return error_response(422, "validation_failed", exc.message, fields=exc.fields)
    if isinstance(exc, RateLimited):
        return error_response(429, "rate_limited", exc.message, retry_after=exc.retry_after)
    return error_response(exc.http_status, _kind(exc), exc.message)


# --- OpenAPI ----------------------------------------------------------------------------------
def build_openapi() -> dict[str, Any]:
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        title = schema.get("title", model.__name__)
        schemas[title] = schema
        return {"$ref": f"#/components/schemas/{title}"}

    paths: dict[str, Any] = {}
    for route in ROUTES:
        path = bp.url_prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.path)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.operation_id,
            "responses": {
                str(code): {"description": text,
                            **({"content": {"application/json": {"schema": ref(model)}}}
                               if model else {})}
                for code, (text, model) in sorted(route.responses.items())
            },
        }
        params = re.findall(r"<(?:\w+:)?(\w+)>", route.path)
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in params
            ]
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(route.body)}},
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "ETRepo Portal API", "version": __version__,
                 "description": "Account requests for the research server."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
