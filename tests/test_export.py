"""`returns-inspect export`: ONNX bundle from a checkpoint, parity-checked on real photos, bound
to its card; a failed check leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from tiny_checkpoint import write_checkpoint, write_photo_set

import training.export
from inspection.card import ONNX_CARD_ID_KEY, read_card, verify_bundle
from inspection.cli import main as cli
from inspection.engine import Engine
from inspection.errors import BundleError
from inspection.manifest import file_sha256

pytestmark = pytest.mark.slow  # builds EfficientNet-Lite0 and exports it: a few seconds each


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    manifest = write_photo_set(root / "photos")
    return write_checkpoint(root / "run" / "best.pt", manifest), manifest


@pytest.fixture(scope="module")
def bundle(run: tuple[Path, Path]) -> Path:
    checkpoint, _ = run
    out = checkpoint.parent.parent / "models" / "tiny"
    assert cli(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--version", "1.2.3",
                "--parity-photos", "8"]) == 0
    return out


def test_export_passes_parity_and_binds_the_card(bundle: Path, run: tuple[Path, Path]) -> None:
    _, manifest = run
    card = verify_bundle(bundle)
    parity = card.export["parity"]
    assert parity["photos"] == 8 and parity["max_abs_diff"] <= 1e-4
    assert parity["top1_changed"] == {"condition": 0}
    assert card.export["opset"] >= 17 and card.version == "1.2.3" and card.name == "tiny"
    assert card.dataset["manifest_sha256"] == file_sha256(manifest)
    assert card.training["libraries"]["numpy"] == np.__version__  # the releases that trained it
    assert card.preprocessing.input_size == 64
    assert card.thresholds["low_confidence"] == {"condition": 0.5}
    graph = onnx.load(str(bundle / "model.onnx"))
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    assert metadata[ONNX_CARD_ID_KEY] == card.model_id
    expected = ["condition_logits", "damage_logits", "accessories_logits", "embedding", "damage_cam",
                "accessories_cam", "patch_features"]
    assert [output.name for output in graph.graph.output] == expected
    assert list(card.outputs) == expected
    engine = Engine.load(bundle)
    for batch in (1, 3):  # dynamic batch axis
        raw = engine.run(np.zeros((batch, 3, 64, 64), dtype=np.float32))
        assert raw["condition_logits"].shape == (batch, 4)
        assert raw["embedding"].shape == (batch, 128)
        assert np.allclose(np.linalg.norm(raw["embedding"], axis=1), 1.0, atol=1e-4)


def test_tampered_onnx_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(bundle, tmp_path / "copy")
    with open(copy / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="does not match"):
        Engine.load(copy)


def test_failed_parity_exits_2_and_writes_nothing(run: tuple[Path, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, _ = run
    monkeypatch.setattr(training.export, "PARITY_TOLERANCE", -1.0)  # no difference can pass
    out = tmp_path / "models" / "broken"
    assert cli(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--parity-photos", "2"]) == 2
    assert "parity check failed" in capsys.readouterr().err
    assert not out.exists()
    assert list((tmp_path / "models").iterdir()) == []  # no half-written staging folder either


def test_export_refuses_a_folder_that_is_not_a_bundle(run: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, _ = run
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    assert cli(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "notes")]) == 2
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_export_without_a_manifest_exits_2(tmp_path: Path, run: tuple[Path, Path]) -> None:
    checkpoint, _ = run
    assert cli(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m"),
                "--manifest", str(tmp_path / "absent.csv")]) == 2
    assert cli(["export", "--checkpoint", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "m")]) == 2


def test_int8_bundle_loads_and_reports_its_cost(bundle: Path, run: tuple[Path, Path], tmp_path: Path) -> None:
    from inspection.manifest import read_manifest
    from training.quantize import quantize_bundle

    _, manifest = run
    fp32 = shutil.copytree(bundle, tmp_path / "fp32")
    report = quantize_bundle(fp32, tmp_path / "fp32-int8", read_manifest(manifest), calibration_photos=4)
    int8 = Engine.load(tmp_path / "fp32-int8")
    assert int8.card.model_id != read_card(fp32).model_id
    assert set(report["top1_agreement"]) == {"condition", "damage", "accessories"}
    assert report["size_ratio"] < 0.5  # int8 weights: about a quarter of fp32
    assert read_card(fp32).export["int8"]["size_ratio"] == report["size_ratio"]
    verify_bundle(fp32)  # only the fp32 card changed; its ONNX hash still binds


def test_a_flip_tta_bundle_serves_the_mean_of_the_photo_and_its_mirror(
        bundle: Path, run: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, manifest = run
    mirrored_dir = tmp_path / "mirrored"
    assert cli(["export", "--checkpoint", str(checkpoint), "--out", str(mirrored_dir),
                "--parity-photos", "4", "--flip-tta"]) == 0
    assert read_card(mirrored_dir).export["test_time_augmentation"] == "mirror"
    plain, mirrored = Engine.load(bundle, threads=1), Engine.load(mirrored_dir, threads=1)
    assert not plain.mirrored and mirrored.mirrored
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 3, 64, 64)).astype(np.float32)
    batch[:, :, :, :20] += 2.0  # a bright left edge: the mirror changes the logits
    own, flipped = plain.run(batch), plain.run(np.ascontiguousarray(batch[..., ::-1]))
    served = mirrored.run(batch)
    logits = [name for name in plain.output_names if name.endswith("_logits")]
    assert any(not np.allclose(own[name], flipped[name], atol=1e-3) for name in logits)
    for name in plain.output_names:  # same weights: the graphs are the same
        expected = (own[name] + flipped[name]) / 2 if name in logits else own[name]
        np.testing.assert_allclose(served[name], expected, atol=1e-5, err_msg=name)
    # features alone are one run of the photo, not two
    np.testing.assert_allclose(mirrored.patch_features([np.zeros((64, 64, 3), np.uint8)]),
                               plain.patch_features([np.zeros((64, 64, 3), np.uint8)]), atol=1e-6)
    # `evaluate --flip-tta` on the plain bundle measures exactly what the mirrored one serves ...
    runs = {"flipped": (bundle, ["--flip-tta"]), "served": (mirrored_dir, []), "plain": (bundle, [])}
    for name, (folder, flags) in runs.items():
        assert cli(["evaluate", "--bundle", str(folder), "--manifest", str(manifest),
                    "--split", "val", "--out", str(tmp_path / name), *flags]) == 0
    flipped, served_metrics, plain_metrics = (json.loads((tmp_path / name / "metrics.json").read_text())
                                              for name in runs)
    assert flipped["test_time_augmentation"] == served_metrics["test_time_augmentation"] == "horizontal flip"
    ece = {name: [metrics["heads"][head]["ece"] for head in ("condition", "damage", "accessories")]
           for name, metrics in zip(runs, (flipped, served_metrics, plain_metrics), strict=True)}
    np.testing.assert_allclose(ece["flipped"], ece["served"], atol=1e-6)
    assert not np.allclose(ece["flipped"], ece["plain"], atol=1e-6)  # the flip did change them
    # ... and evaluating the mirrored bundle with --flip-tta would mirror twice
    code = cli(["evaluate", "--bundle", str(mirrored_dir), "--manifest", str(manifest),
                "--out", str(tmp_path / "eval"), "--flip-tta"])
    assert code == 2 and "already serves mirrored logits" in capsys.readouterr().err
