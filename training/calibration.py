"""Pure fitting for `returns-inspect calibrate`: temperatures and flag thresholds.

Temperature scaling (Guo et al., 2017) divides a head's logits by one T > 0 chosen to minimise
the validation negative log-likelihood; it changes confidence, never the ranking or the top-1
of a head alone. Where the anomaly score's second opinion is multiplied into a head, T is fitted
on that product (what is served), and there it does change which label wins: it sets how far the
head's confidence can overrule the detector's.
T is found by golden-section search on log T (the NLL is unimodal in T), so no torch is needed.

Thresholds are placed halfway between two neighbouring validation scores, so the validation
decisions are the same whether a consumer compares with >= or >, and a score a hair away from
a boundary on new photos is not decided by float noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspection.engine import sigmoid, softmax
from inspection.second_opinion import reweigh
from inspection.taxonomy import Taxonomy

LOG_T_BOUNDS = (math.log(0.05), math.log(20.0))  # T from 0.05 (sharpen x20) to 20 (flatten x20)
DEFAULT_LOW_CONFIDENCE = 0.5  # a single-label head whose top probability is below this flags review
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
EPSILON = 1e-12  # keeps log() finite for a probability of exactly 0


@dataclass(frozen=True)
class Opinion:
    """The anomaly score's second opinion on a single-label head, per photo: the head's
    `no_defect` column and q, NaN where no opinion applies. The service multiplies it into the
    head's tempered probabilities, so the temperature is fitted on that product: fitted on the
    head alone it sharpened the head (T 0.24-0.40 on the real sets) until the head overruled the
    opinion (BENCHMARKS.md, "Temperature with the second opinion")."""

    no_defect: int
    q: np.ndarray

    def weigh(self, probabilities: np.ndarray) -> np.ndarray:
        rows = ~np.isnan(self.q)
        weighed = probabilities.copy()
        weighed[rows] = reweigh(probabilities[rows], self.no_defect, self.q[rows])
        return weighed


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray, temperature: float,
                            kind: str, opinion: Opinion | None = None) -> float:
    """Mean NLL per photo: softmax cross-entropy (`targets` = indices) for a single-label head
    (of the served probabilities where an opinion is weighed in), summed binary cross-entropy
    over labels (`targets` = 0/1 matrix) for a multi-label head."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if kind == "single":
        probabilities = softmax(scaled)
        if opinion is not None:
            probabilities = opinion.weigh(probabilities)
        picked = probabilities[np.arange(len(targets)), targets]
        return float(-np.log(picked + EPSILON).mean())
    probabilities = sigmoid(scaled)
    bce = targets * np.log(probabilities + EPSILON) + (1 - targets) * np.log(1 - probabilities + EPSILON)
    return float(-bce.sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray, kind: str, iterations: int = 80,
                    opinion: Opinion | None = None) -> float:
    """T in [0.05, 20] minimising the NLL (of what is served, with an opinion); 1.0 when there
    is nothing to fit on."""
    if len(targets) == 0:
        return 1.0
    low, high = LOG_T_BOUNDS

    def loss(log_t: float) -> float:
        return negative_log_likelihood(logits, targets, math.exp(log_t), kind, opinion)

    left, right = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
    loss_left, loss_right = loss(left), loss(right)
    for _ in range(iterations):  # the bracket shrinks by 0.618 per step: 80 steps reach 1e-16
        if loss_left <= loss_right:
            high, right, loss_right = right, left, loss_left
            left = high - GOLDEN * (high - low)
            loss_left = loss(left)
        else:
            low, left, loss_left = left, right, loss_right
            right = low + GOLDEN * (high - low)
            loss_right = loss(right)
    return float(math.exp((low + high) / 2.0))


def threshold_for_recall(scores: np.ndarray, positives: np.ndarray, target: float) -> float | None:
    """The highest threshold that still flags at least `target` of the positives (None when
    there are no positives to measure recall on)."""
    if not 0.0 < target <= 1.0:
        msg = f"recall target must be in (0, 1], got {target}"
        raise ValueError(msg)
    scores = np.asarray(scores, dtype=np.float64)
    positive_scores = np.sort(scores[np.asarray(positives, dtype=bool)])[::-1]
    if len(positive_scores) == 0:
        return None
    needed = math.ceil(target * len(positive_scores) - 1e-9)  # 0.95 x 20 = 19 photos, not 19.000001
    lowest_kept = positive_scores[needed - 1]
    below = scores[scores < lowest_kept]
    return float((lowest_kept + (below.max() if len(below) else 0.0)) / 2.0)


def threshold_for_review_rate(scores: np.ndarray, rate: float) -> float:
    """The lowest threshold at which at most `rate` of the scores are >= it."""
    if not 0.0 <= rate <= 1.0:
        msg = f"review rate must be in [0, 1], got {rate}"
        raise ValueError(msg)
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    allowed = math.floor(rate * len(ordered) + 1e-9)  # 10% of 25 items = 2 items, not 2.5
    if allowed >= len(ordered):
        return 0.0
    boundary = ordered[allowed]  # the highest score that must stay below the threshold
    above = ordered[ordered > boundary]
    if len(above):
        return float((boundary + above.min()) / 2.0)
    # Everything above the budget ties with the boundary: flag none of them.
    return float((boundary + 1.0) / 2.0) if boundary < 1.0 else math.nextafter(1.0, 2.0)


def default_thresholds(taxonomy: Taxonomy) -> dict[str, Any]:
    """0.5 for every multi-label label; the low-confidence floor for every single-label head."""
    thresholds: dict[str, Any] = {head.name: {label: 0.5 for label in head.labels}
                                  for head in taxonomy.heads if head.type == "multi"}
    thresholds["low_confidence"] = {head.name: DEFAULT_LOW_CONFIDENCE
                                    for head in taxonomy.heads if head.type == "single"}
    return thresholds
