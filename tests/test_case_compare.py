"""The comparison's rules as a table of small cases (no model): which pair decides, what counts
as new damage, and where the flags point."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspection.case_compare import CHANGED, NEW_DAMAGE, CasePhoto, compare, pair_similarity
from inspection.dataset.synth.plan import before_damage, plan_items
from inspection.dataset.synth.scene import render_photo
from inspection.taxonomy import load_taxonomy

THRESHOLDS = {CHANGED: 0.8, NEW_DAMAGE: 0.3}


def photo(source: str, index: int, direction: int, damage: dict[str, float] | None = None,
          inspection: str = "") -> CasePhoto:
    """A photo whose embedding and every patch point along one axis of an 8-d space."""
    vector = np.eye(8, dtype=np.float32)[direction]
    return CasePhoto(inspection or source, index, source, vector, np.tile(vector, (4, 1)), (2, 2),
                     damage or {"crack": 0.05, "scratch": 0.05})


def checks(station: list[CasePhoto], customer: list[CasePhoto]) -> dict[str, object]:
    return {check.kind: check for check in compare(station, customer, THRESHOLDS).checks}


def test_the_same_item_is_not_flagged_and_the_closest_pair_is_named() -> None:
    result = checks([photo("station", 0, 1), photo("station", 1, 2)],
                    [photo("customer", 0, 3), photo("customer", 1, 2)])
    same = result[CHANGED]
    assert same.score == pytest.approx(1.0) and not same.flagged
    assert same.station == ("station", 1) and same.customer == ("customer", 1)


def test_an_item_unlike_every_customer_photo_is_flagged() -> None:
    same = checks([photo("station", 0, 1)], [photo("customer", 0, 3), photo("customer", 1, 4)])[CHANGED]
    assert same.flagged and same.score == pytest.approx(0.0) and same.threshold == 0.8


def test_damage_at_the_dock_absent_from_every_customer_photo_is_new() -> None:
    cracked = {"crack": 0.9, "scratch": 0.1}
    result = checks([photo("station", 0, 1), photo("station", 1, 1, cracked)],
                    [photo("customer", 0, 1, {"crack": 0.2, "scratch": 0.1}), photo("customer", 1, 1)])
    new = result[NEW_DAMAGE]
    assert new.flagged and new.label == "crack" and new.score == pytest.approx(0.7)
    assert new.station == ("station", 1) and new.customer == ("customer", 0)  # the closest to showing it


def test_damage_the_customer_already_showed_is_not_new() -> None:
    cracked = {"crack": 0.9, "scratch": 0.1}
    showed = {"crack": 0.8, "scratch": 0.0}
    new = checks([photo("station", 0, 1, cracked)],
                 [photo("customer", 0, 1), photo("customer", 1, 1, showed)])[NEW_DAMAGE]
    assert not new.flagged and new.score == pytest.approx(0.1)


def test_without_thresholds_scores_are_kept_and_nothing_is_flagged() -> None:
    comparison = compare([photo("station", 0, 1)], [photo("customer", 0, 5)], {})
    assert [check.flagged for check in comparison.checks] == [False, False]
    assert comparison.checks[0].threshold is None


def test_one_side_alone_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="both sides"):
        compare([photo("station", 0, 1)], [], THRESHOLDS)


def test_unmatched_map_is_per_patch_of_the_station_photo() -> None:
    dock = photo("station", 0, 1)
    dock = CasePhoto("s", 0, "station", dock.embedding,
                     np.stack([np.eye(8, dtype=np.float32)[i] for i in (1, 1, 1, 6)]), (2, 2), {})
    similarity = pair_similarity(dock, photo("customer", 0, 1))
    assert similarity.unmatched.shape == (2, 2)
    assert similarity.unmatched.ravel().tolist() == pytest.approx([0, 0, 0, 1])  # the new patch


def test_synth_draws_the_same_item_before_its_damage() -> None:
    damaged = next(spec for spec in plan_items(load_taxonomy(), 40, seed=5) if spec.grade == 3)
    before = before_damage(damaged)
    assert before.item_id == damaged.item_id and before.damage == () and before.grade == 1
    after_rgb, mask = render_photo(damaged, 7, 128, damaged.seed)
    before_rgb, no_mask = render_photo(before, 7, 128, damaged.seed)
    assert mask.any() and not no_mask.any()
    difference = np.abs(after_rgb.astype(int) - before_rgb.astype(int)).max(axis=2)
    near_damage = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    # only the damage differs (a broken outline may move its soft shadow by one grey level)
    assert difference[near_damage].max() > 8 and difference[~near_damage].max() <= 1


def test_why_a_return_is_not_compared() -> None:
    from inspection.case import Counterpart, _not_compared
    mine = [photo("station", 0, 1)]
    assert "one side only" in _not_compared(Counterpart("customer", [], []), mine)
    purged = Counterpart("customer", [], ["c1"], missing=["photo 1 of inspection c1 (sha256 ab)"])
    assert "no longer stored" in _not_compared(purged, mine)
    emptied = Counterpart("customer", [], ["c1"])  # retention removed the photo rows too
    assert "hold no stored photo" in _not_compared(emptied, mine)
    assert _not_compared(Counterpart("customer", [photo("customer", 0, 1)], ["c1"]), mine) == ""
