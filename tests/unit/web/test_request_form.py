"""The Dash request form, without a browser: its layout, its endpoints and its callbacks."""

from __future__ import annotations

from typing import Any

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
