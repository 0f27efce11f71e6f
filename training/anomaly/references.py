"""Item-mismatch references: a few prototype embeddings of good photos per category, and the
similarity below which a photo is "not the declared product", fitted on val photos of the
category (damaged ones too: still the declared product) against the other categories'."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspection.anomaly import unit_rows
from training.anomaly.coreset import greedy_coreset

PROTOTYPES = 16  # the mean plus up to 15 spread-out photos: covers colours/angles of one SKU range
DEFAULT_FALSE_MISMATCH = 0.02  # genuine val photos wrongly flagged, at most


def prototypes(embeddings: np.ndarray, count: int = PROTOTYPES) -> np.ndarray:
    """The category's mean direction plus k-center-greedy picks, as unit rows (K x D)."""
    rows = unit_rows(embeddings)
    spread = rows[greedy_coreset(rows, max(1, count - 1), progress=False)]
    return unit_rows(np.concatenate([rows.mean(axis=0, keepdims=True), spread]))


def nearest_similarity(references: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of each embedding to its nearest reference row."""
    return (unit_rows(embeddings) @ references.T).max(axis=1)


@dataclass(frozen=True)
class MismatchThreshold:
    threshold: float
    genuine: int
    impostor: int
    false_mismatch_rate: float  # genuine photos below the threshold
    true_mismatch_rate: float | None  # impostor photos below the threshold


def fit_mismatch_threshold(genuine: np.ndarray, impostor: np.ndarray | None = None,
                           target: float = DEFAULT_FALSE_MISMATCH) -> MismatchThreshold:
    """Lowest `target` quantile of genuine similarities; with impostors below it, the threshold
    moves down to the middle of the gap so unseen genuine photos get margin."""
    genuine = np.asarray(genuine, dtype=np.float64)
    if genuine.size < 2:
        msg = f"need at least 2 genuine similarities, got {genuine.size}"
        raise ValueError(msg)
    threshold = float(np.quantile(genuine, target, method="lower")) - 1e-6
    others = np.asarray(impostor if impostor is not None else [], dtype=np.float64)
    below = others[others < threshold]
    if below.size:
        threshold = 0.5 * (threshold + float(below.max()))
    return MismatchThreshold(
        threshold, int(genuine.size), int(others.size), float(np.mean(genuine < threshold)),
        float(np.mean(others < threshold)) if others.size else None)
