"""`returns-inspect case fit` on a small synthetic set and the tiny bundle: thresholds for the
comparison flags land in the card with the record of how they were chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_factory import CRACKED_ITEM, build_bundle

from inspection.card import read_card, verify_bundle
from inspection.case_compare import CHANGED, NEW_DAMAGE, WEIGHT_KEY
from inspection.cli import main as cli
from inspection.dataset.synth import generate
from inspection.manifest import Sample
from inspection.taxonomy import load_taxonomy
from training.case_fit import make_pairs


@pytest.fixture(scope="module")
def synthetic_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, photos=120, size=64, seed=3, taxonomy=load_taxonomy(), progress=False)
    return out / "manifest.csv"


def test_pairs_are_same_item_other_item_and_good_to_damaged() -> None:
    def sample(item: str, category: str, damage: tuple[str, ...] = ()) -> Sample:
        return Sample(image=f"{item}.jpg", item_id=item, category=category,
                      labels={"damage": damage})
    samples = [sample("a", "phone"), sample("a", "phone"), sample("b", "phone", ("crack",)),
               sample("c", "shoe"), sample("c", "shoe"), sample("d", "shoe")]
    same, other, damaged = make_pairs(samples)
    assert same == [(0, 1), (3, 4)]  # items with two photos
    assert other == [(0, 2), (2, 0), (3, 5), (5, 3)]  # never across categories
    assert damaged == [(0, 2)]  # good phone a -> cracked phone b; no damaged shoe


def test_case_fit_writes_thresholds_and_their_record(tmp_path: Path, synthetic_manifest: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", size=32, biases=CRACKED_ITEM)
    onnx_sha = read_card(bundle).onnx_sha256
    assert cli(["case", "fit", "--bundle", str(bundle), "--manifest", str(synthetic_manifest),
                "--split", "train", "--target-false-rate", "0.1"]) == 0
    card = verify_bundle(bundle)
    assert card.onnx_sha256 == onnx_sha
    for kind in (CHANGED, NEW_DAMAGE):
        record = card.calibration["case"][kind]
        assert card.thresholds[kind] == record["threshold"]
        assert record["negatives"] >= 5 and record["false_rate"] <= 0.1 and record["split"] == "train"
    assert card.calibration["case"]["manifest_sha256"]
    assert card.thresholds[WEIGHT_KEY] == card.calibration["case"][CHANGED]["embedding_weight"]
    assert set(card.calibration["case"][CHANGED]["auroc_by_embedding_weight"]) == {
        "0.0", "0.25", "0.5", "0.75", "1.0"}


def test_case_fit_refuses_a_bad_target(tmp_path: Path, synthetic_manifest: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bundle = build_bundle(tmp_path / "bundle", size=32)
    assert cli(["case", "fit", "--bundle", str(bundle), "--manifest", str(synthetic_manifest),
                "--target-false-rate", "0.9"]) == 2
    assert "--target-false-rate" in capsys.readouterr().err
