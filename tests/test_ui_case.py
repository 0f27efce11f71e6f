"""The return's case on the operator page (TestClient): the timeline, the comparison pair side
by side with its heatmaps, the evidence links, and the refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from conftest import API_KEYS, submit
from test_case_service import CASE_THRESHOLDS, photo
from test_ui_pages import sign_in

from inspection.service.ui_case import pair_views


@pytest.fixture(scope="module")
def case_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("case"), biases=CRACKED_ITEM, version="1.0.0",
                        thresholds=CASE_THRESHOLDS)


@pytest.fixture
def app(make_app: Callable[..., Any], case_bundle: Path) -> Any:
    return make_app(case_bundle, api_keys=API_KEYS)


def test_case_page_shows_the_timeline_and_the_flagged_pair(app: Any) -> None:
    customer = submit(app, [photo(1)], role="customer", return_id="RMA-77", source="customer").json()
    station = submit(app, [photo(5)], return_id="RMA-77").json()
    sign_in(app)
    page = app.get("/ui/returns/RMA-77")
    assert page.status_code == 200 and "Return RMA-77" in page.text
    events = re.findall(r'<li class="event (\w+) (\w+)">', page.text)
    assert events == [("inspection", "customer"), ("inspection", "station")]
    pair = page.text[page.text.index('data-kind="changed_since_request"'):]
    assert "raised" in pair[:400]
    for source in (station, customer):
        assert f'/ui/items/{source["id"]}/photos/0"' in pair
    heatmap = f'/ui/items/{station["id"]}/photos/0/heatmap?label=unmatched'
    assert heatmap in pair and app.get(heatmap).headers["content-type"] == "image/png"
    assert app.get("/ui/returns/RMA-77/evidence").text.startswith("<!doctype html>")
    item = app.get(f"/ui/items/{station['id']}")
    assert 'href="/ui/returns/RMA-77"' in item.text and "changed since request" in item.text
    packet = app.get(f"/ui/items/{station['id']}/evidence")
    assert packet.status_code == 200 and "img-src data:" in packet.headers["content-security-policy"]


def test_one_sided_case_says_so_and_unknown_returns_are_404(app: Any) -> None:
    submit(app, [photo(1)], return_id="RMA-78")
    sign_in(app)
    assert "Not compared: photos from one side only (station)" in app.get("/ui/returns/RMA-78").text
    assert app.get("/ui/returns/NOPE").status_code == 404
    app.cookies.clear()
    assert app.get("/ui/returns/RMA-78").status_code == 401


def test_new_damage_pair_shows_the_label_map_on_both_photos() -> None:
    comparison = {"checks": [{"kind": "new_damage_since_request", "label": "crack", "flagged": True,
                              "score": 0.7, "threshold": 0.3, "reason": "crack: 0.90 at the dock",
                              "station": {"inspection_id": "s1", "photo": 1},
                              "customer": {"inspection_id": "c1", "photo": 0}}]}
    (view,) = pair_views(comparison, "/ui", {"crack": 3.25})
    station, customer = view.photos
    assert station.url == "/ui/items/s1/photos/1" and station.number == 2
    # one colour scale for both photos: the customer's weak map does not glow on its own scale
    assert station.heatmap_url == "/ui/items/s1/photos/1/heatmap?label=crack&peak=3.2500"
    assert customer.heatmap_url == "/ui/items/c1/photos/0/heatmap?label=crack&peak=3.2500"


def test_a_shared_peak_cools_a_heatmap_and_must_be_a_number(app: Any) -> None:
    station = submit(app, [photo(5)], return_id="RMA-79").json()
    url = f"/v1/inspections/{station['id']}/photos/0/heatmap?label=crack"
    operator = {"X-API-Key": "operator-key-1"}
    own, shared = app.get(url, headers=operator), app.get(url + "&peak=1000", headers=operator)
    assert own.status_code == shared.status_code == 200 and own.content != shared.content
    assert app.get(url + "&peak=nan", headers=operator).status_code == 422
