"""Operations: health, readiness, metrics, model hot reload, item mismatch, development mode
versus keys required, and the catch-all that never lets a bare 500 out."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import add_anomaly_detector, write_references
from conftest import error_of, headers, submit

from inspection.cli import main as cli_main
from inspection.decide import DEFAULT_POLICY
from inspection.engine import Engine
from inspection.errors import BundleError
from inspection.images import decode_photo
from inspection.service import serve
from inspection.service.runtime import ModelHolder


def test_health_ready_and_metrics(client: Any, photo_jpeg: bytes) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    submit(client, [photo_jpeg])
    text = client.get("/metrics").text
    assert 'returns_flags_raised_total{kind="damage_found"} 1.0' in text
    assert 'returns_http_requests_total{method="POST",route="/v1/inspections",status="201"}' in text
    assert "returns_http_request_seconds_bucket" in text
    assert 'returns_model_info{model_id="tiny-test-1.0.0-' in text


def test_not_ready_without_a_model(make_app: Any, tmp_path: Path, photo_jpeg: bytes) -> None:
    client = make_app(tmp_path / "no-bundle-here")
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "no-bundle-here" in error_of(ready)["message"]
    assert submit(client, [photo_jpeg]).status_code == 503


def test_reload_swaps_the_model(client: Any, clean_bundle: Path, photo_jpeg: bytes) -> None:
    before = client.get("/v1/models/current", headers=headers("admin")).json()
    assert before["version"] == "1.0.0"
    assert client.post("/v1/models/reload", headers=headers("operator"),
                       json={"bundle": str(clean_bundle)}).status_code == 403
    reloaded = client.post("/v1/models/reload", headers=headers("admin"),
                           json={"bundle": str(clean_bundle)})
    assert reloaded.status_code == 200 and reloaded.json()["version"] == "2.0.0"
    assert submit(client, [photo_jpeg]).json()["model"]["version"] == "2.0.0"
    # without a body: reload the current bundle from disk
    assert client.post("/v1/models/reload", headers=headers("admin")).json()["version"] == "2.0.0"


@pytest.mark.parametrize("damage", ["onnx_bytes", "missing_card"])
def test_a_bad_bundle_is_refused_and_the_old_model_keeps_serving(
        client: Any, clean_bundle: Path, tmp_path: Path, photo_jpeg: bytes, damage: str) -> None:
    bad = Path(shutil.copytree(clean_bundle, tmp_path / "bad"))
    if damage == "onnx_bytes":
        with open(bad / "model.onnx", "ab") as handle:
            handle.write(b"tampered")
    else:
        (bad / "model_card.json").unlink()
    refused = client.post("/v1/models/reload", headers=headers("admin"), json={"bundle": str(bad)})
    assert refused.status_code == 409 and error_of(refused)["code"] == "bundle_rejected"
    assert submit(client, [photo_jpeg]).json()["model"]["version"] == "1.0.0"
    assert 'returns_model_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_item_mismatch_against_reference_embeddings(make_app: Any, clean_bundle: Path,
                                                    tmp_path: Path, photo_jpeg: bytes) -> None:
    bundle = Path(shutil.copytree(clean_bundle, tmp_path / "with-refs"))
    engine = Engine.load(bundle)
    embedding = engine.predict([decode_photo(photo_jpeg, engine.input_size).rgb])[0].embedding
    # phones look like this photo; shoes look like its opposite
    write_references(bundle, {"phone": embedding[None, :], "shoe": -embedding[None, :]})
    client = make_app(bundle)
    as_phone = submit(client, [photo_jpeg], category="phone").json()
    assert as_phone["photos"][0]["item_similarity"] == pytest.approx(1.0, abs=1e-3)
    assert all(f["kind"] != "item_mismatch" for f in as_phone["flags"])
    as_shoe = submit(client, [photo_jpeg], category="shoe").json()
    mismatch = [f for f in as_shoe["flags"] if f["kind"] == "item_mismatch"]
    assert mismatch and mismatch[0]["score"] < mismatch[0]["threshold"]
    assert as_shoe["decision"]["refund"] == "hold_for_review"
    # a category without references: said so, not silently passed
    as_headphones = submit(client, [photo_jpeg], category="headphones").json()
    assert {"kind": "item_mismatch", "reason": "no reference photos for category 'headphones'"} \
        in as_headphones["skipped_checks"]


def test_development_mode_accepts_requests_without_keys(make_app: Any, cracked_bundle: Path,
                                                        photo_jpeg: bytes) -> None:
    dev = make_app(cracked_bundle, api_keys="", dev_mode=True)
    body = dev.post("/v1/inspections", files=[("photos", ("a.jpg", photo_jpeg))],
                    data={"return_id": "R"}).json()
    assert dev.get(f"/v1/inspections/{body['id']}").status_code == 200
    assert dev.get("/v1/review-queue").status_code == 200


def test_without_keys_and_without_dev_mode_every_call_is_refused(make_app: Any,
                                                                 cracked_bundle: Path) -> None:
    locked = make_app(cracked_bundle, api_keys="")
    response = locked.get("/v1/review-queue")
    assert response.status_code == 401 and "no API keys" in error_of(response)["message"]


def _serve_args(host: str) -> argparse.Namespace:
    return argparse.Namespace(host=host, port=8000, bundle=None, data_dir=None, workers=1)


def test_serve_refuses_a_public_host_without_keys(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RETURNS_API_KEYS", raising=False)
    assert cli_main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in capsys.readouterr().err


def test_serve_on_loopback_without_keys_is_loud_dev_mode(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("RETURNS_API_KEYS", raising=False)
    started: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.update(k))
    # serve exports these for its workers; set them here so monkeypatch restores them after
    for name, value in (("RETURNS_BUNDLE_DIR", "models/default"), ("RETURNS_DATA_DIR", "data"),
                        ("RETURNS_DEV_MODE", "false")):
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING):
        assert serve.main(_serve_args("127.0.0.1")) == 0
    assert "DEVELOPMENT MODE" in caplog.text and started["host"] == "127.0.0.1"
    assert serve.is_loopback("::1") and serve.is_loopback("localhost")
    assert not serve.is_loopback("0.0.0.0") and not serve.is_loopback("example.com")


def test_serve_with_keys_is_not_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETURNS_API_KEYS", "long-enough-key:admin")
    assert serve.settings_for(_serve_args("0.0.0.0")).dev_mode is False
    monkeypatch.setenv("RETURNS_API_KEYS", "short:admin")
    with pytest.raises(Exception, match="shorter than 8"):
        serve.settings_for(_serve_args("0.0.0.0"))


def test_unexpected_errors_are_json_500(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr("inspection.service.crud.review_queue", explode)
    response = client.get("/v1/review-queue", headers=headers("operator"))
    assert response.status_code == 500 and error_of(response)["code"] == "internal_error"
    assert "boom" not in response.text  # no internals leak


def test_unknown_route_is_json_404(client: Any) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_openapi_documents_the_answer(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/v1/inspections"]["post"]["responses"]["201"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("InspectionPublic")
    assert "FlagPublic" in schema["components"]["schemas"]


def test_anomaly_detector_flags_and_draws_a_map(make_app: Any, clean_bundle: Path,
                                                tmp_path: Path, photo_jpeg: bytes) -> None:
    bundle = Path(shutil.copytree(clean_bundle, tmp_path / "with-anomaly"))
    add_anomaly_detector(bundle, "phone", threshold=-1.0)  # every phone photo is anomalous
    add_anomaly_detector(bundle, "shoe", threshold=1e9)  # no shoe photo is
    client = make_app(bundle)
    phone = submit(client, [photo_jpeg], category="phone").json()
    anomaly = [f for f in phone["flags"] if f["kind"] == "anomaly"]
    assert anomaly and anomaly[0]["photo"] == 0 and anomaly[0]["threshold"] == -1.0
    assert phone["photos"][0]["anomaly_score"] == anomaly[0]["score"]
    assert phone["decision"]["refund"] == "hold_for_review"
    heat = client.get(f"/v1/inspections/{phone['id']}/photos/0/heatmap", params={"label": "anomaly"},
                      headers=headers("station"))
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    shoe = submit(client, [photo_jpeg], category="shoe").json()
    assert all(f["kind"] != "anomaly" for f in shoe["flags"])
    assert shoe["photos"][0]["anomaly_score"] is not None


def test_an_upright_item_detector_scores_through_the_api(make_app: Any, clean_bundle: Path,
                                                         tmp_path: Path, photo_jpeg: bytes) -> None:
    """A detector fitted on upright items (`anomaly fit --crop upright`): the service cuts the
    item out of a tray photo, scores it and draws the map back; a photo with no tray is scored
    whole."""
    import io

    import numpy as np
    from PIL import Image

    from training.anomaly.placement import Placement, place
    bundle = Path(shutil.copytree(clean_bundle, tmp_path / "upright"))
    add_anomaly_detector(bundle, "phone", threshold=-1.0, crop="upright")
    item = np.full((240, 320, 3), 128, np.uint8)
    item[60:180, 40:280] = (40, 60, 150)  # a phone lying on a grey tray
    tray = io.BytesIO()
    Image.fromarray(place(item, Placement(35.0, 0.9, (0.05, 0.0)))).save(tray, "JPEG")
    whole = Path(shutil.copytree(clean_bundle, tmp_path / "whole"))
    add_anomaly_detector(whole, "phone", threshold=-1.0)
    scores = {}
    for name, served in (("upright", bundle), ("whole", whole)):
        client = make_app(served)
        for photo_name, photo in (("tray", tray.getvalue()), ("no tray", photo_jpeg)):
            answer = submit(client, [photo], category="phone")
            assert answer.status_code == 201, answer.text
            body = answer.json()
            assert any(f["kind"] == "anomaly" for f in body["flags"])
            heat = client.get(f"/v1/inspections/{body['id']}/photos/0/heatmap",
                              params={"label": "anomaly"}, headers=headers("station"))
            assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
            scores[name, photo_name] = body["photos"][0]["anomaly_score"]
    assert scores["upright", "tray"] != pytest.approx(scores["whole", "tray"])  # the item scored
    assert scores["upright", "no tray"] == pytest.approx(scores["whole", "no tray"])  # whole


def test_a_reload_leaves_requests_in_flight_on_the_old_model(cracked_bundle: Path,
                                                             clean_bundle: Path,
                                                             photo_jpeg: bytes) -> None:
    holder = ModelHolder(bundle_dir=cracked_bundle)
    in_flight = holder.reload()  # what a request took at its start
    holder.reload(clean_bundle)
    assert holder.current is not None and holder.current.card.version == "2.0.0"
    rgb = decode_photo(photo_jpeg).rgb
    assert in_flight.engine.predict([rgb])[0].top("condition")[0] == "D"  # still answers
    with pytest.raises(BundleError):
        holder.reload(cracked_bundle / "missing")
    assert holder.current.card.version == "2.0.0"  # the failed reload changed nothing


def test_the_policy_file_setting_changes_the_rules(make_app: Any, cracked_bundle: Path,
                                                   tmp_path: Path, photo_jpeg: bytes) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("disposition: liquidate",
                                                         "disposition: return_to_vendor"))
    client = make_app(cracked_bundle, policy_file=policy)
    assert submit(client, [photo_jpeg]).json()["decision"]["disposition"] == "return_to_vendor"


def test_serve_refuses_a_broken_policy_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("rules: [{name: x, when: {colour: red}, disposition: d, refund: r}]\n"
                      "default: {disposition: d, refund: r}\n")
    monkeypatch.setenv("RETURNS_POLICY_FILE", str(broken))
    assert cli_main(["serve"]) == 2
    assert "unknown condition(s) ['colour']" in capsys.readouterr().err
