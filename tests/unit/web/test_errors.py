"""Error answers of the whole site: status, shape, headers, and what reaches the log."""

from __future__ import annotations


def test_405_says_which_methods_are_allowed_in_json(client):
    response = client.delete("/api/v1/requests")
    assert response.status_code == 405
    assert response.is_json and response.get_json()["error"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"POST", "OPTIONS"}


def test_405_says_which_methods_are_allowed_in_html(client):
    response = client.post("/")
    assert response.status_code == 405
    assert "text/html" in response.content_type
    assert "This method is not allowed here." in response.get_data(as_text=True)
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD",
                                                                        "OPTIONS"}
    assert response.headers["X-Frame-Options"] == "DENY"  # still the site's headers
