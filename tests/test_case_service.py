"""A return as one case through the API: the customer's photos compared with the dock's in
either order, the case view and who may see it, and one-sided or purged returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from conftest import API_KEYS, encode, error_of, headers, submit, textured_photo

CASE_THRESHOLDS = {"changed_since_request": 0.999, "new_damage_since_request": 0.3}
OTHER_CUSTOMER = {"X-API-Key": "customer-key-2"}


@pytest.fixture(scope="module")
def case_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cracked model with case thresholds: identical photos are the same item (similarity
    1.0), any other photo is not (the tiny model's embeddings differ with the photo)."""
    return build_bundle(tmp_path_factory.mktemp("case"), biases=CRACKED_ITEM, version="1.0.0",
                        thresholds=CASE_THRESHOLDS)


@pytest.fixture
def app(make_app: Callable[..., Any], case_bundle: Path) -> Any:
    return make_app(case_bundle, api_keys=API_KEYS + ",customer-key-2:customer:shopper-2")


def photo(seed: int) -> bytes:
    """Seeds 1-4: one item (only the sensor noise differs); 5 and up: another item (a tinted,
    coarser pattern)."""
    if seed < 5:
        return encode(textured_photo(320, 240, seed=seed))
    rgb = textured_photo(640, 480, seed=seed)[::2, ::2].copy()
    rgb[..., 0] = 255 - rgb[..., 0]
    return encode(rgb)


def test_one_sided_return_is_not_compared_and_says_so(app: Any) -> None:
    body = submit(app, [photo(1)], role="customer", return_id="R-7", source="customer").json()
    assert body["case_comparison"]["status"] == "not_compared"
    assert "one side only" in body["case_comparison"]["reason"] and body["case_comparison"]["checks"] == []
    case = app.get("/v1/returns/R-7", headers=headers("operator")).json()
    assert case["sources"] == {"customer": 1, "station": 0}
    assert case["comparison"]["status"] == "not_compared"
    assert "until the station photographs the item" in case["comparison"]["reason"]


def test_same_photos_at_the_dock_raise_nothing(app: Any) -> None:
    submit(app, [photo(1), photo(2)], role="customer", return_id="R-8", source="customer")
    body = submit(app, [photo(2)], return_id="R-8").json()
    comparison = body["case_comparison"]
    assert comparison["status"] == "compared" and comparison["compared"] == {"station": 1, "customer": 2}
    changed = next(c for c in comparison["checks"] if c["kind"] == "changed_since_request")
    assert changed["score"] == pytest.approx(1.0, abs=1e-4) and not changed["flagged"]
    assert changed["customer"]["photo"] == 1  # the identical photo is the closest pair
    damage = next(c for c in comparison["checks"] if c["kind"] == "new_damage_since_request")
    assert damage["score"] == pytest.approx(0.0, abs=1e-6) and not damage["flagged"]
    kinds = {flag["kind"] for flag in body["flags"]}
    assert not kinds & {"changed_since_request", "new_damage_since_request"}


def test_another_item_at_the_dock_is_flagged_with_the_pair_and_a_heatmap(app: Any) -> None:
    customer = submit(app, [photo(1)], role="customer", return_id="R-9", source="customer").json()
    station = submit(app, [photo(5), photo(6)], return_id="R-9").json()
    flag = next(f for f in station["flags"] if f["kind"] == "changed_since_request")
    assert flag["score"] < flag["threshold"] == CASE_THRESHOLDS["changed_since_request"]
    check = next(c for c in station["case_comparison"]["checks"] if c["kind"] == "changed_since_request")
    assert check["flagged"] and check["customer"]["inspection_id"] == customer["id"]
    assert check["customer"]["photo"] == 0 and len(check["customer"]["sha256"]) == 64
    assert check["station"]["inspection_id"] == station["id"] and flag["photo"] == check["station"]["photo"]
    assert station["decision"]["refund"] == "hold_for_review"
    assert "changed_since_request" in " ".join(station["decision"]["reasons"])
    heat = app.get(f"/v1/inspections/{station['id']}/photos/{flag['photo']}/heatmap?label=unmatched",
                   headers=headers("operator"))
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    queue = app.get("/v1/review-queue?flag=changed_since_request", headers=headers("operator")).json()
    assert [item["id"] for item in queue["items"]] == [station["id"]]


