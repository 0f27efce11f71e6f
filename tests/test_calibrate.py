"""Temperature and threshold fitting (pure, table of edge cases) and `returns-inspect calibrate`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from tiny_checkpoint import write_photo_set

from inspection.card import read_card, verify_bundle
from inspection.cli import main as cli
from inspection.engine import Engine, sigmoid, softmax
from inspection.manifest import Sample
from inspection.taxonomy import load_taxonomy
from training.calibrate import calibrate, item_flags
from training.calibration import fit_temperature, threshold_for_recall, threshold_for_review_rate


def test_temperature_recovers_overconfidence_single_label() -> None:
    # Labels drawn from softmax(z); the model reports 3 z: the NLL-optimal temperature is 3.
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (4000, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(z)])
    assert fit_temperature(3.0 * z, labels, "single") == pytest.approx(3.0, rel=0.12)


def test_temperature_recovers_underconfidence_multi_label() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2.0, (3000, 3))
    targets = (rng.random(z.shape) < sigmoid(z)).astype(float)
    assert fit_temperature(0.5 * z, targets, "multi") == pytest.approx(0.5, rel=0.12)


def test_temperature_without_data_is_one_and_stays_in_bounds() -> None:
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int), "single") == 1.0
    # Logits that say the opposite of the truth: flatten as far as allowed (T -> 20).
    logits = np.array([[5.0, -5.0]] * 10)
    assert fit_temperature(logits, np.ones(10, dtype=int), "single") == pytest.approx(20.0, rel=1e-3)


@pytest.mark.parametrize(("scores", "positives", "target", "expected"), [
    # every positive kept: halfway between the lowest positive (0.3) and the next score below (0.2)
    ([0.9, 0.8, 0.3, 0.2], [1, 0, 1, 0], 1.0, 0.25),
    # half the positives: keep 0.9 only, halfway down to the negative at 0.8
    ([0.9, 0.8, 0.3, 0.2], [1, 0, 1, 0], 0.5, 0.85),
    # nothing below the lowest positive: halfway down to zero
    ([0.6, 0.4], [1, 1], 1.0, 0.2),
    # ties: all positives at 0.5 must stay >= the threshold
    ([0.5, 0.5, 0.5], [1, 1, 0], 1.0, 0.25),
])
def test_threshold_for_recall_table(scores: list[float], positives: list[int], target: float,
                                    expected: float) -> None:
    threshold = threshold_for_recall(np.array(scores), np.array(positives), target)
    assert threshold == pytest.approx(expected)
    kept = (np.array(scores) >= threshold)[np.array(positives, dtype=bool)]
    assert kept.mean() >= target


def test_threshold_for_recall_counts_without_float_slack() -> None:
    # 0.95 x 20 positives is 19 photos; float arithmetic must not make it 20.
    scores = np.linspace(0.05, 1.0, 20)
    threshold = threshold_for_recall(scores, np.ones(20), 0.95)
    assert (scores >= threshold).sum() == 19


def test_threshold_for_recall_edges() -> None:
    assert threshold_for_recall(np.array([0.2, 0.9]), np.array([0, 0]), 0.9) is None  # no positives
    with pytest.raises(ValueError, match="recall target"):
        threshold_for_recall(np.array([0.5]), np.array([1]), 0.0)


@pytest.mark.parametrize(("scores", "rate", "flagged"), [
    (np.linspace(0.1, 1.0, 10), 0.2, 2),  # 20% of 10 items: the two highest
    (np.linspace(0.1, 1.0, 10), 0.0, 0),  # nothing may go to review
    (np.linspace(0.1, 1.0, 10), 1.0, 10),  # everything may
    (np.linspace(0.01, 0.99, 25), 0.1, 2),  # 10% of 25 is 2.5 items: 2, never 3
    (np.array([0.9, 0.9, 0.9, 0.1]), 0.5, 0),  # a tie at the budget's edge: all or none -> none
    (np.array([1.0, 1.0, 0.2]), 0.0, 0),  # probabilities of exactly 1 still stay out
])
def test_threshold_for_review_rate_table(scores: np.ndarray, rate: float, flagged: int) -> None:
    threshold = threshold_for_review_rate(scores, rate)
    assert (scores >= threshold).sum() == flagged


def test_threshold_for_review_rate_is_the_lowest_within_budget() -> None:
    scores = np.random.default_rng(2).random(50)
    threshold = threshold_for_review_rate(scores, 0.1)
    assert (scores >= threshold).sum() == 5
    assert (scores >= np.sort(scores)[::-1][5]).sum() == 6  # one score lower is over budget


def _samples(count: int) -> list[Sample]:
    return [Sample(image=f"{i}.jpg", item_id=f"item{i // 2}", category="shoe", split="val",
                   labels={"condition": ("ABCD"[i % 4],), "damage": ("crack",) if i % 3 == 0 else (),
                           "accessories": ("second_shoe", "box")}) for i in range(count)]


def test_calibrate_meets_a_damage_recall_target() -> None:
    taxonomy = load_taxonomy()
    samples = _samples(40)
    rng = np.random.default_rng(3)
    crack = np.array([1.0 if "crack" in s.labels["damage"] else 0.0 for s in samples])
    logits = {"condition": rng.normal(0, 1, (40, 4)),
              "damage": rng.normal(-2, 1, (40, 6)) + 2.0 * crack[:, None] * (np.arange(6) == 1),
              "accessories": np.full((40, 8), 4.0)}
    result = calibrate(logits, samples, taxonomy, {"damage_recall": 0.95}, 0.3)
    assert result["calibration"]["achieved"]["damage_recall"]["crack"] >= 0.95
    assert result["thresholds"]["damage"]["tear"] == 0.5  # no positives: default, with a warning
    assert any("tear" in warning for warning in result["calibration"]["warnings"])
    assert result["thresholds"]["low_confidence"] == {"condition": 0.3}
    assert set(result["temperatures"]) == {"condition", "damage", "accessories"}


def test_calibrate_meets_a_review_rate_target() -> None:
    taxonomy = load_taxonomy()
    samples = _samples(40)
    rng = np.random.default_rng(4)
    grades = np.array(["ABCD".index(s.labels["condition"][0]) for s in samples])
    logits = {"condition": 6.0 * np.eye(4)[grades], "damage": rng.normal(0, 2, (40, 6)),
              "accessories": np.full((40, 8), 4.0)}
    result = calibrate(logits, samples, taxonomy, {"review_rate": 0.1}, 0.5)
    assert result["calibration"]["achieved"]["review_rate"] <= 0.1
    probabilities = {name: (softmax if name == "condition" else sigmoid)(value / result["temperatures"][name])
                     for name, value in logits.items()}
    assert item_flags(probabilities, samples, taxonomy, result["thresholds"]).mean() <= 0.1


@pytest.fixture
def bundle_and_manifest(tmp_path: Path) -> tuple[Path, Path]:
    manifest = write_photo_set(tmp_path / "photos")
    bundle = build_bundle(tmp_path / "bundle", biases=CRACKED_ITEM,
                          thresholds={"changed_since_request": 0.8, "damage": {"crack": 0.01}})
    return bundle, manifest


def test_calibrate_command_rewrites_only_the_card(bundle_and_manifest: tuple[Path, Path]) -> None:
    bundle, manifest = bundle_and_manifest
    onnx_sha = read_card(bundle).onnx_sha256
    code = cli(["calibrate", "--bundle", str(bundle), "--manifest", str(manifest),
                "--target", "damage_recall=0.9", "--target", "accessory_recall=0.8",
                "--low-confidence", "0.4"])
    assert code == 0
    card = verify_bundle(bundle)
    assert card.onnx_sha256 == onnx_sha
    assert set(card.temperatures) == {"condition", "damage", "accessories"}
    assert all(0.05 <= t <= 20 and not math.isnan(t) for t in card.temperatures.values())
    assert card.thresholds["low_confidence"] == {"condition": 0.4}
    assert card.thresholds["changed_since_request"] == 0.8  # fitted by `case fit`: kept
    assert card.thresholds["damage"]["crack"] != 0.01  # a head's thresholds: replaced
    assert set(card.thresholds["damage"]) == set(load_taxonomy().head("damage").labels)
    assert card.calibration["targets"] == {"damage_recall": 0.9, "accessories_recall": 0.8}
    assert {"before", "after"} <= set(card.calibration["ece"]["condition"])
    assert Engine.load(bundle).card.temperatures == card.temperatures


@pytest.mark.parametrize("target", ["speed=0.9", "damage_recall=high", "damage_recall=1.5",
                                    "colour_recall=0.9"])
def test_calibrate_rejects_bad_targets(bundle_and_manifest: tuple[Path, Path], target: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bundle, manifest = bundle_and_manifest
    before = (bundle / "model_card.json").read_text()
    assert cli(["calibrate", "--bundle", str(bundle), "--manifest", str(manifest), "--target", target]) == 2
    assert "--target" in capsys.readouterr().err
    assert (bundle / "model_card.json").read_text() == before
    json.loads(before)


def test_item_flags_decide_as_the_service_does() -> None:
    # One undamaged phone with its whole kit, graded A at 0.50. With a fitted floor of 0.4 it
    # passes; with no floor in the card the policy's default (0.55) applies, as when served.
    taxonomy = load_taxonomy()
    kit = taxonomy.kits["phone"]
    accessories = taxonomy.head("accessories").labels
    probabilities = {
        "condition": np.array([[0.50, 0.30, 0.15, 0.05]]),
        "damage": np.full((1, len(taxonomy.head("damage").labels)), 0.1),
        "accessories": np.array([[0.9 if label in kit else 0.1 for label in accessories]]),
    }
    samples = [Sample(image="a.jpg", item_id="item", category="phone")]
    fitted = {"damage": {}, "accessories": {}, "low_confidence": {"condition": 0.4}}
    assert not item_flags(probabilities, samples, taxonomy, fitted)[0]
    assert item_flags(probabilities, samples, taxonomy, {"damage": {}, "accessories": {}})[0]


def test_a_head_s_temperature_is_fitted_on_what_is_served_with_the_second_opinion() -> None:
    """The service multiplies the anomaly score's opinion into the tempered head, so T is
    fitted on that product: it reaches a lower served NLL than the head-alone T, and rows
    without an opinion (NaN) count as the head alone."""
    from training.calibration import Opinion, fit_temperature, negative_log_likelihood
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    logits = np.r_[np.tile([3.0, 0.0], (20, 1)), np.tile([0.0, 3.0], (16, 1)),
                   np.tile([2.0, 0.0], (4, 1))]  # four defects the head calls good
    opinion = Opinion(0, np.r_[np.full(20, 0.05), np.full(16, 0.95), np.full(4, 0.98)])
    alone = fit_temperature(logits, y, "single")
    served = fit_temperature(logits, y, "single", opinion=opinion)
    assert served != pytest.approx(alone, rel=0.05)
    assert (negative_log_likelihood(logits, y, served, "single", opinion)
            < negative_log_likelihood(logits, y, alone, "single", opinion))
    nothing = Opinion(0, np.full(40, np.nan))
    assert fit_temperature(logits, y, "single", opinion=nothing) == pytest.approx(alone)
