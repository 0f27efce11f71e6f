"""The anomaly score as a second opinion on whether a photo shows a defect (issue 10 item 3).

A good-only detector has seen every good photo; a supervised head trained on 5-10 photos per
defect kind has seen few defects, and calls some of them good. Where the detector separates the
held-out goods from the labelled defects, its normalised score s says how likely the photo shows
*some* defect: q = P(defect | s) = sigmoid(slope * ln s + intercept), a logistic regression fitted
class-balanced by `anomaly fit` (so its prior is one half, and a score it cannot read leaves q
near one half). The head's probabilities and q combine as a product of experts: the head's
`no_defect` label is weighed by (1 - q) / 0.5, every other label by q / 0.5, and the row is
renormalised. It decides good vs defect; which defect stays the head's call.

Measured (BENCHMARKS.md "Few labelled defects, second round"): test macro-F1 of MVTec bottle
0.867 -> 0.899, magnetic tile with 10 labelled defects per kind 0.699 -> 0.732; never lower on
the mean. No torch: the service applies it (inspection.pipeline), `evaluate` measures it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from inspection.errors import BundleError
from inspection.taxonomy import Taxonomy

CARD_KEY = "second_opinion"  # in a card.anomaly[category] entry


@dataclass(frozen=True)
class SecondOpinion:
    slope: float  # per unit of ln(normalised anomaly score)
    intercept: float
    heads: tuple[str, ...]  # single-label heads with a `no_defect` label that it weighs
    fitted_on: Mapping[str, Any]  # goods, defects, their AUROC: how much to trust it

    def defect_probability(self, scores: np.ndarray) -> np.ndarray:
        """q per photo from its normalised anomaly score."""
        logit = self.slope * np.log(np.maximum(np.asarray(scores, np.float64), 1e-12)) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def to_entry(self) -> dict[str, Any]:
        return {**asdict(self), "heads": list(self.heads), "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], taxonomy: Taxonomy, where: str) -> SecondOpinion:
        """Read a card entry; refuse one naming a head that cannot take it."""
        try:
            opinion = cls(float(entry["slope"]), float(entry["intercept"]),
                          tuple(str(head) for head in entry["heads"]), dict(entry.get("fitted_on", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: not a second opinion ({exc})") from None
        for head in opinion.heads:
            if not taxonomy.has_head(head) or taxonomy.head(head).no_defect is None:
                raise BundleError(f"{where}: head {head!r} is not a single-label head with a "
                                  "`no_defect` label in the card's taxonomy")
        return opinion


def reweigh(probabilities: np.ndarray, no_defect: int, defect_probability: np.ndarray) -> np.ndarray:
    """A head's probabilities (N x K) weighed by q per photo (N): the `no_defect` column by
    (1 - q) / 0.5, every other by q / 0.5; rows renormalised."""
    q = np.asarray(defect_probability, np.float64)[:, None]
    weights = np.repeat(2.0 * q, probabilities.shape[1], axis=1)
    weights[:, no_defect] = 2.0 * (1.0 - q[:, 0])
    fused = np.asarray(probabilities, np.float64) * weights
    return fused / np.maximum(fused.sum(axis=1, keepdims=True), 1e-300)


def reweigh_labels(probabilities: Mapping[str, float], no_defect: str, defect_probability: float
                   ) -> dict[str, float]:
    """`reweigh` for one photo's label -> probability mapping."""
    labels = list(probabilities)
    row = np.array([[probabilities[label] for label in labels]])
    fused = reweigh(row, labels.index(no_defect), np.array([defect_probability]))[0]
    return {label: float(value) for label, value in zip(labels, fused, strict=True)}


def apply_opinion(opinion: SecondOpinion, taxonomy: Taxonomy,
                  probabilities: Mapping[str, Mapping[str, float]], score: float
                  ) -> tuple[dict[str, dict[str, float]], float]:
    """One photo's served probabilities (head -> label -> p) with the opinion weighed into the
    heads it names, and q."""
    q = float(opinion.defect_probability(np.array([score]))[0])
    weighed = {head: dict(labels) for head, labels in probabilities.items()}
    for head in opinion.heads:
        if head in weighed:
            weighed[head] = reweigh_labels(weighed[head], str(taxonomy.head(head).no_defect), q)
    return weighed, q