def test_customer_photos_after_the_dock_are_compared_too(app: Any) -> None:
    station = submit(app, [photo(5)], return_id="R-10").json()
    assert station["case_comparison"]["status"] == "not_compared"
    customer = submit(app, [photo(1)], role="customer", return_id="R-10", source="customer").json()
    assert customer["case_comparison"]["against"] == "station"
    assert customer["case_comparison"]["against_inspections"] == [station["id"]]
    flag = next(f for f in customer["flags"] if f["kind"] == "changed_since_request")
    assert flag["photo"] == 0  # the flag points at the customer's photo of the pair


def test_the_case_lists_inspections_in_order_with_reviews_and_a_timeline(app: Any) -> None:
    first = submit(app, [photo(1)], role="customer", return_id="R-11", source="customer").json()
    second = submit(app, [photo(5)], return_id="R-11").json()
    review = app.post(f"/v1/inspections/{second['id']}/review", headers=headers("operator"),
                      json={"decision": "correct", "labels": {"condition": ["C"]},
                            "note": "different colour than the customer's photos"})
    assert review.status_code == 201
    case = app.get("/v1/returns/R-11", headers=headers("operator")).json()
    assert [i["id"] for i in case["inspections"]] == [first["id"], second["id"]]
    assert case["inspections"][1]["reviews"][0]["note"] == "different colour than the customer's photos"
    assert [e["kind"] for e in case["events"]] == ["inspection", "inspection", "review"]
    assert case["comparison"]["status"] == "compared" and case["comparison"]["inspection_id"] == second["id"]
    assert case["sources"] == {"customer": 1, "station": 1}


def test_customers_see_only_their_own_returns(app: Any) -> None:
    mine = submit(app, [photo(1)], role="customer", return_id="R-12", source="customer").json()
    submit(app, [photo(5)], return_id="R-12")
    own = app.get("/v1/returns/R-12", headers=headers("customer")).json()
    assert [i["id"] for i in own["inspections"]] == [mine["id"]]  # not the station's assessment
    other = app.get("/v1/returns/R-12", headers=OTHER_CUSTOMER)
    assert other.status_code == 404 and error_of(other)["field"] == "return_id"
    assert app.get("/v1/returns/NO-SUCH", headers=headers("operator")).status_code == 404
    assert app.get("/v1/returns/R-12/evidence", headers=headers("customer")).status_code == 403


def test_purged_customer_photos_leave_the_comparison_undone_and_said(app: Any, tmp_path: Path) -> None:
    submit(app, [photo(1)], role="customer", return_id="R-13", source="customer")
    for stored in (tmp_path / "data" / "photos").rglob("*.jpg"):
        stored.unlink()  # what a retention purge does to the files; the rows keep the hashes
    body = submit(app, [photo(5)], return_id="R-13").json()
    assert body["case_comparison"]["status"] == "not_compared"
    assert "no longer stored" in body["case_comparison"]["reason"]
    assert len(body["case_comparison"]["missing_photos"]) == 1


def test_a_return_id_longer_than_any_accepted_is_refused(app: Any) -> None:
    answer = app.get("/v1/returns/" + "x" * 201, headers=headers("operator"))
    assert answer.status_code == 422 and "return_id" in str(error_of(answer)["field"])


def test_a_return_id_with_a_slash_is_one_case(app: Any) -> None:
    submit(app, [photo(1)], role="customer", return_id="RMA/2026/7", source="customer")
    submit(app, [photo(5)], return_id="RMA/2026/7")
    case = app.get("/v1/returns/RMA/2026/7", headers=headers("operator")).json()
    assert case["return_id"] == "RMA/2026/7" and case["sources"] == {"customer": 1, "station": 1}
    packet = app.get("/v1/returns/RMA%2F2026%2F7/evidence", headers=headers("operator"))
    assert packet.status_code == 200 and "Evidence: return RMA/2026/7" in packet.text
