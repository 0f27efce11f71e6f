"""The one rule behind every score flag (decide.Check) and the likeness flags built from it, as
tables of edge cases."""

from __future__ import annotations

import pytest

from inspection.decide import Check, Likeness, likeness_flags, load_policy, threshold

POLICY = load_policy()


@pytest.mark.parametrize(("score", "limit", "worse", "fails"), [
    (0.5, 0.5, "above", True),  # a trouble score exactly at its threshold is flagged
    (0.49, 0.5, "above", False),
    (0.5, 0.5, "below", False),  # a likeness exactly at its threshold is not
    (0.49, 0.5, "below", True),
])
def test_check_direction(score: float, limit: float, worse: str, fails: bool) -> None:
    assert Check("k", score, limit, worse, "why").fails is fails  # type: ignore[arg-type]


@pytest.mark.parametrize(("card", "fitted", "expected"), [
    ({}, None, 0.35),  # the policy's default similarity
    ({"item_mismatch": {"phone": 0.7}}, None, 0.7),  # the card's calibrated value wins
    ({"item_mismatch": {"phone": 0.7}}, 0.9, 0.9),  # a value fitted for this comparison wins
    ({"item_mismatch": {"shoe": 0.7}}, None, 0.35),  # another category's value does not apply
])
def test_threshold_precedence(card: dict, fitted: float | None, expected: float) -> None:
    assert threshold(card, POLICY, "item_mismatch", "phone", fitted=fitted) == expected


def test_no_threshold_anywhere_means_the_check_cannot_run() -> None:
    assert threshold({}, POLICY, "anomaly", "phone") is None


def test_sku_likeness_flags_the_least_alike_photo_and_every_anomalous_one() -> None:
    likeness = Likeness("sku", "SKU PHONE-X", similarities=[0.95, 0.80, 0.85],
                        similarity_threshold=0.9, anomaly_scores=[0.5, 1.3, 1.1],
                        anomaly_threshold=1.2, closest=[0, 4, 2], label="PHONE-X")
    flags = likeness_flags(likeness)
    mismatch = [f for f in flags if f.kind == "item_mismatch"]
    assert len(mismatch) == 1 and mismatch[0].photo == 1 and mismatch[0].label == "PHONE-X"
    assert "reference photo 5" in mismatch[0].reason and "SKU PHONE-X" in mismatch[0].reason
    assert [f.photo for f in flags if f.kind == "anomaly"] == [1]


def test_a_likeness_without_thresholds_raises_nothing() -> None:
    assert likeness_flags(Likeness("category", "a phone", similarities=[0.1],
                                   anomaly_scores=[9.0])) == []
