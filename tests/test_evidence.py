"""The evidence packet: self-contained, complete, and the same bytes for the same inspection
apart from its one generation line; purged photos leave their hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from conftest import API_KEYS, headers, submit
from test_case_service import CASE_THRESHOLDS, photo

from inspection.service.evidence import GENERATED_ID

GENERATED_LINE = re.compile(rf'<p class="generated" id="{GENERATED_ID}">Generated [^<]+</p>\n')


@pytest.fixture(scope="module")
def case_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("case"), biases=CRACKED_ITEM, version="1.0.0",
                        thresholds=CASE_THRESHOLDS)


@pytest.fixture
def app(make_app: Callable[..., Any], case_bundle: Path) -> Any:
    return make_app(case_bundle, api_keys=API_KEYS)


def reviewed_return(app: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = submit(app, [photo(1)], role="customer", return_id="R-20", source="customer").json()
    station = submit(app, [photo(5), photo(6)], return_id="R-20").json()
    first = app.post(f"/v1/inspections/{station['id']}/review", headers=headers("operator"),
                     json={"decision": "confirm", "note": "first look"})
    assert first.status_code == 201
    override = app.post(f"/v1/inspections/{station['id']}/review", headers=headers("admin"),
                        json={"decision": "correct", "labels": {"condition": ["C"]},
                              "disposition": "refurbish", "note": "scuffs only, refund partly",
                              "override": True})
    assert override.status_code == 201
    return customer, station


def without_generated_line(html: str) -> str:
    assert len(GENERATED_LINE.findall(html)) == 1
    return GENERATED_LINE.sub("", html)


def test_inspection_packet_holds_everything_and_is_reproducible(app: Any, tmp_path: Path) -> None:
    customer, station = reviewed_return(app)
    first = app.get(f"/v1/inspections/{station['id']}/evidence", headers=headers("operator"))
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    assert "img-src data:" in first.headers["content-security-policy"]
    html = first.text
    assert without_generated_line(html) == without_generated_line(
        app.get(f"/v1/inspections/{station['id']}/evidence", headers=headers("admin")).text)
    stored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (tmp_path / "data" / "photos").rglob("*.jpg")}
    assert len(stored) == 3 and all(digest in html for digest in stored.values())
    assert "http://" not in html and "https://" not in html and "src=\"/" not in html  # self-contained
    assert html.count("data:image/jpeg;base64,") >= 3 + 1  # 3 photos (pair included) + heatmaps
    for flag in station["flags"]:
        assert f"{flag['score']:.4f}" in html and f"{flag['threshold']:.4f}" in html
    assert "set in the model card without a fitting record" in html  # how the case threshold came
    assert station["model"]["model_id"] in html and station["model"]["card_sha256"] in html
    assert station["policy"]["sha256"] in html
    assert "scuffs only, refund partly" in html and "yes (admin)" in html and "first look" in html
    assert "changed_since_request: raised" in html and customer["id"] in html


def test_return_packet_has_the_timeline_and_every_inspection(app: Any) -> None:
    customer, station = reviewed_return(app)
    html = app.get("/v1/returns/R-20/evidence", headers=headers("operator")).text
    assert 'id="timeline"' in html and html.count("root corrected") == 1
    assert f'id="inspection-{customer["id"]}"' in html and f'id="inspection-{station["id"]}"' in html
    assert html.index(customer["id"]) < html.index(f'id="inspection-{station["id"]}"')


def test_a_purged_photo_keeps_its_hash_in_the_packet(app: Any, tmp_path: Path) -> None:
    customer = submit(app, [photo(1)], role="customer", return_id="R-21", source="customer").json()
    for stored in (tmp_path / "data" / "photos").rglob("*.jpg"):
        stored.unlink()
    html = app.get(f"/v1/inspections/{customer['id']}/evidence", headers=headers("operator")).text
    digest = app.get("/v1/returns/R-21", headers=headers("operator")).json()
    assert digest["inspections"][0]["id"] == customer["id"]
    assert "Photo purged by the retention policy" in html
    assert "data:image/jpeg" not in html
    assert re.search(r"sha256 <span class=\"hash\">[0-9a-f]{64}</span>", html)
    assert "Not compared: photos from one side only" in html


def test_the_packet_is_the_same_after_a_restart(make_app: Callable[..., Any], case_bundle: Path) -> None:
    first = make_app(case_bundle, api_keys=API_KEYS)
    _, station = reviewed_return(first)
    url = f"/v1/inspections/{station['id']}/evidence"
    before = first.get(url, headers=headers("operator")).text
    first.__exit__(None, None, None)
    again = make_app(case_bundle, api_keys=API_KEYS)  # same data folder, a new process state
    assert without_generated_line(again.get(url, headers=headers("operator")).text) == \
        without_generated_line(before)


def test_evidence_is_for_operators(app: Any) -> None:
    customer = submit(app, [photo(1)], role="customer", return_id="R-22", source="customer").json()
    assert app.get(f"/v1/inspections/{customer['id']}/evidence",
                   headers=headers("customer")).status_code == 403
    assert app.get("/v1/inspections/nope/evidence", headers=headers("operator")).status_code == 404


def test_the_catalog_reference_is_listed_by_hash() -> None:
    from inspection.service.evidence import catalog_references
    result = {"comparison": {"basis": "sku", "sku": "PHONE-X", "similarity_threshold": 0.7,
                             "closest_reference": {"photo": 1, "reference": 3, "similarity": 0.91,
                                                   "sha256": "ab" * 32}}}
    (reference,) = catalog_references(result)
    assert reference["sku"] == "PHONE-X" and reference["sha256"] == "ab" * 32
    assert reference["similarity"] == 0.91 and reference["photo"] == 1
    assert catalog_references({"comparison": {"basis": "category"}}) == []
    assert catalog_references({}) == []


def test_a_purged_customer_inspection_leaves_its_photo_hash_in_the_dock_packet(app: Any) -> None:
    from inspection.service.models import Inspection
    customer = submit(app, [photo(1)], role="customer", return_id="R-23", source="customer").json()
    station = submit(app, [photo(5)], return_id="R-23").json()
    check = station["case_comparison"]["checks"][0]
    assert check["station"]["sha256"] is None and len(check["customer"]["sha256"]) == 64
    with app.app.state.service.sessions() as session:  # what a retention purge does to old rows
        session.delete(session.get(Inspection, customer["id"]))
        session.commit()
    html = app.get(f"/v1/inspections/{station['id']}/evidence", headers=headers("operator")).text
    assert "This inspection is no longer stored (retention)" in html
    assert check["customer"]["sha256"] in html


def test_the_catalog_reference_photo_is_embedded_with_its_hash(make_app: Callable[..., Any],
                                                              tmp_path: Path) -> None:
    from bundle_factory import CLEAN_ITEM
    from catalog_photos import damaged_photo, product_photos
    bundle = build_bundle(tmp_path / "plain", biases=CLEAN_ITEM, version="3.0.0")
    app = make_app(bundle, api_keys=API_KEYS)
    photos = [("photos", (f"ref{i}.jpg", data, "image/jpeg")) for i, data in enumerate(product_photos(10))]
    registered = app.put("/v1/catalog/PHONE-X", headers=headers("admin"), files=photos,
                         data={"category": "phone"})
    assert registered.status_code == 200, registered.text
    answer = app.post("/v1/inspections", headers=headers("station"),
                      data={"return_id": "R-30", "sku": "PHONE-X"},
                      files=[("photos", ("return.jpg", damaged_photo(), "image/jpeg"))]).json()
    closest = answer["comparison"]["closest_reference"]
    html = app.get(f"/v1/inspections/{answer['id']}/evidence", headers=headers("operator")).text
    section = html[html.index("<h3>Catalog reference photos</h3>"):]
    assert closest["sha256"] in section and "SKU PHONE-X" in section
    assert section.index('alt="catalog reference"') < section.index("<h3>Operator review</h3>")
    assert "fitted on SKU PHONE-X&#39;s catalog photos" in html  # the anomaly flag's threshold
