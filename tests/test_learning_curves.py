"""bench/learning_curves.py's subset draw and scoring, on generated features (no photos)."""

from __future__ import annotations

import numpy as np

from bench.learning_curves import SHOTS, Features, curve, draw


def test_draw_takes_n_per_class_and_all_of_a_smaller_class() -> None:
    labels = np.array(["good"] * 30 + ["crack"] * 3 + ["dent"] * 12)
    chosen = draw(labels, 5, np.random.default_rng(0))
    counts = dict(zip(*np.unique(labels[chosen], return_counts=True), strict=True))
    assert counts == {"good": 5, "crack": 3, "dent": 5}
    assert len(set(chosen)) == len(chosen)  # without replacement
    np.testing.assert_array_equal(chosen, draw(labels, 5, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(chosen, draw(labels, 5, np.random.default_rng(1)))
    assert len(draw(labels, 0, np.random.default_rng(0))) == len(labels)  # 0 = all


def test_curve_has_every_point_and_separates_separable_features() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c"]), 40)
    centres = {label: 10.0 * np.eye(16)[k] for k, label in enumerate("abc")}  # apart in angle (kNN: cosine)
    x = np.stack([centres[label] + rng.normal(0.0, 1.0, 16) for label in labels])
    splits = np.tile(np.array(["train"] * 25 + ["val"] * 5 + ["test"] * 10), 3)
    features = Features(x, labels, splits)
    results = curve(features, seeds=2, pool_splits=("train",))
    assert set(results) == {(method, shots) for method in ("logistic regression", "kNN")
                            for shots in SHOTS}
    assert all(len(scores) == 2 for scores in results.values())
    assert results["logistic regression", 0] == [1.0, 1.0]  # well separated clusters
    assert min(results["kNN", 5]) > 0.9
    # Labels that carry no information score at chance, so the scores above are earned.
    shuffled = curve(Features(x, np.random.default_rng(1).permutation(labels), splits), 2, ("train",))
    assert max(shuffled["logistic regression", 0]) < 0.7
