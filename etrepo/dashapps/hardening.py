"""Hardening for Dash apps on the portal's Flask server.

Dash trusts the bodies of its callback requests, answers any path under its prefix with the
page, serves its hot-reload endpoint in production and tells visitors the Python version.
Every Dash app of the portal is built with :class:`PortalDash` and passed to :func:`guard`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from dash import Dash
from dash.exceptions import DependencyException
from flask import Flask, abort, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)


# --- the callback endpoint's gate ------------------------------------------------------------
# The type of every property a callback reads (null is always allowed: a value not set yet).
VALUE_TYPES: dict[str, type] = {
    "n_clicks": int, "n_blur": int, "n_submit": int, "n_intervals": int,
    "value": str, "data": str,
}


def callback_problem(callback_map: Mapping[str, Any], body: Any) -> str | None:
    """What is wrong with the body of a ``_dash-update-component`` request, or None when it
    names one of the app's callbacks with exactly the outputs, inputs and states that callback
    declares, each value of its property's type. Dash itself trusts the body: anything else
    would end in a KeyError or TypeError inside Dash or a callback, that is a 500."""
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        return "There is no such callback."
    spec = callback_map[output]
    declared = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
    outputs = body.get("outputs")
    given = outputs if isinstance(spec["output"], list) else [outputs]
    if not isinstance(given, list) or [_dependency(o, duplicate_suffix=True) for o in given] \
            != [(o.component_id, o.component_property) for o in declared]:
        return "'outputs' does not match the callback."
    for key in ("inputs", "state"):
        items = body.get(key, [])
        if not isinstance(items, list) or [_dependency(i) for i in items] \
                != [(d["id"], d["property"]) for d in spec[key]]:
            return f"'{key}' does not match the callback."
        for item in items:
            value, kind = item.get("value"), VALUE_TYPES[item["property"]]
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                return f"{item['id']}.{item['property']} must be {kind.__name__} or null."
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "'changedPropIds' must be a list of strings."
    return None


def _dependency(item: Any, duplicate_suffix: bool = False) -> tuple[Any, Any] | None:
    """(id, property) of one output, input or state in a callback request."""
    if not isinstance(item, dict):
        return None
    prop = item.get("property")
    if duplicate_suffix and isinstance(prop, str):  # "children@<hash>" for allow_duplicate
        prop = prop.partition("@")[0]
    return item.get("id"), prop


def guard(server: Flask, dash_app: Dash) -> None:
    """Dash answers any GET under its prefix with the form, serves its hot-reload endpoint in
    production too, and trusts callback bodies. Here: 404 for paths Dash does not serve on its
    own, 404 for ``_reload-hash`` unless hot reload is on, 400 for a malformed callback."""
    prefix = dash_app.config.routes_pathname_prefix
    catchall, reload_hash = prefix + "<path:path>", prefix + "_reload-hash"
    update = prefix + "_dash-update-component"
    suites = prefix + "_dash-component-suites/<string:package_name>/<path:fingerprinted_path>"
    missing = {catchall, reload_hash, update, suites} - set(server.view_functions)
    if missing:  # a Dash upgrade renamed its routes: say so at start, not with a wide-open form
        raise RuntimeError(f"Dash routes not found: {sorted(missing)}")
    server.view_functions[suites] = _asset_or_404(server.view_functions[suites])
    for spec in dash_app.callback_map.values():
        for dependency in spec["inputs"] + spec["state"]:
            if dependency["property"] not in VALUE_TYPES:
                raise RuntimeError(f"no value type for {dependency}: add it to VALUE_TYPES")

    def endpoint() -> str | None:
        if request.endpoint is not None:
            return request.endpoint
        if isinstance(request.routing_exception, MethodNotAllowed):
            # A POST to /request/anything fails on the catch-all's methods: still a 404.
            try:
                return server.url_map.bind_to_environ(request.environ).match(method="GET")[0]
            except HTTPException:
                return None
        return None

    @server.before_request
    def guard_dash_routes() -> None:
        if not request.path.startswith(prefix):
            return
        name = endpoint()
        if name == catchall or (name == reload_hash and not _hot_reload(dash_app)):
            abort(404)
        if name == update and request.method == "POST":
            try:
                body = request.get_json(silent=True)  # 413 itself when the body is too large
            except RecursionError:  # nested deeper than the parser goes
                body = None
            problem = callback_problem(dash_app.callback_map, body)
            if problem:
                log.warning("refused a form callback from %s: %s", request.remote_addr, problem)
                abort(400, description=problem)


def _asset_or_404(serve: Callable[..., Any]) -> Callable[..., Any]:
    """Dash raises DependencyException for a path it did not register and FileNotFoundError
    for one it registered but does not ship (some source maps): both are a 404, not a 500."""

    @functools.wraps(serve)
    def serve_or_404(**kwargs: Any) -> Any:
        try:
            return serve(**kwargs)
        except (DependencyException, FileNotFoundError) as exc:
            log.info("no such Dash asset: %r (%s)", request.path, type(exc).__name__)
            abort(404)

    return serve_or_404


def _hot_reload(dash_app: Dash) -> bool:
    return bool(getattr(dash_app, "_dev_tools", {}).get("hot_reload"))


class PortalDash(Dash):
    """Dash, less what the page tells every visitor about the server's software."""

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        for key in ("python_version", "dash_version", "plotly_version", "ddk_version"):
            config.pop(key, None)
        return config
