"""`returns-inspect evaluate` on a tiny bundle whose answers the test decides (bundle_factory)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from tiny_checkpoint import write_photo_set

from inspection.card import read_card
from inspection.cli import main as cli
from inspection.engine import Engine
from inspection.manifest import read_manifest
from inspection.taxonomy import load_taxonomy
from training.evaluate import item_metrics, worst_errors


@pytest.fixture
def bundle_and_manifest(tmp_path: Path) -> tuple[Path, Path]:
    manifest = write_photo_set(tmp_path / "photos")
    # Every photo: grade D, crack ~0.99, charger ~0.01, every other accessory ~1.
    return build_bundle(tmp_path / "bundle", biases=CRACKED_ITEM), manifest


def test_evaluate_writes_metrics_and_a_self_contained_report(bundle_and_manifest: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    bundle, manifest = bundle_and_manifest
    out = tmp_path / "eval"
    code = cli(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--out", str(out),
                "--worst", "5", "--update-card"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    expected = {"bundle", "split", "photos", "items", "heads", "items_metrics", "timing", "worst_errors"}
    assert expected <= set(metrics)
    assert metrics["split"] == "test" and metrics["photos"] == 10
    condition = metrics["heads"]["condition"]
    # Test photos 22..31 are graded "ABCD"[index % 4]: 23, 27 and 31 are D, the model's constant answer.
    assert condition["accuracy"] == pytest.approx(0.3)
    assert condition["confusion_matrix"][0] == [0, 0, 0, 2]  # photos 24 and 28 are A
    assert condition["confusion_matrix"][3] == [0, 0, 0, 3]
    assert len(condition["confusion_matrix"]) == 4
    damage = metrics["heads"]["damage"]
    assert {"macro_auroc", "macro_average_precision", "ece", "per_label"} <= set(damage)
    assert damage["per_label"]["crack"]["recall"] in (0.0, 1.0)
    assert len(metrics["worst_errors"]) == 5
    assert metrics["bundle"]["model_id"] == read_card(bundle).model_id
    report = (out / "report.html").read_text()
    assert report.count("<img") >= 4  # confusion, PR curves, reliability, gallery thumbnails
    assert "data:image/png;base64," in report and "data:image/jpeg;base64," in report
    assert "src=\"http" not in report  # self-contained
    card = read_card(bundle)
    assert card.metrics["test"]["heads"]["condition"]["accuracy"] == pytest.approx(0.3)
    Engine.load(bundle)  # the rewritten card still binds the ONNX file


def test_evaluate_of_a_missing_split_exits_2(bundle_and_manifest: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bundle, manifest = bundle_and_manifest
    assert cli(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--split", "holdout",
                "--out", str(tmp_path / "eval")]) == 2
    assert "holdout" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_missing_accessories_judged_per_item(tmp_path: Path) -> None:
    taxonomy = load_taxonomy()
    manifest = read_manifest(write_photo_set(tmp_path / "photos"), taxonomy)
    samples = manifest.split("test")
    head = taxonomy.head("accessories")
    # Predict exactly the labelled accessories: every item's missing set is right.
    truth = np.array([[1.0 if label in s.labels["accessories"] else 0.0 for label in head.labels]
                      for s in samples])
    grades = ["ABCD".index(s.labels["condition"][0]) for s in samples]
    probabilities = {"condition": np.eye(4)[grades],
                     "damage": np.array([[1.0 if label in s.labels["damage"] else 0.0
                                          for label in taxonomy.head("damage").labels] for s in samples]),
                     "accessories": truth}
    thresholds = {"damage": dict.fromkeys(taxonomy.head("damage").labels, 0.5),
                  "accessories": dict.fromkeys(head.labels, 0.5), "low_confidence": {"condition": 0.5}}
    result = item_metrics(probabilities, samples, taxonomy, thresholds)
    assert result["missing_accessories_exact_match"] == 1.0
    assert result["missing_accessories_part_accuracy"] == 1.0
    # Now the model sees nothing: every part of every kit is called missing.
    probabilities["accessories"] = np.zeros_like(truth)
    blind = item_metrics(probabilities, samples, taxonomy, thresholds)
    assert blind["missing_accessories_part_accuracy"] < 1.0
    assert blind["review_rate"] == 1.0
    errors = worst_errors(probabilities, samples, taxonomy, thresholds, 3)
    assert [e["head"] for e in errors] == ["accessories"] * 3
    assert all(e["predicted"] == "-" and e["confidence"] == 1.0 for e in errors)
