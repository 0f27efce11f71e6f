"""The operator page without a browser (TestClient): sign-in and roles, the queue with its
filters and pages, an item's page, reviews posted through the form, and refusals (409, bad form,
another site's post) shown as pages rather than JSON or tracebacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import KEYS, encode, headers, textured_photo

from inspection.service import ui
from inspection.service.ui_auth import session_token

CORRECTION = {"decision": "correct", "label_condition": "C", "label_damage": ["scratch"],
              "label_accessories": ["charger", "cable", "case", "manual"],
              "disposition": "refurbish", "note": "scratch, not a crack"}


def submit(client: Any, return_id: str = "RMA-1", role: str = "station", **fields: str) -> str:
    answer = client.post("/v1/inspections", headers=headers(role),
                         files=[("photos", ("tray.jpg", encode(textured_photo()), "image/jpeg"))],
                         data={"return_id": return_id, "sku": "PHONE-X", "category": "phone", **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def sign_in(client: Any, role: str = "operator") -> Any:
    return client.post("/ui/login", data={"api_key": KEYS[role], "next": "/ui/"}, follow_redirects=False)


def stored(client: Any, inspection_id: str) -> dict[str, Any]:
    return client.get(f"/v1/inspections/{inspection_id}", headers=headers("operator")).json()


def test_signed_out_gets_the_login_page_with_401(client: Any) -> None:
    page = client.get("/ui/")
    assert page.status_code == 401
    assert "text/html" in page.headers["content-type"]
    assert '<label for="api_key">Operator API key</label>' in page.text
    assert 'name="next" value="/ui/"' in page.text  # back to where the operator was going
    assert client.get("/ui/items/whatever").status_code == 401
    assert client.get("/ui/items/whatever/photos/0").status_code == 401


def test_sign_in_sets_a_strict_httponly_cookie_scoped_to_ui(client: Any) -> None:
    answer = sign_in(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{ui.COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert attribute in cookie
    assert client.get("/ui/").status_code == 200


@pytest.mark.parametrize(("key", "status", "message"), [
    ("not-a-key-at-all", 401, "Unknown API key."),
    (KEYS["station"], 403, "A station key cannot work the review queue"),
    (KEYS["customer"], 403, "A customer key cannot work the review queue"),
])
def test_sign_in_refuses_unknown_and_non_operator_keys(client: Any, key: str, status: int,
                                                       message: str) -> None:
    answer = client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
    assert answer.status_code == status
    assert message in answer.text
    assert "set-cookie" not in answer.headers


def test_admin_may_work_the_queue_and_sign_out_removes_the_cookie(client: Any) -> None:
    assert sign_in(client, "admin").status_code == 303
    assert "Signed in as <strong>root</strong>" in client.get("/ui/").text
    out = client.post("/ui/logout", follow_redirects=False)
    assert out.status_code == 303
    assert f'{ui.COOKIE}=""' in out.headers["set-cookie"]
    assert client.get("/ui/").status_code == 401


def test_login_redirect_stays_on_the_ui(client: Any) -> None:
    answer = client.post("/ui/login", data={"api_key": KEYS["operator"], "next": "https://evil.example/"},
                         follow_redirects=False)
    assert answer.headers["location"] == "/ui/"


def test_queue_lists_flagged_items_oldest_first_with_security_headers(client: Any) -> None:
    first, second = submit(client, "RMA-1"), submit(client, "RMA-2")
    sign_in(client)
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "(2)" in page.text
    assert page.text.index(f"/ui/items/{first}") < page.text.index(f"/ui/items/{second}")
    assert "damage found: crack" in page.text and "accessory missing: charger" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("query", "shown"), [
    ("flag=damage_found", True),
    ("flag=item_mismatch", False),
    ("source=station", True),
    ("source=customer", False),
    ("sku=PHONE-X", True),
    ("sku=OTHER", False),
])
def test_queue_filters(client: Any, query: str, shown: bool) -> None:
    inspection_id = submit(client)
    sign_in(client)
    page = client.get(f"/ui/?{query}")
    assert page.status_code == 200
    assert (f"/ui/items/{inspection_id}?{query}" in page.text) is shown  # filters ride along


def test_queue_pages(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui, "PAGE_SIZE", 2)
    ids = [submit(client, f"RMA-{n}") for n in range(3)]
    sign_in(client)
    first = client.get("/ui/").text
    assert ids[0] in first and ids[1] in first and ids[2] not in first
    assert 'href="/ui/?offset=2" rel="next"' in first
    second = client.get("/ui/?offset=2").text
    assert ids[2] in second and ids[0] not in second
    assert 'href="/ui/?offset=0" rel="prev"' in second


def test_item_page_shows_photos_heatmaps_reasons_and_the_form(client: Any) -> None:
    inspection_id = submit(client)
    sign_in(client)
    page = client.get(f"/ui/items/{inspection_id}")
    assert page.status_code == 200
    base = f"/ui/items/{inspection_id}/photos/0"
    assert f'src="{base}"' in page.text
    assert f'src="{base}/heatmap?label=crack"' in page.text
    assert 'data-overlay="crack" aria-pressed="true"' in page.text
    assert "crack found with probability 0.99" in page.text
    assert "charger is part of the phone kit" in page.text
    assert 'name="label_condition" value="D" checked' in page.text  # starts from the model's answer
    assert 'name="label_damage" value="crack" checked' in page.text
    assert 'name="label_accessories" value="charger" >' in page.text  # missing: unticked
    photo = client.get(base)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    heat = client.get(f"{base}/heatmap?label=crack")
    assert heat.status_code == 200 and heat.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_next_item_follows_the_queue_and_wraps(client: Any) -> None:
    ids = [submit(client, f"RMA-{n}") for n in range(3)]
    sign_in(client)
    assert f'href="/ui/items/{ids[1]}" data-shortcut="next"' in client.get(f"/ui/items/{ids[0]}").text
    assert f'href="/ui/items/{ids[0]}" data-shortcut="next"' in client.get(f"/ui/items/{ids[2]}").text


def test_correction_posted_through_the_form_is_stored_and_leaves_the_queue(client: Any) -> None:
    inspection_id, following = submit(client, "RMA-1"), submit(client, "RMA-2")
    sign_in(client)
    answer = client.post(f"/ui/items/{inspection_id}/review", data=CORRECTION, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/items/{following}?saved={inspection_id}"
    assert "Review of return RMA-1 saved." in client.get(answer.headers["location"]).text
    review = stored(client, inspection_id)["review"]
    assert review["decision"] == "correct" and review["reviewer"] == "olga"
    assert review["labels"] == {"condition": ["C"], "damage": ["scratch"],
                                "accessories": ["charger", "cable", "case", "manual"]}
    assert review["disposition"] == "refurbish" and review["note"] == "scratch, not a crack"
    queue = client.get("/v1/review-queue", headers=headers("operator")).json()
    assert [item["id"] for item in queue["items"]] == [following]


def test_confirm_keeps_the_models_labels_and_disposition(client: Any) -> None:
    inspection_id = submit(client)
    sign_in(client)
    answer = client.post(f"/ui/items/{inspection_id}/review", data={"decision": "confirm"},
                         follow_redirects=False)
    assert answer.headers["location"] == f"/ui/?saved={inspection_id}"  # the queue is empty now
    review = stored(client, inspection_id)["review"]
    assert review["decision"] == "confirm" and review["labels"] == {}
    assert review["disposition"] == "liquidate"


def test_second_review_is_a_409_page_not_a_crash(client: Any) -> None:
    inspection_id = submit(client)
    sign_in(client)
    client.post(f"/ui/items/{inspection_id}/review", data={"decision": "confirm"})
    again = client.post(f"/ui/items/{inspection_id}/review", data=CORRECTION, follow_redirects=False)
    assert again.status_code == 409
    assert "text/html" in again.headers["content-type"]
    assert 'role="alert"' in again.text and "already reviewed by olga" in again.text
    assert stored(client, inspection_id)["review"]["decision"] == "confirm"  # unchanged


@pytest.mark.parametrize(("fields", "message"), [
    ({**CORRECTION, "label_condition": []}, "choose exactly one condition label"),
    ({**CORRECTION, "label_damage": ["melted"]}, "unknown damage label"),
    ({**CORRECTION, "decision": "maybe"}, "choose confirm or correct"),
    ({**CORRECTION, "note": "x" * 2001}, "at most 2000 characters"),
])
def test_a_bad_form_is_shown_back_and_nothing_is_stored(client: Any, fields: dict[str, Any],
                                                        message: str) -> None:
    inspection_id = submit(client)
    sign_in(client)
    answer = client.post(f"/ui/items/{inspection_id}/review", data=fields, follow_redirects=False)
    assert answer.status_code == 422
    assert message in answer.text
    assert stored(client, inspection_id)["review"] is None


def test_a_post_from_another_site_is_refused(client: Any) -> None:
    inspection_id = submit(client)
    sign_in(client)
    answer = client.post(f"/ui/items/{inspection_id}/review", data={"decision": "confirm"},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert stored(client, inspection_id)["review"] is None


def test_unknown_item_is_a_404_page(client: Any) -> None:
    sign_in(client)
    page = client.get("/ui/items/does-not-exist")
    assert page.status_code == 404
    assert "no inspection &#39;does-not-exist&#39;" in page.text  # escaped, as all text is
    assert "text/html" in page.headers["content-type"]


def test_development_mode_needs_no_sign_in(make_app: Callable[..., Any], cracked_bundle: Path) -> None:
    client = make_app(cracked_bundle, api_keys="", dev_mode=True)
    inspection_id = submit(client)
    page = client.get("/ui/")
    assert page.status_code == 200 and inspection_id in page.text
    assert "development mode" in page.text
    assert client.get("/ui/login", follow_redirects=False).status_code == 303
    answer = client.post(f"/ui/items/{inspection_id}/review", data={"decision": "confirm"},
                         follow_redirects=False)
    assert answer.status_code == 303
    assert client.get(f"/v1/inspections/{inspection_id}").json()["review"]["reviewer"] == "dev"


def test_no_keys_outside_development_mode_says_so(make_app: Callable[..., Any],
                                                  cracked_bundle: Path) -> None:
    client = make_app(cracked_bundle, api_keys="", dev_mode=False)
    page = client.get("/ui/")
    assert page.status_code == 401
    assert "no API keys are configured on this server" in page.text


def test_static_files_are_served_and_nothing_else(client: Any) -> None:
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/ui/static/ui.js").status_code == 200
    assert client.get("/ui/static/..%2Fui.py").status_code == 404
    assert client.get("/ui/static/item.html").status_code == 404


def test_a_stale_or_non_operator_cookie_asks_to_sign_in_again(client: Any) -> None:
    client.cookies.set(ui.COOKIE, "revoked-key-123", domain="testserver.local", path="/ui")
    page = client.get("/ui/")
    assert page.status_code == 401 and "no longer valid" in page.text
    client.cookies.clear()
    state = client.app.state.service
    client.cookies.set(ui.COOKIE, session_token(state, KEYS["station"]), domain="testserver.local",
                       path="/ui")
    page = client.get("/ui/")
    assert page.status_code == 403 and "A station key cannot work the review queue" in page.text


def test_the_cookie_is_a_signed_session_not_the_key(client: Any) -> None:
    """Issue 9, item 7: a stolen cookie does not reveal the API key, cannot be forged, and
    ends when it expires."""
    answer = sign_in(client)
    cookie = client.cookies.get(ui.COOKIE)
    assert KEYS["operator"] not in answer.headers["set-cookie"] and KEYS["operator"] not in cookie
    assert client.get("/ui/").status_code == 200
    fingerprint, expires, signature = cookie.split(".")
    for forged in (f"{fingerprint}.{int(expires) + 10**6}.{signature}",  # extended by hand
                   f"{fingerprint}.{expires}.{signature[:-2]}AA",  # signature changed
                   KEYS["operator"]):  # the raw key, as the old cookie held it
        client.cookies.clear()
        client.cookies.set(ui.COOKIE, forged, domain="testserver.local", path="/ui")
        assert client.get("/ui/").status_code == 401, forged
    client.cookies.clear()
    state = client.app.state.service
    expired = session_token(state, KEYS["operator"], now=time.time() - 13 * 3600)
    client.cookies.set(ui.COOKIE, expired, domain="testserver.local", path="/ui")
    assert client.get("/ui/").status_code == 401
