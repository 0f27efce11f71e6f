"""A SKU's thresholds, fitted from its reference photos alone (leave-one-out).

Each reference photo is compared with the others, as a returned unit of that SKU would be: its
distance to the nearest other reference photo (1 - cosine similarity of embeddings), and its
patches' distance to the bank rows that came from the other photos. Those are what a genuine
unit scores, so a threshold is placed where only `false_flag_target` of genuine units would
cross it. Ten references cannot show a 2% tail (the worst of ten is exceeded by ~9% of new
units), so the threshold is the more lenient of the empirical quantile and a log-normal
prediction limit, exp(mean + z * sd * sqrt(1 + 1/n)) of the log distances (distances are
positive and right-skewed), z the target's normal quantile.

Photos that were not among the references are farther from them than references are from each
other (`catalog evaluate` on MVTec bottle: held-out good photos ~1.4x the leave-one-out
distance of embeddings), so the mismatch limit gets MISMATCH_MARGIN on top; it is not applied to
the anomaly limit, where it would cost most of the defect recall (BENCHMARKS.md).

Fewer than three photos give too few leave-one-out scores: the fit then compares mirrored
views of each photo with the photos (a unit lying the other way round). That is far tighter
than a new unit; `catalog evaluate` measures what it costs at N = 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_FALSE_FLAG_TARGET = 0.02  # per check: 2% of genuine units flagged, as for the category detectors
MISMATCH_MARGIN = 1.5  # new units vs leave-one-out, on the embedding distance (docstring)
IDENTICAL_DISTANCE = 1e-3  # worst patch distance, relative to the features' scale: the same picture


class TooUniform(ValueError):
    """The references do not vary at all: there is nothing to fit a threshold from."""


@dataclass(frozen=True)
class FittedThresholds:
    similarity: float  # a photo whose nearest reference is less similar than this: item_mismatch
    anomaly: float  # normalised anomaly score at or above which a photo is anomalous
    normaliser: float  # raw patch distance that maps to 1.0 (the highest leave-one-out score)
    false_flag_target: float
    fitted_on: int  # leave-one-out scores behind each threshold
    method: str  # leave-one-out | mirrored views

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedThresholds:
        return cls(**data)


def refuse_copies(worst_distance: float, feature_scale: float) -> None:
    """Photos whose every patch has an exact twin in another photo are one picture sent again."""
    if worst_distance <= IDENTICAL_DISTANCE * feature_scale:
        msg = ("the reference photos are copies of one picture, so nothing tells how much a "
               "genuine unit varies; send photos of the product in different positions or of "
               "different units")
        raise TooUniform(msg)


def upper_limit(distances: np.ndarray, target: float) -> float:
    """Where at most `target` of genuine distances lie above (see the module's docstring)."""
    values = np.maximum(np.asarray(distances, dtype=np.float64), 1e-9)
    empirical = float(np.quantile(values, 1.0 - target, method="higher"))
    if len(values) < 2:
        return empirical
    logs = np.log(values)
    z = NormalDist().inv_cdf(1.0 - target)
    predicted = float(np.exp(logs.mean() + z * logs.std(ddof=1) * np.sqrt(1.0 + 1.0 / len(values))))
    return max(empirical, predicted)


def fit_thresholds(similarities: np.ndarray, anomaly_scores: np.ndarray, feature_scale: float,
                   target: float = DEFAULT_FALSE_FLAG_TARGET, method: str = "leave-one-out"
                   ) -> FittedThresholds:
    """Thresholds from genuine units' scores: nearest-reference similarities (higher is more
    alike) and raw anomaly scores (worst patch distance; lower is more alike)."""
    if not 0.0 < target < 0.5:
        msg = f"the false-flag target must be in (0, 0.5), got {target}"
        raise ValueError(msg)
    similarities = np.asarray(similarities, dtype=np.float64)
    anomaly_scores = np.asarray(anomaly_scores, dtype=np.float64)
    refuse_copies(float(anomaly_scores.max()), feature_scale)
    normaliser = float(anomaly_scores.max())
    similarity = 1.0 - MISMATCH_MARGIN * upper_limit(1.0 - similarities, target)
    anomaly = upper_limit(anomaly_scores / normaliser, target)
    return FittedThresholds(similarity=similarity, anomaly=anomaly, normaliser=normaliser,
                            false_flag_target=target, fitted_on=len(similarities), method=method)
