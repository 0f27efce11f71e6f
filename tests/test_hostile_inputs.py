"""Issue 9: every hostile request is a 4xx with the JSON error body, on SQLite and PostgreSQL
(NUL bytes, lengths, overflows and surrogates used to reach PostgreSQL and come back as 500s).

One app per database for the whole module (starting one per case would dominate the run); each
case is one request and its expected status, and the service must still be healthy after it.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import API_KEYS, KEYS, empty_postgres, encode, error_of, textured_photo
from PIL import Image


@dataclass(frozen=True)
class Ids:
    inspection: str  # flagged, not reviewed
    reviewed: str  # already reviewed once
    foreign: str  # made by station-B


@dataclass
class Hostile:
    client: Any
    ids: Ids
    bundle: Path
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)


def key(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def post_inspection(client: Any, role: str = "station", photos: list[tuple[str, bytes]] | None = None,
                    headers: dict[str, str] | None = None, **form: str) -> Any:
    files = [("photos", (name, data, "application/octet-stream"))
             for name, data in (photos if photos is not None else [("p.jpg", jpeg())])]
    data = {"return_id": "R-1", "category": "phone", **form}
    return client.post("/v1/inspections", headers={**key(role), **(headers or {})}, files=files,
                       data=data)


@functools.cache
def jpeg() -> bytes:
    return encode(textured_photo())


@functools.cache
def png(width: int, height: int, mode: str = "1", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hostile(request: pytest.FixtureRequest, cracked_bundle: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    from fastapi.testclient import TestClient

    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    database = empty_postgres() if request.param == "postgresql" else None
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    settings = Settings(data_dir=tmp / "data", bundle_dir=cracked_bundle, api_keys=API_KEYS,
                        database_url=database)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        made = [post_inspection(client).json()["id"] for _ in range(2)]
        foreign = post_inspection(client, role="station2").json()["id"]
        reviewed = client.post(f"/v1/inspections/{made[1]}/review", headers=key("operator"),
                               json={"decision": "confirm"})
        assert reviewed.status_code == 201
        yield Hostile(client, Ids(made[0], made[1], foreign), cracked_bundle, tmp)


Case = Callable[[Hostile], Any]
NUL = "\x00"
REVIEW = "/v1/inspections/{}/review"


def review(body: Any, which: str = "inspection", role: str = "operator", raw: bool = False) -> Case:
    def send(h: Hostile) -> Any:
        target = REVIEW.format(getattr(h.ids, which))
        if raw:
            return h.client.post(target, headers={**key(role), "Content-Type": "application/json"},
                                 content=body)
        return h.client.post(target, headers=key(role), json=body)
    return send


def get(path: str, role: str = "operator", **params: Any) -> Case:
    return lambda h: h.client.get(path.format(ids=h.ids), headers=key(role), params=params)


def raw_upload(h: Hostile, filename: bytes) -> Any:
    """A multipart body written by hand: clients escape what a hostile one would send raw."""
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"return_id\"\r\n\r\nR-1\r\n"
            b"--b0undary\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"" + filename
            + b"\"\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg() + b"\r\n--b0undary--\r\n")
    return h.client.post("/v1/inspections", content=body, headers={
        **key("station"), "Content-Type": "multipart/form-data; boundary=b0undary"})


def ui_get(h: Hostile, path: str, **params: str) -> Any:
    from inspection.service.ui import COOKIE
    from inspection.service.ui_auth import session_token

    token = session_token(h.client.app.state.service, KEYS["operator"])
    return h.client.get(path, params=params, headers={"Cookie": f"{COOKIE}={token}"})


def put_sku(h: Hostile, sku: str, **form: str) -> Any:
    return h.client.put(f"/v1/catalog/{quote(sku, safe='')}", headers=key("admin"),
                        files=[("photos", ("p.jpg", jpeg(), "image/jpeg"))],
                        data={"category": "phone", **form})


def inspection_form(**kwargs: Any) -> Case:
    return lambda h: post_inspection(h.client, **kwargs)


CASES: dict[str, tuple[Case, int]] = {
    # --- POST /v1/inspections: form fields --------------------------------------------------
    "return_id NUL": (inspection_form(return_id=f"R{NUL}1"), 422),
    "sku NUL": (inspection_form(sku=f"S{NUL}"), 422),
    "category NUL": (inspection_form(category=f"phone{NUL}"), 422),
    "return_id empty": (inspection_form(return_id=""), 422),
    "return_id 201 chars": (inspection_form(return_id="R" * 201), 422),
    "sku 201 chars": (inspection_form(sku="S" * 201), 422),
    "category 101 chars": (inspection_form(category="c" * 101), 422),
    "return_id newline": (inspection_form(return_id="R-1\nSet-Cookie: x"), 422),
    "return_id DEL": (inspection_form(return_id="R\x7f"), 422),
    "return_id C1 control": (inspection_form(return_id="R\x85"), 422),
    "return_id escape": (inspection_form(return_id="\x1b[31mred"), 422),
    "unknown category": (inspection_form(category="spaceship"), 422),
    "source bogus": (inspection_form(source="robot"), 422),
    "station claims customer": (inspection_form(source="customer"), 403),
    "operator submits": (inspection_form(role="operator"), 403),
    "missing return_id": (lambda h: h.client.post("/v1/inspections", headers=key("station"),
                                                  files=[("photos", ("p.jpg", jpeg(), "image/jpeg"))]),
                          422),
    # --- POST /v1/inspections: photos --------------------------------------------------------
    "filename 301 chars": (inspection_form(photos=[("f" * 297 + ".jpg", jpeg())]), 422),
    "filename control char": (lambda h: raw_upload(h, b"a\x01b.jpg"), 422),
    "filename NUL": (lambda h: raw_upload(h, b"a\x00b.jpg"), 422),
    "no photos": (lambda h: h.client.post("/v1/inspections", headers=key("station"),
                                          data={"return_id": "R-1"}), 422),
    "nine photos": (inspection_form(photos=[("p.jpg", jpeg())] * 9), 422),
    "empty photo": (inspection_form(photos=[("p.jpg", b"")]), 422),
    "text as photo": (inspection_form(photos=[("p.jpg", b"hello, I am not a photo")]), 422),
    "truncated jpeg": (inspection_form(photos=[("p.jpg", jpeg()[:400])]), 422),
    "png signature only": (inspection_form(photos=[("p.png", b"\x89PNG\r\n\x1a\n")]), 422),
    "1-bit png bomb 8000x7999": (inspection_form(photos=[("b.png", png(8000, 7999))]), 413),
    "tiff 6000x6000": (inspection_form(photos=[("b.tif", png(6000, 6000, "1", "TIFF"))]), 413),
    "gif 5000x5000": (inspection_form(photos=[("b.gif", png(5000, 5000, "L", "GIF"))]), 413),
    "eight 4000x4000 pngs": (inspection_form(photos=[("b.png", png(4000, 4000))] * 8), 413),
    "json instead of multipart": (lambda h: h.client.post("/v1/inspections", headers=key("station"),
                                                          json={"return_id": "R-1"}), 422),
    "broken multipart": (lambda h: h.client.post(
        "/v1/inspections", content=b"--x\r\nContent-Disposition: form-data; name=\"return_id\"\r\n",
        headers={**key("station"), "Content-Type": "multipart/form-data; boundary=x"}), 422),
    "declared body of 10 GB": (lambda h: h.client.post(
        "/v1/inspections", content=b"x", headers={**key("station"), "Content-Length": "10000000000"}),
        413),
    "idempotency key 201 chars": (inspection_form(headers={"Idempotency-Key": "k" * 201}), 422),
    "idempotency key control char": (inspection_form(headers={"Idempotency-Key": "k\x01"}), 422),
    # --- authentication ----------------------------------------------------------------------
    "no key": (lambda h: h.client.get(f"/v1/inspections/{h.ids.inspection}"), 401),
    "unknown key": (lambda h: h.client.get(f"/v1/inspections/{h.ids.inspection}",
                                           headers={"X-API-Key": "not-a-key-at-all"}), 401),
    "empty key": (lambda h: h.client.get(f"/v1/inspections/{h.ids.inspection}",
                                         headers={"X-API-Key": ""}), 401),
    # --- GET /v1/inspections/{id} and its photos ----------------------------------------------
    "id with NUL": (get("/v1/inspections/abc%00def"), 404),
    "id 10k chars": (get("/v1/inspections/" + "a" * 10_000), 404),
    "id unicode": (get("/v1/inspections/%C3%A9t%C3%A9"), 404),
    "id surrogate escape": (get("/v1/inspections/%ED%A0%80"), 404),
    "id unknown hex": (get("/v1/inspections/" + "0" * 32), 404),
    "id sql": (get("/v1/inspections/1'%20OR%20'1'='1"), 404),
    "someone else's inspection": (get("/v1/inspections/{ids.foreign}", role="station"), 404),
    "customer reads a station's": (get("/v1/inspections/{ids.inspection}", role="customer"), 404),
    "photo -1": (get("/v1/inspections/{ids.inspection}/photos/-1"), 404),
    "photo 2**70": (get("/v1/inspections/{ids.inspection}/photos/" + str(2 ** 70)), 404),
    "photo not a number": (get("/v1/inspections/{ids.inspection}/photos/abc"), 422),
    "heatmap label NUL": (get("/v1/inspections/{ids.inspection}/photos/0/heatmap", label=NUL), 422),
    "heatmap label 1000 chars": (get("/v1/inspections/{ids.inspection}/photos/0/heatmap",
                                     label="x" * 1000), 422),
    "heatmap no label": (get("/v1/inspections/{ids.inspection}/photos/0/heatmap"), 422),
    "heatmap unknown label": (get("/v1/inspections/{ids.inspection}/photos/0/heatmap", label="zz"), 422),
    # --- GET /v1/review-queue ------------------------------------------------------------------
    "offset 2**63": (get("/v1/review-queue", offset=str(2 ** 63)), 422),
    "offset -1": (get("/v1/review-queue", offset="-1"), 422),
    "offset text": (get("/v1/review-queue", offset="ten"), 422),
    "limit 0": (get("/v1/review-queue", limit="0"), 422),
    "limit 10000": (get("/v1/review-queue", limit="10000"), 422),
    "flag NUL": (get("/v1/review-queue", flag=f"damage{NUL}"), 422),
    "flag 51 chars": (get("/v1/review-queue", flag="f" * 51), 422),
    "sku filter NUL": (get("/v1/review-queue", sku=NUL), 422),
    "cursor garbage": (get("/v1/review-queue", cursor="bm90IGEgY3Vyc29y"), 422),
    "cursor NUL": (get("/v1/review-queue", cursor=NUL), 422),
    "cursor 10k": (get("/v1/review-queue", cursor="A" * 10_000), 422),
    "queue source bogus": (get("/v1/review-queue", source="robot"), 422),
    "queue by a station": (get("/v1/review-queue", role="station"), 403),
    # --- POST /v1/inspections/{id}/review -------------------------------------------------------
    "note NUL": (review({"decision": "confirm", "note": f"ok{NUL}"}), 422),
    "note 2001 chars": (review({"decision": "confirm", "note": "n" * 2001}), 422),
    "note lone surrogate": (review(b'{"decision": "confirm", "note": "\\ud800"}', raw=True), 422),
    "note escape sequence": (review({"decision": "confirm", "note": "\x1b]0;pwned\x07"}), 422),
    "disposition 51 chars": (review({"decision": "confirm", "disposition": "d" * 51}), 422),
    "disposition unknown": (review({"decision": "confirm", "disposition": "throw_in_the_sea"}), 422),
    "disposition NUL": (review({"decision": "confirm", "disposition": f"restock{NUL}"}), 422),
    "100000 duplicate labels": (review({"decision": "correct",
                                        "labels": {"damage": ["crack"] * 100_000}}), 422),
    "duplicate label": (review({"decision": "correct", "labels": {"damage": ["crack", "crack"]}}), 422),
    "unknown head": (review({"decision": "correct", "labels": {"colour": ["red"]}}), 422),
    "unknown label": (review({"decision": "correct", "labels": {"damage": ["melted"]}}), 422),
    "head key NUL": (review({"decision": "correct", "labels": {f"damage{NUL}": ["crack"]}}), 422),
    "two labels on a single head": (review({"decision": "correct",
                                            "labels": {"condition": ["A", "B"]}}), 422),
    "labels not a dict": (review({"decision": "correct", "labels": ["crack"]}), 422),
    "decision maybe": (review({"decision": "maybe"}), 422),
    "body not json": (review(b"{decision: confirm", raw=True), 422),
    "body a json array": (review(b"[]", raw=True), 422),
    "body huge number": (review(b'{"decision": "confirm", "override": 1e999}', raw=True), 422),
    "second review": (review({"decision": "confirm"}, which="reviewed"), 409),
    "operator override": (review({"decision": "confirm", "override": True}, which="reviewed"), 403),
    "review by a station": (review({"decision": "confirm"}, role="station"), 403),
    "review of id with NUL": (lambda h: h.client.post("/v1/inspections/x%00y/review",
                                                      headers=key("operator"),
                                                      json={"decision": "confirm"}), 404),
    # --- /v1/models -----------------------------------------------------------------------------
    "reload to a file": (lambda h: h.client.post("/v1/models/reload", headers=key("admin"),
                                                 json={"bundle": str(h.bundle / "model.onnx")}), 409),
    "reload to NUL path": (lambda h: h.client.post("/v1/models/reload", headers=key("admin"),
                                                   json={"bundle": f"/tmp/{NUL}x"}), 409),
    "reload to nowhere": (lambda h: h.client.post("/v1/models/reload", headers=key("admin"),
                                                  json={"bundle": "/no/such/dir"}), 409),
    "reload bundle not a string": (lambda h: h.client.post("/v1/models/reload", headers=key("admin"),
                                                           json={"bundle": 42}), 422),
    "reload by an operator": (lambda h: h.client.post("/v1/models/reload", headers=key("operator")), 403),
    "models/current by a station": (get("/v1/models/current", role="station"), 403),
    "models/current by an operator": (get("/v1/models/current", role="operator"), 403),
    # --- /v1/catalog (issue 8) -----------------------------------------------------------------
    "catalog sku NUL": (lambda h: put_sku(h, f"S{NUL}1"), 422),
    "catalog sku 201 chars": (lambda h: put_sku(h, "S" * 201), 422),
    "catalog sku control char": (lambda h: put_sku(h, "S\x1b1"), 422),
    "catalog display_name NUL": (lambda h: put_sku(h, "SKU-1", display_name=f"a{NUL}"), 422),
    "catalog accessory_kit NUL": (lambda h: put_sku(h, "SKU-1", accessory_kit=f"charger{NUL}"), 422),
    "catalog category NUL": (lambda h: put_sku(h, "SKU-1", category=f"phone{NUL}"), 422),
    "catalog get sku NUL": (get("/v1/catalog/a%00b"), 404),
    "catalog get photo NUL": (get("/v1/catalog/a%00b/photos/0"), 404),
    "catalog delete sku NUL": (lambda h: h.client.delete("/v1/catalog/a%00b", headers=key("admin")), 404),
    # --- /ui (signed in) ---------------------------------------------------------------------------
    "ui queue offset 2**63": (lambda h: ui_get(h, "/ui/", offset=str(2 ** 63)), 422),
    "ui queue flag NUL": (lambda h: ui_get(h, "/ui/", flag=NUL), 422),
    # --- HTTP -------------------------------------------------------------------------------------
    "DELETE an inspection": (lambda h: h.client.delete(f"/v1/inspections/{h.ids.inspection}",
                                                       headers=key("admin")), 405),
    "PUT the queue": (lambda h: h.client.put("/v1/review-queue", headers=key("admin")), 405),
    "unknown route": (get("/v1/secrets"), 404),
    "path traversal": (get("/v1/inspections/..%2F..%2Fetc%2Fpasswd"), 404),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request_is_a_4xx_with_the_error_body(hostile: Hostile, name: str) -> None:
    send, expected = CASES[name]
    answer = send(hostile)
    assert answer.status_code == expected, (name, answer.status_code, answer.text[:500])
    error = error_of(answer)
    assert error["message"]
    assert hostile.client.get("/healthz").status_code == 200


def test_a_405_says_what_is_allowed(hostile: Hostile) -> None:
    answer = hostile.client.delete(f"/v1/inspections/{hostile.ids.inspection}", headers=key("admin"))
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_a_failed_request_leaves_no_photo_behind(hostile: Hostile) -> None:
    photos = hostile.tmp / "data" / "photos"
    before = sorted(p.name for p in photos.rglob("*"))
    unique = encode(textured_photo(seed=4242))
    refused = post_inspection(hostile.client, photos=[("new.jpg", unique)], category="spaceship")
    assert refused.status_code == 422
    assert sorted(p.name for p in photos.rglob("*")) == before


def test_nothing_hostile_was_stored(hostile: Hostile) -> None:
    """After every case above: the queue holds only what the fixture made, all of it clean."""
    page = hostile.client.get("/v1/review-queue", headers=key("operator")).json()
    for item in page["items"]:
        assert json.dumps(item).isascii() or "\\u0000" not in json.dumps(item)
        assert item["return_id"] == "R-1"
