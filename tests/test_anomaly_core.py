"""Coreset, nearest-neighbour scoring, ONNX detector parity and threshold fitting on small
generated arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.anomaly.coreset import coverage_radius, greedy_coreset
from training.anomaly.export import parity, save_detector
from training.anomaly.patchcore import (
    RERANKED_PATCHES,
    PatchCore,
    build_bank,
    density_weights,
    flatten_patches,
    nearest_distances,
    support_neighbours,
)
from training.anomaly.threshold import fit_calibration


def _clustered(seed: int = 0) -> np.ndarray:
    """400 points in 8 tight clusters of 16 dims: a random sample often misses a cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(8, 16))
    sizes = [200, 100, 50, 20, 10, 10, 5, 5]
    return np.concatenate([c + rng.normal(scale=0.1, size=(n, 16))
                           for c, n in zip(centres, sizes, strict=True)]).astype(np.float32)


def test_coreset_picks_distinct_points_and_covers_better_than_random() -> None:
    points = _clustered()
    chosen = greedy_coreset(points, 12, progress=False)
    assert len(chosen) == 12 and len(set(chosen.tolist())) == 12
    random_pick = np.random.default_rng(1).choice(len(points), 12, replace=False)
    # greedy reaches every cluster; a random 12 of 400 misses the 5-point clusters
    assert coverage_radius(points, chosen) < 1.0 < coverage_radius(points, random_pick)


def test_coreset_larger_than_bank_keeps_everything() -> None:
    assert len(greedy_coreset(np.zeros((5, 3), np.float32), 10, progress=False)) == 5


def test_nearest_distance_of_a_bank_patch_is_zero() -> None:
    features = np.random.default_rng(0).normal(size=(3, 8, 4, 4)).astype(np.float32)
    detector = PatchCore.fit(features, coreset_ratio=1.0, progress=False)
    scores, maps = detector.score(features)
    assert maps.shape == (3, 4, 4)
    assert np.allclose(scores, 0.0, atol=1e-2)
    shifted = features + 5.0
    assert detector.score(shifted)[0].min() > 1.0


def test_nearest_distances_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(2, 6, 3, 5)).astype(np.float32)
    bank = rng.normal(size=(40, 6)).astype(np.float32)
    patches = flatten_patches(features)
    brute = np.sqrt(((patches[:, None] - bank[None]) ** 2).sum(-1)).min(1).reshape(2, 3, 5)
    assert np.allclose(nearest_distances(features, bank), brute, atol=1e-4)


@pytest.mark.parametrize("searched_rows", [None, 10])
@pytest.mark.parametrize("neighbours", [1, 9])
def test_onnx_detector_matches_torch_scores(tmp_path: Path, neighbours: int,
                                            searched_rows: int | None) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(3, 12, 9, 7)).astype(np.float32)  # 63 patches: 32 reranked
    detector = PatchCore.fit(rng.normal(size=(4, 12, 4, 4)).astype(np.float32), 1.0,
                             progress=False, neighbours=neighbours, searched_rows=searched_rows)
    assert detector.searched_rows == searched_rows
    path = save_detector(detector.bank, tmp_path / "anomaly" / "x.onnx", {"category": "x"},
                         detector.support, detector.searched_rows)
    assert parity(path, detector, features) < 1e-4
    assert parity(path, detector, features[:1, :, :3, :3]) < 1e-4  # fewer patches than reranked


def test_two_pass_search_gives_each_photos_worst_patches_their_whole_bank_distance() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(2, 8, 8, 8)).astype(np.float32)  # 64 patches a photo
    detector = PatchCore.fit(rng.normal(size=(6, 8, 8, 8)).astype(np.float32), 1.0,
                             progress=False, searched_rows=40)
    queries = flatten_patches(features)
    first = nearest_distances(features, detector.bank[:40]).reshape(2, 64)
    whole = nearest_distances(features, detector.bank).reshape(2, 64)
    scores, maps = detector.score(features)
    assert np.allclose(maps.reshape(2, 64), first, atol=1e-4)  # the map: the first pass
    for photo in range(2):
        worst = np.argsort(-first[photo], kind="stable")[:RERANKED_PATCHES]
        rest = np.setdiff1d(np.arange(64), worst)
        scored = np.r_[whole[photo, worst], first[photo, rest]]
        assert scores[photo] == pytest.approx(scored.max(), abs=1e-4)
    assert len(queries) == 128 and np.all(scores <= first.max(axis=1) + 1e-4)


