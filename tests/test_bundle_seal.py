"""Issue 9, item 1: every file a decision depends on is bound by sha256 (bundle.json), checked at
load and at reload; a bundle that fails is refused with a message naming the file while the old
model keeps serving, and at start-up it gives /readyz 503, never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_factory import CLEAN_ITEM, add_anomaly_detector, build_bundle, write_references
from conftest import error_of, headers

from inspection.bundle import KEY_ENV, SEAL_FILE, seal_bundle
from inspection.cli import main as cli_main
from inspection.errors import BundleError
from inspection.loaded_model import LoadedModel


@pytest.fixture
def full_bundle(tmp_path: Path) -> Path:
    """Thresholds, temperatures, references and an anomaly detector: every kind of file."""
    bundle = build_bundle(tmp_path / "full", biases=CLEAN_ITEM, version="3.0.0",
                          thresholds={"damage": {"crack": 0.728}}, temperatures={"damage": 1.5})
    write_references(bundle, {"phone": np.eye(16, dtype=np.float32)[:3]})
    add_anomaly_detector(bundle, "phone", threshold=2.0)
    return bundle


def edit_card(bundle: Path, old: str, new: str) -> None:
    card = bundle / "model_card.json"
    text = card.read_text()
    assert old in text
    card.write_text(text.replace(old, new, 1))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_sealed_bundle_loads(full_bundle: Path) -> None:
    model = LoadedModel.load(full_bundle)
    seal = json.loads((full_bundle / SEAL_FILE).read_text())
    assert set(seal["files"]) == {"model.onnx", "model_card.json", "references.npz",
                                  "anomaly/phone.onnx"}
    assert seal["model_id"] == model.card.model_id


@pytest.mark.parametrize(("tamper", "named"), [
    (lambda b: edit_card(b, "0.728", "9.728"), "model_card.json"),  # a damage threshold
    (lambda b: edit_card(b, '"damage": 1.5', '"damage": 2.5'), "model_card.json"),  # a temperature
    (lambda b: flip_byte(b / "references.npz", 200), "references.npz"),
    (lambda b: flip_byte(b / "anomaly" / "phone.onnx", 40), "anomaly/phone.onnx"),
    (lambda b: flip_byte(b / "model.onnx", 300), "model.onnx"),
    (lambda b: (b / "references.npz").unlink(), "references.npz is missing"),
    (lambda b: (b / SEAL_FILE).unlink(), "not sealed"),
    (lambda b: shutil.copy(b / "anomaly" / "phone.onnx", b / "anomaly" / "shoe.onnx"),
     "anomaly/shoe.onnx is not sealed"),
    (lambda b: (b / "policy.yaml").write_text("rules: []\n"), "policy.yaml is not sealed"),
    (lambda b: (b / SEAL_FILE).write_text("{not json"), "not a readable seal"),
])
def test_any_change_to_a_decision_file_is_refused(full_bundle: Path, tamper: Any, named: str) -> None:
    tamper(full_bundle)
    with pytest.raises(BundleError, match=named.replace(".", r"\.")):
        LoadedModel.load(full_bundle)


def test_a_deliberate_change_loads_after_resealing(full_bundle: Path) -> None:
    edit_card(full_bundle, "0.728", "0.9")
    seal_bundle(full_bundle)
    assert LoadedModel.load(full_bundle).card.thresholds["damage"]["crack"] == 0.9


def test_a_signed_seal_needs_the_key(full_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "the-right-key")
    with pytest.raises(BundleError, match="signature missing or wrong"):
        LoadedModel.load(full_bundle)  # sealed without a key
    seal_bundle(full_bundle)
    LoadedModel.load(full_bundle)
    # re-sealed by someone without the key after an edit: refused
    edit_card(full_bundle, "0.728", "9.728")
    monkeypatch.setenv(KEY_ENV, "a-wrong-key")
    seal_bundle(full_bundle)
    monkeypatch.setenv(KEY_ENV, "the-right-key")
    with pytest.raises(BundleError, match="signature missing or wrong"):
        LoadedModel.load(full_bundle)


def test_a_crafted_seal_cannot_name_files_outside_the_bundle(full_bundle: Path) -> None:
    seal = json.loads((full_bundle / SEAL_FILE).read_text())
    seal["files"]["../../etc/hostname"] = "0" * 64
    (full_bundle / SEAL_FILE).write_text(json.dumps(seal))
    with pytest.raises(BundleError, match="not a file of this bundle"):
        LoadedModel.load(full_bundle)


def test_a_sealed_but_unreadable_file_is_a_bundle_error(full_bundle: Path) -> None:
    """Corrupt data sealed as is (an operator sealing a broken copy): refused, not a crash."""
    (full_bundle / "references.npz").write_bytes(b"PK\x03\x04 not really a zip")
    seal_bundle(full_bundle)
    with pytest.raises(BundleError, match="references"):
        LoadedModel.load(full_bundle)


def test_reload_of_a_tampered_card_is_refused_and_the_old_model_serves(
        make_app: Any, full_bundle: Path, clean_bundle: Path) -> None:
    client = make_app(clean_bundle)
    edit_card(full_bundle, "0.728", "9.728")
    refused = client.post("/v1/models/reload", headers=headers("admin"),
                          json={"bundle": str(full_bundle)})
    assert refused.status_code == 409
    assert "model_card.json changed" in error_of(refused)["message"]
    assert client.get("/v1/models/current", headers=headers("admin")).json()["version"] == "2.0.0"
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("corrupt", ["tampered", "sealed_garbage"])
def test_a_bad_bundle_at_start_up_is_503_not_a_crash(make_app: Any, full_bundle: Path,
                                                      corrupt: str) -> None:
    flip_byte(full_bundle / "references.npz", 200)
    if corrupt == "sealed_garbage":
        (full_bundle / "references.npz").write_bytes(b"garbage")
        seal_bundle(full_bundle)
    client = make_app(full_bundle)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "references" in error_of(ready)["message"]
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("where", ["file", "nul", "relative_missing"])
def test_reload_to_a_path_that_is_no_bundle_is_refused(client: Any, tmp_path: Path,
                                                       where: str) -> None:
    target = {"file": str(tmp_path / "a-file"), "nul": "models/de\x00fault",
              "relative_missing": "no/such/bundle"}[where]
    (tmp_path / "a-file").write_text("not a bundle")
    answer = client.post("/v1/models/reload", headers=headers("admin"), json={"bundle": target})
    assert answer.status_code in (409, 422)
    assert error_of(answer)["field"] == "bundle"


def test_bundle_verify_and_seal_commands(full_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bundle", "verify", str(full_bundle)]) == 0
    edit_card(full_bundle, "0.728", "9.728")
    assert cli_main(["bundle", "verify", str(full_bundle)]) == 2
    assert "model_card.json changed" in capsys.readouterr().err
    assert cli_main(["bundle", "seal", str(full_bundle)]) == 0
    assert cli_main(["bundle", "verify", str(full_bundle)]) == 0


def test_the_default_bundle_is_sealed() -> None:
    default = Path(__file__).parents[1] / "models" / "default"
    if not (default / "model_card.json").is_file():
        pytest.skip("models/default is not in this checkout")
    LoadedModel.load(default)


def test_a_bundle_can_pin_the_policy_it_was_calibrated_with(make_app: Any, full_bundle: Path,
                                                            tmp_path: Path) -> None:
    from inspection.decide import DEFAULT_POLICY

    seal_bundle(full_bundle, policy=DEFAULT_POLICY)
    edit_card(full_bundle, "0.728", "0.73")
    seal_bundle(full_bundle)  # a re-seal by a tool keeps the pin
    assert json.loads((full_bundle / SEAL_FILE).read_text())["policy_sha256"]
    assert make_app(full_bundle).get("/readyz").status_code == 200
    edited = tmp_path / "policy.yaml"
    edited.write_text(DEFAULT_POLICY.read_text().replace("damage: 0.5", "damage: 0.9"))
    other = make_app(full_bundle, policy_file=edited, data_dir=tmp_path / "other")
    ready = other.get("/readyz")
    assert ready.status_code == 503 and "sealed for a policy" in error_of(ready)["message"]
    assert cli_main(["bundle", "verify", str(full_bundle), "--policy", str(edited)]) == 2
    assert cli_main(["bundle", "verify", str(full_bundle)]) == 0
