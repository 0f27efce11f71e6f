"""POST /v1/inspections and the GETs beside it: the full answer, ownership by role, photos of
every kind, heatmaps, and bad input answered as JSON 4xx naming the problem."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from conftest import encode, error_of, headers, submit, textured_photo
from PIL import Image

import inspection.images  # noqa: F401 - registers the HEIF opener the HEIC case saves with


def test_full_answer_for_a_cracked_phone_without_charger(client: Any, photo_jpeg: bytes) -> None:
    response = submit(client, [photo_jpeg, photo_jpeg], sku="SKU-9")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "flagged" and body["source"] == "station" and body["sku"] == "SKU-9"
    photo = body["photos"][0]
    assert photo["usable"] and photo["condition"]["grade"] == "D"
    assert sum(photo["condition"]["probabilities"].values()) == pytest.approx(1.0)
    assert photo["damages"]["crack"] > 0.9 and photo["width"] == 320
    item = body["item"]
    assert item["condition"]["grade"] == "D" and item["missing_accessories"] == ["charger"]
    assert [d["label"] for d in item["damages"] if d["found"]] == ["crack"]
    kinds = {flag["kind"]: flag for flag in body["flags"]}
    assert set(kinds) == {"damage_found", "accessory_missing"}
    assert kinds["damage_found"]["threshold"] == 0.5 and kinds["damage_found"]["photo"] in (0, 1)
    assert {c["kind"] for c in body["skipped_checks"]} == {"item_mismatch", "anomaly"}
    # grade D -> the `damaged` rule (before broken_or_cracked in the policy)
    assert body["decision"]["disposition"] == "liquidate"
    assert body["decision"]["refund"] == "hold_for_review" and body["decision"]["rule"] == "damaged"
    assert body["model"]["name"] == "tiny-test" and body["model"]["version"] == "1.0.0"
    stages = {"queue_ms", "decode_ms", "inference_ms", "anomaly_ms", "storage_ms", "total_ms"}
    assert set(body["timings"]) == stages | {"database_ms"}
    assert "probabilities" not in photo or photo["probabilities"] is None  # once, not twice
    # GET returns what POST answered; the database's time was only known after it was stored
    again = client.get(f"/v1/inspections/{body['id']}", headers=headers("station"))
    assert again.status_code == 200 and again.json()["timings"]["database_ms"] is None
    assert all(again.json()["timings"][stage] is not None for stage in stages)
    assert {**again.json(), "timings": None} == {**body, "timings": None}


def test_a_clean_item_is_approved_and_not_flagged(make_app: Any, clean_bundle: Any,
                                                  photo_jpeg: bytes) -> None:
    body = submit(make_app(clean_bundle), [photo_jpeg]).json()
    assert body["status"] == "clear" and body["flags"] == []
    assert body["decision"]["disposition"] == "restock" and body["decision"]["refund"] == "approve"


@pytest.mark.parametrize(("reader", "status"), [
    ("station", 200),    # the submitter
    ("station2", 404),   # another station: it does not exist for them
    ("customer", 404),   # a customer: only their own
    ("operator", 200),   # operators read everything
    ("admin", 200),
])
def test_who_may_read_an_inspection(client: Any, photo_jpeg: bytes, reader: str, status: int) -> None:
    inspection = submit(client, [photo_jpeg]).json()["id"]
    for path in ("", "/photos/0", "/photos/0/heatmap?label=crack"):
        response = client.get(f"/v1/inspections/{inspection}{path}", headers=headers(reader))
        assert response.status_code == status, path


def test_customers_submit_and_read_their_own(client: Any, photo_jpeg: bytes) -> None:
    body = submit(client, [photo_jpeg], role="customer").json()
    assert body["source"] == "customer"
    assert client.get(f"/v1/inspections/{body['id']}", headers=headers("customer")).status_code == 200
    assert client.get(f"/v1/inspections/{body['id']}", headers=headers("station")).status_code == 404
    # a customer key cannot pretend to be a station
    assert submit(client, [photo_jpeg], role="customer", source="station").status_code == 403


def test_operators_cannot_submit_and_keys_are_required(client: Any, photo_jpeg: bytes) -> None:
    assert submit(client, [photo_jpeg], role="operator").status_code == 403
    anonymous = client.post("/v1/inspections", files=[("photos", ("a.jpg", photo_jpeg))],
                            data={"return_id": "R"})
    assert anonymous.status_code == 401 and error_of(anonymous)["field"] == "X-API-Key"
    wrong = client.get("/v1/inspections/x", headers={"X-API-Key": "not-a-key-at-all"})
    assert wrong.status_code == 401


def test_photo_and_heatmap(client: Any, photo_jpeg: bytes) -> None:
    inspection = submit(client, [photo_jpeg]).json()["id"]
    original = client.get(f"/v1/inspections/{inspection}/photos/0", headers=headers("operator"))
    assert original.headers["content-type"] == "image/jpeg" and original.content == photo_jpeg
    heat = client.get(f"/v1/inspections/{inspection}/photos/0/heatmap",
                      params={"label": "crack"}, headers=headers("operator"))
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    overlay = np.asarray(Image.open(io.BytesIO(heat.content)))
    assert overlay.shape == (240, 320, 3)
    assert not np.array_equal(overlay, np.asarray(Image.open(io.BytesIO(photo_jpeg))))
    bad_label = client.get(f"/v1/inspections/{inspection}/photos/0/heatmap",
                           params={"label": "melted"}, headers=headers("operator"))
    assert bad_label.status_code == 422 and error_of(bad_label)["field"] == "label"
    no_photo = client.get(f"/v1/inspections/{inspection}/photos/5", headers=headers("operator"))
    assert no_photo.status_code == 404


def test_identical_photos_are_stored_once(client: Any, photo_jpeg: bytes, tmp_path: Any) -> None:
    submit(client, [photo_jpeg, photo_jpeg])
    submit(client, [photo_jpeg])
    stored = [p for p in (tmp_path / "data" / "photos").rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].suffix == ".jpg"
    assert stored[0].parent.name + stored[0].stem == __import__("hashlib").sha256(photo_jpeg).hexdigest()


def truncated_jpeg() -> bytes:
    data = encode(textured_photo())
    return data[: len(data) // 2]


@pytest.mark.parametrize(("photos", "form", "status", "field"), [
    ([b"this is not an image"], {}, 422, "photos[0] (p0.jpg)"),           # not an image
    ([encode(textured_photo()), truncated_jpeg()], {}, 422, "photos[1] (p1.jpg)"),  # truncated
    ([encode(textured_photo())] * 9, {}, 422, "photos"),                 # too many photos
    ([b""], {}, 422, "photos[0] (p0.jpg)"),                              # empty file
    ([encode(textured_photo())], {"return_id": ""}, 422, "return_id"),  # empty return id
    ([encode(textured_photo())], {"category": "spaceship"}, 422, "category"),  # unknown category
    ([encode(textured_photo())], {"source": "robot"}, 422, "source"),   # not a source
])
def test_bad_input_is_a_json_4xx_naming_the_problem(client: Any, photos: list[bytes],
                                                     form: dict[str, str], status: int,
                                                     field: str) -> None:
    response = submit(client, photos, **form)
    assert response.status_code == status
    assert error_of(response)["field"] == field


def test_missing_return_id_and_missing_photos(client: Any, photo_jpeg: bytes) -> None:
    no_id = client.post("/v1/inspections", headers=headers("station"),
                        files=[("photos", ("a.jpg", photo_jpeg))])
    assert no_id.status_code == 422 and error_of(no_id)["field"] == "return_id"
    no_photos = client.post("/v1/inspections", headers=headers("station"), data={"return_id": "R"})
    assert no_photos.status_code == 422 and error_of(no_photos)["field"] == "photos"


def test_size_limits_answer_413(make_app: Any, cracked_bundle: Any) -> None:
    client = make_app(cracked_bundle, max_photo_bytes=50_000, max_total_bytes=200_000,
                      max_pixels=100_000)
    noise = np.random.default_rng(0).integers(0, 255, (170, 160, 3), dtype=np.uint8)
    big = encode(noise, "PNG")  # ~82 kB: over the 50 kB per photo, under the total
    too_big = submit(client, [big])
    assert too_big.status_code == 413 and error_of(too_big)["field"] == "photos[0] (p0.jpg)"
    total = submit(client, [big[:45_000]] * 7)  # each under 50 kB, together over 200 kB
    assert total.status_code == 413 and error_of(total)["code"] == "payload_too_large"
    # 400x400 = 160,000 pixels > 100,000, refused from the header
    bomb = submit(client, [encode(np.zeros((400, 400, 3), np.uint8) + 128, quality=10)])
    assert bomb.status_code == 413 and error_of(bomb)["code"] == "too_many_pixels"
    assert "400x400" in error_of(bomb)["message"]


def _exif_rotated_jpeg() -> bytes:
    # stored 320x240 landscape, EXIF orientation 6 = displayed rotated 90 degrees: portrait
    image = Image.fromarray(textured_photo(320, 240))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def _mode(mode: str, fmt: str) -> bytes:
    rgb = textured_photo()
    image = Image.fromarray(rgb)
    if mode == "I;16":
        image = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)  # uint16 -> mode I;16
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "fmt"), [
    (_mode("L", "JPEG"), "JPEG"),      # grey
    (_mode("RGBA", "PNG"), "PNG"),     # alpha
    (_mode("I;16", "PNG"), "PNG"),     # 16-bit grey
    (_mode("CMYK", "JPEG"), "JPEG"),   # CMYK from a print workflow
    (_mode("RGB", "PNG"), "PNG"),
    (_mode("P", "PNG"), "PNG"),        # palette
    (_mode("RGB", "HEIF"), "HEIF"),    # iPhone HEIC (pillow-heif)
])
def test_photo_kinds_are_all_scored(client: Any, data: bytes, fmt: str) -> None:
    response = submit(client, [data])
    assert response.status_code == 201, response.text
    assert response.json()["photos"][0]["format"] == fmt


def test_exif_orientation_is_honoured(client: Any) -> None:
    body = submit(client, [_exif_rotated_jpeg()]).json()
    assert (body["photos"][0]["width"], body["photos"][0]["height"]) == (320, 240)  # as stored
    heat = client.get(f"/v1/inspections/{body['id']}/photos/0/heatmap", params={"label": "crack"},
                      headers=headers("station"))
    assert np.asarray(Image.open(io.BytesIO(heat.content))).shape == (320, 240, 3)  # upright


def test_unusable_photo_is_flagged_with_a_polite_reason(client: Any) -> None:
    dark = encode((textured_photo() * 0.05).astype(np.uint8))
    body = submit(client, [dark]).json()
    unusable = [f for f in body["flags"] if f["kind"] == "photo_unusable"]
    assert unusable and unusable[0]["photo"] == 0 and "Please" in unusable[0]["reason"]
    assert body["decision"]["refund"] == "hold_for_review"
    assert body["photos"][0]["usable"] is False


def test_a_chunked_upload_is_cut_off_at_the_limit(make_app: Any, cracked_bundle: Any) -> None:
    # no Content-Length: the limit is enforced on the bytes as they arrive
    client = make_app(cracked_bundle, max_total_bytes=10_000)
    chunks = iter([b"--b\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n\r\n",
                   *([b"x" * 50_000] * 4)])
    response = client.post("/v1/inspections", headers={**headers("station"),
                                                       "Content-Type": "multipart/form-data; boundary=b"},
                           content=chunks)
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"