def test_two_pass_search_finds_an_anomaly_only_the_rest_of_the_bank_explains() -> None:
    """A good patch kind that only the bank's later rows hold: the first pass calls it far, the
    second finds it, so a photo of it scores as low as the whole search says."""
    rng = np.random.default_rng(6)
    common = rng.normal(size=(300, 4)).astype(np.float32)
    rare = np.full((1, 4), 40.0, np.float32)
    bank = np.concatenate([common, rare])
    detector = PatchCore(bank, searched_rows=300)
    photo = np.concatenate([common[:15], rare]).T.reshape(1, 4, 4, 4)
    assert detector.score(photo)[0][0] == pytest.approx(0.0, abs=1e-2)
    assert PatchCore(bank[:300]).score(photo)[0][0] > 30.0


def test_a_bank_that_keeps_every_patch_still_starts_with_a_coreset() -> None:
    points = _clustered()
    features = points.T.reshape(1, 16, 20, 20)
    bank = build_bank(features, 1.0, progress=False, max_bank=None, searched_rows=12)
    assert len(bank) == len(points)
    assert np.array_equal(np.sort(bank, axis=0), np.sort(points, axis=0))  # a reordering
    first = np.array([np.flatnonzero((points == row).all(axis=1))[0] for row in bank[:12]])
    assert coverage_radius(points, first) < 1.0  # the first 12 reach every cluster


def test_weighted_score_stays_within_its_bounds_and_favours_sparse_matches() -> None:
    """Bank: a tight cluster of 20 rows and one lone row far away. A patch as far from the lone
    row as another is from the cluster scores higher: nothing good looks like it."""
    rng = np.random.default_rng(4)
    cluster = rng.normal(scale=0.01, size=(20, 4))
    lone = np.array([[50.0, 0, 0, 0]])
    bank = np.concatenate([cluster, lone]).astype(np.float32)
    support = support_neighbours(bank, 9)
    assert support[20, 0] == 20 and set(support[0]) <= set(range(20))  # itself first
    patches = np.array([[1.0, 0, 0, 0], [51.0, 0, 0, 0]], np.float32)
    weights = density_weights(patches, np.array([0, 20]), bank, support)
    assert np.all(weights >= 1 - 1 / 9 - 1e-6) and np.all(weights <= 1.0)
    assert weights[1] > weights[0]


def test_calibration_keeps_the_good_false_positive_rate() -> None:
    good = np.linspace(1.0, 2.0, 101)
    calibration = fit_calibration(good, target_fpr=0.05)
    flagged = good / calibration.normaliser >= calibration.threshold
    assert flagged.mean() <= 0.05
    assert calibration.fitted_on["good"] == 101 and calibration.fitted_on["defect"] == 0


def test_calibration_moves_threshold_into_the_gap_before_defects() -> None:
    good = np.linspace(1.0, 2.0, 50)
    alone = fit_calibration(good, target_fpr=0.0)
    with_defects = fit_calibration(good, np.array([8.0, 9.0]), target_fpr=0.0)
    assert alone.normaliser == pytest.approx(2.0)
    assert 1.0 < alone.threshold < with_defects.threshold < 4.0  # between goods and defects
    assert with_defects.fitted_on["defect_tpr"] == 1.0


@pytest.mark.parametrize("bad", [np.array([1.0]), np.array([])])
def test_calibration_refuses_too_few_good_scores(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit_calibration(bad)
