"""The Dash request form, without a browser: its layout, its endpoints and its callbacks."""

from __future__ import annotations

import logging
import pkgutil
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from etrepo.dashapps import ids, request_form


def walk(component: Any) -> list[Any]:
    """The component and all components below it."""
    found = [component]
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            found += walk(child)
    elif children is not None and hasattr(children, "to_plotly_json"):
        found += walk(children)
    return found


def by_id(settings, component_id: str) -> Any:
    (found,) = [c for c in walk(request_form.layout(settings))
                if getattr(c, "id", None) == component_id]
    return found


# --- inputs ------------------------------------------------------------------------------------
def test_no_input_cuts_what_is_typed_or_pasted(settings):
    """The server says "at most N characters"; a maxLength would cut a pasted value silently."""
    inputs = [c for c in walk(request_form.layout(settings))
              if type(c).__name__ == "Input"]
    assert {c.id for c in inputs} >= {ids.field(name) for name, *_ in request_form.FIELDS}
    assert {c.id for c in inputs} >= {ids.CODE}
    for component in inputs:
        assert getattr(component, "maxLength", None) is None, component.id


# --- Dash's endpoints: junk is a 4xx and one log line at most ------------------------------------
FORM = "/request/"
UPDATE = FORM + "_dash-update-component"


def errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def callback_body(client, input_id: str, values: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The body the Dash renderer posts when ``input_id`` is clicked or left (built from
    /request/_dash-dependencies, as the renderer does); ``values`` by "id.property"."""
    values = {f"{input_id}.n_clicks": 1, f"{input_id}.n_blur": 1, **(values or {})}
    (dependency,) = [d for d in client.get(FORM + "_dash-dependencies").get_json()
                     if any(i["id"] == input_id for i in d["inputs"])]
    output = dependency["output"]

    def ref(text: str) -> dict[str, str]:
        component_id, prop = text.split(".", 1)
        return {"id": component_id, "property": prop}

    def given(items: list[dict[str, str]]) -> list[dict[str, Any]]:
        return [{**d, **({"value": values[key]} if (key := f"{d['id']}.{d['property']}")
                          in values else {})} for d in items]

    return {
        "output": output,
        "outputs": ([ref(o) for o in output.strip(".").split("...")]
                    if output.startswith("..") else ref(output)),
        "inputs": given(dependency["inputs"]),
        "changedPropIds": [f"{input_id}.{dependency['inputs'][0]['property']}"],
        "state": given(dependency["state"]),
    }


def blur_body(client, value: Any = "Lopez") -> dict[str, Any]:
    return callback_body(client, ids.field("last_name"), {ids.field("last_name") + ".value": value})


@pytest.mark.parametrize("path", [
    "_dash-component-suites/dash/deps/nope.js",
    "_dash-component-suites/etrepo/config.py",
    "_dash-component-suites/etrepo/accounts/__init__.py",
    "_dash-component-suites/dash/dash.py",
])
def test_unknown_dash_assets_are_404_and_no_traceback(client, caplog, path):
    caplog.set_level(logging.INFO)
    response = client.get(FORM + path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert errors_logged(caplog) == []


def test_a_registered_asset_missing_on_disk_is_404_and_no_traceback(client, caplog,
                                                                     monkeypatch):
    """Dash registers source maps it does not always ship (dash_renderer.min.js.map): the
    browser's developer tools ask for them."""
    script = re.findall(r'src="(/request/_dash-component-suites/[^"]+)"',
                        client.get(FORM).get_data(as_text=True))[0]

    def not_shipped(package: str, resource: str) -> bytes:
        raise FileNotFoundError(resource)

    monkeypatch.setattr(pkgutil, "get_data", not_shipped)
    caplog.set_level(logging.INFO)
    response = client.get(script)
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert errors_logged(caplog) == []


def test_the_form_and_its_own_assets_are_still_served(client):
    page = client.get(FORM)
    assert page.status_code == 200 and 'id="react-entry-point"' in page.get_data(as_text=True)
    scripts = re.findall(r'src="(/request/_dash-component-suites/[^"]+)"',
                         page.get_data(as_text=True))
    assert scripts
    for src in scripts:
        assert client.get(src).status_code == 200, src
    for path in ("_dash-layout", "_dash-dependencies", "_favicon.ico"):
        assert client.get(FORM + path).status_code == 200, path


def test_a_well_formed_callback_runs(client, caplog):
    response = client.post(UPDATE, json=blur_body(client, "Ana:Lopez"))
    assert response.status_code == 200
    assert "may contain letters" in response.get_data(as_text=True)
    assert errors_logged(caplog) == []


MALFORMED: list[tuple[str, Any]] = [
    ("empty object", {}),
    ("a list", []),
    ("a string", "output"),
    ("null", None),
    ("unknown output", {"output": "nope.children", "inputs": [], "state": []}),
    ("output not a string", {"output": ["x"]}),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_callback_bodies_are_400(client, caplog, body):
    caplog.set_level(logging.INFO)
    response = client.post(UPDATE, json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "bad_request"
    assert errors_logged(caplog) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


BROKEN: dict[str, Callable[[dict[str, Any]], Any]] = {
    "inputs not a list": lambda b: b.update(inputs="x"),
    "state not a list": lambda b: b.update(state={"id": "x"}),
    "state missing": lambda b: b.pop("state"),
    "inputs empty": lambda b: b.update(inputs=[]),
    "input not an object": lambda b: b.update(inputs=[5]),
    "input of another component": lambda b: b["inputs"][0].update(id=ids.field("email")),
    "input of another property": lambda b: b["inputs"][0].update(property="n_clicks"),
    "one state too many": lambda b: b["state"].append(dict(b["state"][0])),
    "n_blur not a number": lambda b: b["inputs"][0].update(value="1"),
    "n_blur a boolean": lambda b: b["inputs"][0].update(value=True),
    "value not text": lambda b: b["state"][0].update(value={"$gt": ""}),
    "value a list": lambda b: b["state"][0].update(value=["x"]),
    "outputs missing": lambda b: b.pop("outputs"),
    "outputs not a list": lambda b: b.update(outputs={"id": "x", "property": "y"}),
    "outputs of another component": lambda b: b["outputs"][0].update(id=ids.MODAL),
    "outputs cut short": lambda b: b["outputs"].pop(),
    "changedPropIds not a list": lambda b: b.update(changedPropIds=5),
    "changedPropIds of objects": lambda b: b.update(changedPropIds=[{}]),
}


@pytest.mark.parametrize("breakage", list(BROKEN.values()), ids=list(BROKEN))
def test_callback_bodies_that_do_not_match_the_callback_are_400(client, caplog, breakage):
    body = blur_body(client)
    breakage(body)
    caplog.set_level(logging.INFO)
    response = client.post(UPDATE, json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "bad_request"
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("data", [b"{", b"x" * 10, b"[" * 5_000, "\udcff".encode("utf-8",
                                                                              "surrogatepass")])
def test_callback_bodies_that_are_not_json_are_400(client, caplog, data):
    caplog.set_level(logging.INFO)
    response = client.post(UPDATE, data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"
    assert errors_logged(caplog) == []


def test_the_single_output_callback_is_checked_too(client, caplog):
    body = callback_body(client, ids.RESEND)
    assert isinstance(body["outputs"], dict)  # one output: an object, not a list
    assert client.post(UPDATE, json=body).status_code == 200
    body["outputs"] = [body["outputs"]]
    assert client.post(UPDATE, json=body).status_code == 400
    assert errors_logged(caplog) == []


def test_an_exception_in_our_callback_is_still_a_logged_500(client, caplog, monkeypatch):
    def broken(name: str, value: str) -> tuple[str, str | None]:
        raise RuntimeError("the validation broke")

    monkeypatch.setattr(request_form, "check_field", broken)
    response = client.post(UPDATE, json=blur_body(client))
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"
    (record,) = errors_logged(caplog)
    assert record.levelno == logging.ERROR and record.exc_info
    assert "the validation broke" in str(record.exc_info[1])


# --- only Dash's own routes under /request/ ------------------------------------------------
@pytest.mark.parametrize("method, path", [
    ("GET", "anything"), ("GET", "a/b/c"), ("HEAD", "anything"), ("POST", "anything"),
    ("PUT", "x"), ("GET", "_dash-update-component"), ("GET", "_reload-hash"),
    ("POST", "_reload-hash"), ("GET", "_dash-component-suites"),
])
def test_paths_under_the_form_that_dash_does_not_serve_are_404(client, method, path):
    response = client.open(FORM + path, method=method)
    assert response.status_code == 404
    assert "react-entry-point" not in response.get_data(as_text=True)


def test_reload_hash_answers_when_hot_reload_is_on(settings, services):
    # Dash's development server turns hot reload on (`debug=True`); the portal never does.
    server = Flask(__name__)
    server.extensions["etrepo"] = services
    dash_app = request_form.init_app(server, settings)
    assert server.test_client().get(FORM + "_reload-hash").status_code == 404
    dash_app._dev_tools.hot_reload = True
    assert server.test_client().get(FORM + "_reload-hash").status_code == 200


def test_the_form_page_does_not_tell_visitors_the_python_version(client):
    import sys

    page = client.get("/request/").get_data(as_text=True)
    assert sys.version.split()[0] not in page and "python_version" not in page
