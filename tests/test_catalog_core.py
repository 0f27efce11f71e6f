"""The catalog's numpy core on small generated arrays: coreset cover, leave-one-out exclusion,
threshold fitting (and its refusals), a reference's round trip through bytes."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.catalog import SkuReference, Views, reference_from_views
from inspection.catalog_bank import build_bank, greedy_coreset, nearest_distances
from inspection.catalog_fit import (
    DEFAULT_FALSE_FLAG_TARGET,
    MISMATCH_MARGIN,
    TooUniform,
    fit_thresholds,
    upper_limit,
)


def clustered(seed: int = 0) -> np.ndarray:
    """400 points in 8 tight clusters of 16 dims, most of them in the first cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(8, 16))
    sizes = [200, 100, 50, 20, 10, 10, 5, 5]
    return np.concatenate([c + rng.normal(scale=0.1, size=(n, 16))
                           for c, n in zip(centres, sizes, strict=True)]).astype(np.float32)


def test_greedy_coreset_reaches_every_cluster_a_random_pick_misses() -> None:
    points = clustered()
    chosen = greedy_coreset(points, 8)
    assert len(set(chosen.tolist())) == 8
    # every point lies within its cluster's spread of a chosen point: all 8 clusters are covered
    distances = np.sqrt(((points[:, None] - points[chosen][None]) ** 2).sum(-1)).min(axis=1)
    assert distances.max() < 1.5
    assert len(greedy_coreset(points, 1000)) == len(points)  # asking for more keeps everything
    with pytest.raises(ValueError, match="at least 1"):
        greedy_coreset(points, 0)


def photos_features(count: int, seed: int = 0, size: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, 8, size, size)).astype(np.float32)


def test_a_photo_in_the_bank_scores_zero_unless_its_own_rows_are_left_out() -> None:
    features = photos_features(4)
    bank = build_bank(features, ratio=1.0)  # every patch kept
    assert np.allclose(nearest_distances(features, bank.rows), 0.0, atol=1e-2)  # float32 sqrt
    own = np.arange(4)[:, None] == bank.owners[None, :]
    left_out = nearest_distances(features, bank.rows, excluded=own)
    assert (left_out > 0.1).all()  # random patches have no twin in the other photos


def test_bank_size_is_bounded() -> None:
    bank = build_bank(photos_features(10, size=10), ratio=0.5, max_rows=64)
    assert bank.rows.shape == (64, 8) and bank.owners.shape == (64,)


@pytest.mark.parametrize(("scores", "expected"), [
    # one score: nothing to fit, the score itself
    ([2.0], 2.0),
    # identical scores: no spread, so the limit is the value itself
    ([3.0] * 10, 3.0),
])
def test_upper_limit_edge_cases(scores: list[float], expected: float) -> None:
    assert upper_limit(np.asarray(scores), 0.02) == pytest.approx(expected)


def test_upper_limit_is_beyond_the_worst_of_few_scores() -> None:
    scores = np.random.default_rng(0).lognormal(mean=0.0, sigma=0.2, size=10)
    assert upper_limit(scores, 0.02) > scores.max()  # 10 scores cannot show a 2% tail
    assert upper_limit(scores, 0.2) < upper_limit(scores, 0.02)  # a looser target, a lower line


def test_fitted_thresholds_flag_what_is_farther_than_the_references() -> None:
    similarities = np.array([0.95, 0.96, 0.94, 0.97, 0.95])
    anomaly = np.array([10.0, 11.0, 9.5, 10.5, 12.0])
    fitted = fit_thresholds(similarities, anomaly, feature_scale=5.0)
    assert fitted.normaliser == 12.0 and fitted.false_flag_target == DEFAULT_FALSE_FLAG_TARGET
    assert fitted.anomaly >= 1.0  # no reference photo would be flagged anomalous
    assert fitted.similarity < similarities.min()  # nor as a mismatch
    assert 1 - fitted.similarity >= MISMATCH_MARGIN * (1 - similarities.min()) - 1e-9


@pytest.mark.parametrize("target", [0.0, 0.5, -1.0])
def test_a_false_flag_target_out_of_range_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="false-flag target"):
        fit_thresholds(np.array([0.9, 0.8]), np.array([1.0, 2.0]), 1.0, target)


def test_copies_of_one_picture_are_too_uniform() -> None:
    with pytest.raises(TooUniform, match="copies of one picture"):
        fit_thresholds(np.array([1.0, 1.0]), np.array([0.0, 0.0]), feature_scale=5.0)
    copies = np.repeat(photos_features(1), 5, axis=0)
    views = Views(np.tile(np.eye(4, dtype=np.float32)[:1], (5, 1)), copies)
    with pytest.raises(TooUniform):
        reference_from_views("model-a", views, lambda: views)


def test_reference_round_trips_through_bytes_and_compares() -> None:
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(6, 4)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    views = Views(embeddings, photos_features(6, seed=3))
    reference = reference_from_views("model-a", views, lambda: views)
    again = SkuReference.from_bytes(reference.to_bytes())
    assert again.model_id == "model-a" and again.thresholds == reference.thresholds
    assert np.array_equal(again.bank, reference.bank)
    result = again.compare(Views(embeddings[2:3], views.patch_features[2:3]))
    assert result.closest == [2] and result.similarities[0] == pytest.approx(1.0)
    assert result.anomaly_maps[0].shape == (6, 6)
    assert result.anomaly_scores[0] < reference.thresholds.anomaly  # a reference is genuine


def test_one_photo_fits_on_mirrored_views() -> None:
    views = Views(np.eye(4, dtype=np.float32)[:1], photos_features(1))
    mirrored = Views(np.eye(4, dtype=np.float32)[1:3] * 0.2 + np.eye(4, dtype=np.float32)[:1],
                     photos_features(2, seed=9))
    reference = reference_from_views("model-a", views, lambda: mirrored)
    assert reference.thresholds.method == "mirrored views" and reference.thresholds.fitted_on == 2
