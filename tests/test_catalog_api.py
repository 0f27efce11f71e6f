"""The catalog through the API: register a SKU from reference photos (admin), inspect returns
declared as that SKU, every refusal a clear 422 that leaves the old references serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_service_db
from bundle_factory import CLEAN_ITEM, build_bundle
from catalog_photos import damaged_photo, other_product, product_photos
from conftest import encode, error_of, headers, textured_photo


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that grades everything A with the full kit: only the catalog can flag."""
    return build_bundle(tmp_path_factory.mktemp("plain"), biases=CLEAN_ITEM, version="3.0.0")


POSTGRES_URL = test_service_db.POSTGRES_URL
postgres_engine = test_service_db.postgres_engine  # the throw-away server's fixture


def put_sku(client: Any, sku: str, photos: list[bytes], role: str = "admin", **form: str) -> Any:
    files = [("photos", (f"ref{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return client.put(f"/v1/catalog/{sku}", headers=headers(role), files=files, data=form)


def inspect(client: Any, photo: bytes, **form: str) -> dict[str, Any]:
    response = client.post("/v1/inspections", headers=headers("station"),
                           files=[("photos", ("return.jpg", photo, "image/jpeg"))],
                           data={"return_id": "RMA-7", **form})
    assert response.status_code == 201, response.text
    return response.json()


def kinds(answer: dict[str, Any]) -> set[str]:
    return {flag["kind"] for flag in answer["flags"]}


def test_register_then_inspect_genuine_damaged_and_swapped(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    registered = put_sku(client, "PHONE-X", product_photos(10), category="phone",
                         display_name="Phone X 128 GB")
    assert registered.status_code == 200, registered.text
    body = registered.json()
    assert body["status"] == "ready" and body["photo_count"] == 10 and body["revision"] == 1
    reference = body["references"][0]
    assert reference["current"] and reference["model_id"].startswith("tiny-test-3.0.0")
    assert reference["thresholds"]["method"] == "leave-one-out"
    assert reference["thresholds"]["false_flag_target"] == 0.02 and reference["bank_size"] > 0

    genuine = inspect(client, product_photos(12)[11], sku="PHONE-X")  # no category: the SKU's
    assert genuine["category"] == "phone" and genuine["comparison"]["basis"] == "sku"
    assert not kinds(genuine) & {"item_mismatch", "anomaly"}
    closest = genuine["comparison"]["closest_reference"]
    assert 0 <= closest["reference"] < 10 and closest["similarity"] > 0.9
    assert closest["sha256"] == body["photos"][closest["reference"]]["sha256"]
    assert genuine["photos"][0]["closest_reference"] == closest["reference"]

    damaged = inspect(client, damaged_photo(), sku="PHONE-X")
    anomaly = next(flag for flag in damaged["flags"] if flag["kind"] == "anomaly")
    assert anomaly["label"] == "PHONE-X" and "SKU PHONE-X" in anomaly["reason"]
    assert anomaly["score"] >= anomaly["threshold"] == damaged["comparison"]["anomaly_threshold"]
    heat = client.get(f"/v1/inspections/{damaged['id']}/photos/0/heatmap?label=anomaly",
                      headers=headers("operator"))
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"

    swapped = inspect(client, other_product(), sku="PHONE-X", category="phone")
    mismatch = next(flag for flag in swapped["flags"] if flag["kind"] == "item_mismatch")
    assert mismatch["score"] < mismatch["threshold"] and "reference photo" in mismatch["reason"]
    assert swapped["decision"]["refund"] == "hold_for_review"

    photo = client.get(f"/v1/catalog/PHONE-X/photos/{closest['reference']}", headers=headers("operator"))
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"


def test_unknown_sku_falls_back_to_the_category_and_says_so(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    answer = inspect(client, product_photos(1)[0], sku="NOT-IN-CATALOG", category="phone")
    assert answer["comparison"]["basis"] == "none"  # the tiny bundle has no category references
    assert "not in the catalog" in answer["comparison"]["note"]
    assert answer["comparison"]["closest_reference"] is None


def test_list_read_delete_and_roles(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    assert put_sku(client, "A-1", product_photos(4), role="operator").status_code == 403
    assert put_sku(client, "A-1", product_photos(4), role="station").status_code == 403
    assert put_sku(client, "A-1", product_photos(4)).status_code == 200
    assert put_sku(client, "B-2", product_photos(3), accessory_kit="charger, cable").status_code == 200
    listed = client.get("/v1/catalog", headers=headers("station")).json()["items"]
    assert [item["sku"] for item in listed] == ["A-1", "B-2"]
    assert listed[1]["accessory_kit"] == ["charger", "cable"] and listed[1]["category"] is None
    assert client.get("/v1/catalog", headers=headers("customer")).status_code == 403
    assert client.delete("/v1/catalog/A-1", headers=headers("operator")).status_code == 403
    assert client.delete("/v1/catalog/A-1", headers=headers("admin")).status_code == 204
    missing = client.get("/v1/catalog/A-1", headers=headers("operator"))
    assert missing.status_code == 404 and "A-1" in error_of(missing)["message"]
    assert client.delete("/v1/catalog/A-1", headers=headers("admin")).status_code == 404


def test_a_sku_kit_replaces_the_category_kit(make_app: Any, cracked_bundle: Path) -> None:
    """The cracked bundle never sees a charger: a SKU sold without one is not missing it."""
    client = make_app(cracked_bundle)
    assert put_sku(client, "BARE", product_photos(3), category="phone",
                   accessory_kit="cable").status_code == 200
    answer = inspect(client, product_photos(5)[4], sku="BARE")
    assert answer["item"]["missing_accessories"] == []
    with_category_kit = inspect(client, product_photos(5)[4], sku="UNKNOWN", category="phone")
    assert with_category_kit["item"]["missing_accessories"] == ["charger"]


def test_one_or_two_photos_fit_on_mirrored_views(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    body = put_sku(client, "ONE", product_photos(1)).json()
    assert body["thresholds"]["method"] == "mirrored views" and body["thresholds"]["fitted_on"] == 2


@pytest.mark.parametrize(("photos", "form", "code", "names"), [
    # every photo is unusable (too small): nothing to build from; the message names each file
    ([encode(textured_photo(100, 80, seed=s)) for s in range(3)], {}, "no_usable_photo", "ref2.jpg"),
    # not an image at all
    ([b"%PDF-1.4 not a photo"], {}, "invalid_input", "ref0.jpg"),
    # more than the limit of 50
    ([b"x"] * 51, {}, "invalid_input", "got 51"),
    # a category the model does not know
    (product_photos(3), {"category": "spaceship"}, "invalid_input", "spaceship"),
    # the same picture ten times: nothing tells how much a genuine unit varies
    ([product_photos(1)[0]] * 10, {}, "too_uniform", "copies of one picture"),
])
def test_bad_reference_sets_are_refused_and_the_old_ones_keep_serving(
        make_app: Any, plain_bundle: Path, photos: list[bytes], form: dict[str, str], code: str,
        names: str) -> None:
    client = make_app(plain_bundle)
    assert put_sku(client, "KEEP", product_photos(5)).status_code == 200
    before = client.get("/v1/catalog/KEEP", headers=headers("admin")).json()
    refused = put_sku(client, "KEEP", photos, **form)
    assert refused.status_code == 422, refused.text
    error = error_of(refused)
    assert error["code"] == code and names in error["message"] + str(error["field"])
    after = client.get("/v1/catalog/KEEP", headers=headers("admin")).json()
    assert after == before  # same photos, same reference, same revision
    assert inspect(client, damaged_photo(), sku="KEEP")["comparison"]["basis"] == "sku"
    refused_new = put_sku(client, "NEW", photos, **form)
    assert refused_new.status_code == 422
    assert client.get("/v1/catalog/NEW", headers=headers("admin")).status_code == 404


def test_a_bad_sku_name_is_refused(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    refused = put_sku(client, "-starts-with-dash", product_photos(2))
    assert refused.status_code == 422 and error_of(refused)["field"] == "sku"


def test_a_new_model_rebuilds_the_catalog_and_the_old_reference_is_never_used(
        make_app: Any, plain_bundle: Path, clean_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = make_app(plain_bundle)
    assert put_sku(client, "PHONE-X", product_photos(6), category="phone").status_code == 200
    state = client.app.state.service
    with caplog.at_level("INFO", logger="inspection.service.catalog_rebuild"):
        reloaded = client.post("/v1/models/reload", headers=headers("admin"),
                               json={"bundle": str(clean_bundle)})
        assert reloaded.status_code == 200
        state.catalog_rebuild.wait(60)
    assert "SKU PHONE-X rebuilt for model" in caplog.text and "(1/1" in caplog.text
    body = client.get("/v1/catalog/PHONE-X", headers=headers("admin")).json()
    new_id = reloaded.json()["model_id"]
    assert body["status"] == "ready"
    assert {r["model_id"]: r["current"] for r in body["references"]} == {
        new_id: True, body["references"][0]["model_id"] if not body["references"][0]["current"]
        else body["references"][1]["model_id"]: False}
    answer = inspect(client, damaged_photo(), sku="PHONE-X")
    assert answer["model"]["model_id"] == new_id and answer["comparison"]["basis"] == "sku"


def test_a_sku_still_building_falls_back_and_says_why(make_app: Any, plain_bundle: Path) -> None:
    client = make_app(plain_bundle)
    assert put_sku(client, "PHONE-X", product_photos(4), category="phone").status_code == 200
    state = client.app.state.service
    from inspection.service.models import CatalogReference

    with state.sessions() as session:  # as if a new model had just been loaded
        session.query(CatalogReference).delete()
        session.commit()
    answer = inspect(client, damaged_photo(), sku="PHONE-X")
    assert answer["comparison"]["basis"] == "none"
    assert "still being built" in answer["comparison"]["note"]
    assert "catalog" in {check["kind"] for check in answer["skipped_checks"]}


def test_catalog_on_postgresql(postgres_engine: Any, make_app: Any, plain_bundle: Path) -> None:
    """The catalog tables on a real server: a bank stored as a blob, replaced in one
    transaction, and (sku, model_id) unique in the database itself."""
    from sqlalchemy.exc import IntegrityError

    from inspection.service.db import make_session_factory, upgrade_to_head
    from inspection.service.models import CatalogReference

    upgrade_to_head(postgres_engine)
    client = make_app(plain_bundle, database_url=POSTGRES_URL)
    assert put_sku(client, "PHONE-X", product_photos(5), category="phone").status_code == 200
    assert put_sku(client, "PHONE-X", product_photos(7)).json()["revision"] == 2
    assert inspect(client, damaged_photo(), sku="PHONE-X")["comparison"]["basis"] == "sku"
    sessions = make_session_factory(postgres_engine)
    with sessions() as session:
        stored = session.query(CatalogReference).one()
        session.add(CatalogReference(sku="PHONE-X", model_id=stored.model_id, revision=2,
                                     build_ms=1.0, thresholds={}, bank_size=0, data=b""))
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_sku_registered_again_after_delete_is_compared_with_its_new_photos(
        make_app: Any, plain_bundle: Path) -> None:
    """SQLite may reuse a deleted reference's row id: the cache must not serve the old bank."""
    client = make_app(plain_bundle)
    assert put_sku(client, "A", product_photos(5)).status_code == 200
    assert "item_mismatch" in kinds(inspect(client, other_product(), sku="A"))
    assert client.delete("/v1/catalog/A", headers=headers("admin")).status_code == 204
    bands = [other_product((320 + 16 * i, 240 + 8 * i)) for i in range(5)]
    assert put_sku(client, "A", bands).status_code == 200
    assert "item_mismatch" not in kinds(inspect(client, other_product((352, 256)), sku="A"))


def test_references_survive_a_restart_and_a_new_bundle_rebuilds_them_at_start(
        make_app: Any, plain_bundle: Path, clean_bundle: Path) -> None:
    first = make_app(plain_bundle)
    assert put_sku(first, "PHONE-X", product_photos(5), category="phone").status_code == 200
    first.__exit__(None, None, None)

    same_model = make_app(plain_bundle)  # same data folder: the stored bank serves at once
    same_model.app.state.service.catalog_rebuild.wait(60)
    assert same_model.app.state.service.catalog_rebuild.last.todo == 0  # nothing to rebuild
    assert inspect(same_model, damaged_photo(), sku="PHONE-X")["comparison"]["basis"] == "sku"
    same_model.__exit__(None, None, None)

    new_model = make_app(clean_bundle)
    state = new_model.app.state.service
    state.catalog_rebuild.wait(60)
    assert state.catalog_rebuild.last.built == 1 and not state.catalog_rebuild.last.failed
    body = new_model.get("/v1/catalog/PHONE-X", headers=headers("admin")).json()
    assert body["status"] == "ready" and len(body["references"]) == 2
    assert inspect(new_model, damaged_photo(), sku="PHONE-X")["comparison"]["basis"] == "sku"


def test_the_operator_page_shows_the_very_reference_photo_compared(make_app: Any,
                                                                   plain_bundle: Path) -> None:
    """By content: after the SKU's photos are replaced, an older inspection's reference is
    refused (404) rather than shown as a different photo."""
    from inspection.service import ui
    from inspection.service.ui_auth import session_token

    client = make_app(plain_bundle)
    assert put_sku(client, "PHONE-X", product_photos(5), category="phone").status_code == 200
    answer = inspect(client, damaged_photo(), sku="PHONE-X")
    sha = answer["photos"][0]["closest_reference_sha256"]
    assert sha == answer["comparison"]["closest_reference"]["sha256"]
    token = session_token(client.app.state.service, "operator-key-1")  # a signed /ui session
    client.cookies.set(ui.COOKIE, token, domain="testserver.local", path="/ui")
    page = client.get(f"/ui/items/{answer['id']}")
    assert page.status_code == 200 and f"/ui/catalog-photos/{sha}" in page.text
    assert "Closest catalog photo" in page.text
    assert client.get(f"/ui/catalog-photos/{sha}").headers["content-type"] == "image/jpeg"
    assert put_sku(client, "PHONE-X", product_photos(9)[5:]).status_code == 200  # all new photos
    assert client.get(f"/ui/catalog-photos/{sha}").status_code == 404
