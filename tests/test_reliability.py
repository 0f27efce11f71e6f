"""Issue 9, items 4 and 7-11: bounded decoding, access, unusable photos, observability and HTTP,
Idempotency-Key, retention. (Items 1-3 and 5-6: test_bundle_seal.py, test_concurrency.py,
test_migration_lock.py, test_hostile_inputs.py.)"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import encode, error_of, headers, submit, textured_photo
from PIL import Image
from sqlalchemy import func, select, update

from inspection.cli import main as cli_main
from inspection.pipeline import Upload, decode_uploads
from inspection.service.models import FlagRow, IdempotencyKey, Inspection, Photo, Review


def png(width: int, height: int, mode: str = "1") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- item 4: decoding is bounded ------------------------------------------------------------

def test_a_1bit_png_bomb_is_refused_from_its_header(client: Any) -> None:
    bomb = png(8000, 7999)  # 16 KB on the wire, 64 M pixels: just under the JPEG limit
    answer = client.post("/v1/inspections", headers=headers("station"), data={"return_id": "R"},
                         files=[("photos", ("bomb.png", bomb, "image/png"))])
    assert answer.status_code == 413 and error_of(answer)["code"] == "too_many_pixels"
    assert "24,000,000 for PNG" in error_of(answer)["message"]


def test_pixels_decoded_per_request_are_bounded(client: Any) -> None:
    several = [("photos", (f"{i}.png", png(4000, 4000), "image/png")) for i in range(5)]
    answer = client.post("/v1/inspections", headers=headers("station"), data={"return_id": "R"},
                         files=several)
    assert answer.status_code == 413 and "per request" in error_of(answer)["message"]


def test_large_lossless_photos_are_shrunk_at_decode_not_held_in_full() -> None:
    """Two 4800 x 4800 PNGs (23 M pixels each, accepted): what the request holds afterwards is
    the size a JPEG would be drafted to, not 2 x 69 MB of RGB."""
    uploads = [Upload(png(4800, 4800, "1")), Upload(png(4800, 4800, "L")), Upload(encode(textured_photo()))]
    decoded = decode_uploads(uploads, min_side=160)
    assert [photo.original_size for photo in decoded][:2] == [(4800, 4800)] * 2
    for photo in decoded:
        assert min(photo.rgb.shape[:2]) < 2 * 160 or min(photo.original_size) < 2 * 160
    assert sum(photo.rgb.nbytes for photo in decoded) < 2_000_000


# --- item 7: access -------------------------------------------------------------------------

def test_customers_see_the_outcome_of_a_review_but_not_who_wrote_what(client: Any,
                                                                     photo_jpeg: bytes) -> None:
    made = submit(client, [photo_jpeg], role="customer").json()["id"]
    client.post(f"/v1/inspections/{made}/review", headers=headers("operator"),
                json={"decision": "confirm", "note": "customer seems to have dropped it"})
    seen = client.get(f"/v1/inspections/{made}", headers=headers("customer")).json()["review"]
    assert seen["decision"] == "confirm" and seen["reviewer"] is None and seen["note"] is None
    staff = client.get(f"/v1/inspections/{made}", headers=headers("operator")).json()["review"]
    assert staff["reviewer"] == "olga" and staff["note"].startswith("customer seems")


@pytest.mark.parametrize("role", ["station", "customer", "operator"])
def test_only_an_admin_sees_the_served_bundle(client: Any, role: str) -> None:
    answer = client.get("/v1/models/current", headers=headers(role))
    assert answer.status_code == 403 and "/" not in error_of(answer)["message"].split(":")[-1]
    assert client.get("/v1/models/current", headers=headers("admin")).json()["bundle"]


# --- item 8: unusable photos ----------------------------------------------------------------

@pytest.mark.parametrize("photos", [
    [np.zeros((240, 320, 3), np.uint8)],  # all black
    [np.full((1, 1, 3), 128, np.uint8)],  # one pixel
    [np.zeros((240, 320, 3), np.uint8), np.full((1, 1, 3), 128, np.uint8)],
], ids=["black", "one-pixel", "both"])
def test_only_unusable_photos_get_only_a_retake_request(client: Any, photos: list[np.ndarray]) -> None:
    body = submit(client, [encode(photo, "PNG") for photo in photos]).json()
    assert {flag["kind"] for flag in body["flags"]} == {"photo_unusable"}
    assert body["decision"]["disposition"] == "retake_photos"
    assert body["decision"]["refund"] == "hold_for_review"
    assert body["decision"]["reasons"] and all("photo" in r for r in body["decision"]["reasons"])
    item = body["item"]
    assert item["condition"]["grade"] is None and item["damages"] == []
    assert item["missing_accessories"] == [] and item["photos_used"] == []
    assert all(photo["condition"] is None and photo["damages"] == {} for photo in body["photos"])
    assert body["status"] == "flagged"


def test_one_usable_photo_is_enough_for_an_assessment(client: Any) -> None:
    body = submit(client, [encode(np.zeros((240, 320, 3), np.uint8), "PNG"),
                           encode(textured_photo())]).json()
    assert body["item"]["condition"]["grade"] == "D" and body["item"]["photos_used"] == [1]
    assert body["decision"]["disposition"] == "liquidate"


# --- item 9: observability and HTTP ---------------------------------------------------------

def test_a_500_is_counted_and_logged_once(client: Any, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr("inspection.service.crud.review_queue", explode)
    with caplog.at_level(logging.ERROR):
        answer = client.get("/v1/review-queue", headers=headers("operator"))
    assert answer.status_code == 500 and error_of(answer)["code"] == "internal_error"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    metrics = client.get("/metrics").text
    assert ('returns_http_requests_total{method="GET",route="/v1/review-queue",status="500"} 1.0'
            in metrics)


def test_head_is_answered_wherever_get_is(client: Any, photo_jpeg: bytes) -> None:
    made = submit(client, [photo_jpeg]).json()["id"]
    for path in ("/healthz", "/readyz", f"/v1/inspections/{made}", f"/v1/inspections/{made}/photos/0"):
        get, head = (client.request(method, path, headers=headers("station")) for method in ("GET", "HEAD"))
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_openapi_documents_errors_limits_and_the_error_body(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/v1/inspections"]["post"]
    assert {"400", "401", "403", "413", "422", "503"} <= set(post["responses"])
    assert post["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    body = schema["components"]["schemas"]["Body_create_inspection_v1_inspections_post"]
    assert body["properties"]["photos"]["minItems"] == 1 and body["properties"]["photos"]["maxItems"] == 8
    assert "404" in schema["paths"]["/v1/inspections/{inspection_id}"]["get"]["responses"]
    assert "409" in schema["paths"]["/v1/inspections/{inspection_id}/review"]["post"]["responses"]


# --- item 10: Idempotency-Key ---------------------------------------------------------------

def count_rows(client: Any, model: Any) -> int:
    with client.app.state.service.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def test_a_retry_with_the_same_key_gets_the_same_answer_and_no_second_row(
        client: Any, photo_jpeg: bytes) -> None:
    retry = {"Idempotency-Key": "retry-7f3a"}
    first = _submit(client, photo_jpeg, retry)
    again = _submit(client, photo_jpeg, retry)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    # the stored answer again (a replay has no fresh database timing to add)
    without_timings = [{k: v for k, v in a.json().items() if k != "timings"} for a in (first, again)]
    assert without_timings[0] == without_timings[1]
    assert count_rows(client, Inspection) == 1
    other = _submit(client, encode(textured_photo(seed=9)), retry)
    assert other.status_code == 422 and error_of(other)["code"] == "idempotency_key_reused"
    # the key is the caller's own: another station may use the same string
    assert _submit(client, photo_jpeg, retry, role="station2").json()["id"] != first.json()["id"]
    assert count_rows(client, Inspection) == 2


def test_concurrent_retries_with_one_key_make_one_inspection(client: Any, photo_jpeg: bytes) -> None:
    retry = {"Idempotency-Key": "burst-1"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _submit(client, photo_jpeg, retry), range(4)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert count_rows(client, Inspection) == 1 and count_rows(client, IdempotencyKey) == 1


def _submit(client: Any, photo: bytes, extra: dict[str, str], role: str = "station") -> Any:
    return client.post("/v1/inspections", headers={**headers(role), **extra},
                       files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                       data={"return_id": "R-1", "category": "phone"})


# --- item 11: retention ---------------------------------------------------------------------

def test_purge_deletes_old_inspections_and_only_their_photos(make_app: Any, cracked_bundle: Path,
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(cracked_bundle)
    shared, old_only, new_only = (encode(textured_photo(seed=s)) for s in (1, 2, 3))
    old = [submit(client, [shared, old_only]).json()["id"], submit(client, [old_only]).json()["id"]]
    keep = submit(client, [shared, new_only]).json()["id"]
    client.post(f"/v1/inspections/{old[0]}/review", headers=headers("operator"),
                json={"decision": "confirm"})
    sessions = client.app.state.service.sessions
    with sessions() as session:
        session.execute(update(Inspection).where(Inspection.id.in_(old))
                        .values(created_at=datetime.now(UTC) - timedelta(days=100)))
        session.commit()
        stored = {row.inspection_id + str(row.index): row.path for row in session.scalars(select(Photo))}
    photos = tmp_path / "data" / "photos"
    stray = photos / "zz" / "unrelated.txt"  # not a photo of the store's: left alone
    stray.parent.mkdir(parents=True)
    stray.write_text("keep me")
    monkeypatch.delenv("RETURNS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli_main(["purge", "--older-than-days", "30", "--data-dir", str(tmp_path / "data"),
                     "--dry-run"]) == 0
    assert count_rows(client, Inspection) == 3
    assert cli_main(["purge", "--older-than-days", "30", "--data-dir", str(tmp_path / "data")]) == 0
    with sessions() as session:
        assert list(session.scalars(select(Inspection.id))) == [keep]
        for model in (Photo, FlagRow, Review):
            owners = set(session.scalars(select(model.inspection_id)))
            assert owners <= {keep}, model
    assert (photos / stored[keep + "0"]).is_file() and (photos / stored[keep + "1"]).is_file()
    assert not (photos / stored[old[1] + "0"]).exists()  # old_only: used by old ones only
    assert stray.read_text() == "keep me"
    assert client.get(f"/v1/inspections/{keep}/photos/0", headers=headers("station")).status_code == 200


def test_purge_needs_a_retention_period(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RETURNS_RETENTION_DAYS", raising=False)
    assert cli_main(["purge", "--data-dir", str(tmp_path)]) == 2
    assert "--older-than-days" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "inspection.db")


# --- item 5: a failed request leaves nothing behind -----------------------------------------

def photo_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_a_failed_commit_leaves_no_photo_behind(client: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "data" / "photos"
    kept = encode(textured_photo(seed=11))
    assert submit(client, [kept]).status_code == 201
    before = photo_files(photos)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database refused the row")
    monkeypatch.setattr("inspection.service.crud.save_inspection", refuse)
    answer = submit(client, [encode(textured_photo(seed=12)), kept])
    assert answer.status_code == 500
    assert photo_files(photos) == before  # the new photo is gone, the shared one stays


def test_half_written_photos_of_a_killed_process_are_cleaned_at_start(
        make_app: Any, cracked_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "photos" / "ab"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".partial-stale", folder / ".partial-fresh"
    for path in (stale, fresh):
        path.write_bytes(b"half a photo")
    os.utime(stale, (0, 0))  # written long ago: its writer is gone
    make_app(cracked_bundle)
    assert not stale.exists() and fresh.exists()  # a live writer's file is left alone


def test_an_unexpected_error_is_answered_not_re_raised_to_the_server(
        cracked_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (uvicorn) logs whatever the app re-raises: a 500 re-raised after being answered
    was logged twice. raise_server_exceptions=True makes the test client raise it instead."""
    from conftest import API_KEYS
    from fastapi.testclient import TestClient

    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr("inspection.service.crud.review_queue", explode)
    settings = Settings(data_dir=tmp_path / "d", bundle_dir=cracked_bundle, api_keys=API_KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=True) as strict:
        answer = strict.get("/v1/review-queue", headers=headers("operator"))
    assert answer.status_code == 500 and error_of(answer)["code"] == "internal_error"
