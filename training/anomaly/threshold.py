"""Per-category score normalisation and threshold, fitted on held-out good photos.

normalised score = raw score / normaliser, where the normaliser is a high quantile of held-out
good photos' raw scores: 1.0 means "as unusual as the most unusual normal photos". The
threshold (in normalised units) keeps the held-out good false-positive rate at or under the
target; where held-out defects exist it moves up into the gap between goods and defects, which
buys margin for unseen good photos without missing any held-out defect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from inspection.second_opinion import SecondOpinion

DEFAULT_TARGET_FPR = 0.02


@dataclass(frozen=True)
class Calibration:
    normaliser: float  # raw score that maps to 1.0
    threshold: float  # normalised score at or above which a photo is anomalous
    fitted_on: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_calibration(good_scores: np.ndarray, defect_scores: np.ndarray | None = None,
                    target_fpr: float = DEFAULT_TARGET_FPR) -> Calibration:
    """Fit normaliser and threshold from held-out raw scores (see module docstring)."""
    good = np.asarray(good_scores, dtype=np.float64)
    if good.size < 2:
        msg = f"need at least 2 held-out good scores to calibrate, got {good.size}"
        raise ValueError(msg)
    if not 0.0 <= target_fpr < 1.0:
        msg = f"target false-positive rate must be in [0, 1), got {target_fpr}"
        raise ValueError(msg)
    # `higher` quantile: an actual held-out score, so at most target_fpr of goods lie above it
    normaliser = float(np.quantile(good, 1.0 - target_fpr, method="higher"))
    normaliser = max(normaliser, 1e-12)
    threshold = 1.0 + 1e-6  # strictly above the quantile's own good photo
    defects = np.asarray(defect_scores if defect_scores is not None else [], dtype=np.float64)
    above = defects[defects / normaliser > threshold] / normaliser
    if above.size:
        threshold = float(np.sqrt(threshold * above.min()))  # geometric middle of the gap
    return Calibration(normaliser, threshold, {
        "good": int(good.size), "defect": int(defects.size), "target_fpr": target_fpr,
        "good_fpr": float(np.mean(good / normaliser >= threshold)),
        "defect_tpr": float(np.mean(defects / normaliser >= threshold)) if defects.size else None,
    })


# The regression's C (its slope's L2 penalty is 1 / C). A steeper opinion (C 10-1000, or C chosen
# by cross-validation) gains MVTec bottle 0.007 macro-F1 and costs magnetic tile 0.02-0.03, whose
# goods and defects overlap (BENCHMARKS.md, "The defect up close, and a steeper second opinion").
OPINION_INVERSE_PENALTY = 1.0
MIN_OPINION_PHOTOS = 2  # goods and defects each: fewer, and the regression is a guess


def opinion_examples(good: np.ndarray, defects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second opinion's regression inputs: the log score (one column) and 1 for a defect."""
    log_scores = np.log(np.maximum(np.r_[good, defects], 1e-12))[:, None]
    return log_scores, np.r_[np.zeros(np.size(good)), np.ones(np.size(defects))]


def fit_second_opinion(good_scores: np.ndarray, defect_scores: np.ndarray,
                       heads: tuple[str, ...], inverse_penalty: float = OPINION_INVERSE_PENALTY
                       ) -> tuple[SecondOpinion | None, str]:
    """P(defect | normalised score) for inspection.second_opinion: a logistic regression on the
    log score, held-out goods against labelled defects, class-balanced so its prior is one half.
    (None, why) where there are too few photos or the score does not rise with defects."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    good = np.asarray(good_scores, np.float64)
    defects = np.asarray(defect_scores, np.float64)
    if min(good.size, defects.size) < MIN_OPINION_PHOTOS:
        return None, (f"needs {MIN_OPINION_PHOTOS} held-out good and {MIN_OPINION_PHOTOS} labelled "
                      f"defect photos, has {good.size} and {defects.size}")
    log_scores, is_defect = opinion_examples(good, defects)
    regression = LogisticRegression(class_weight="balanced", C=inverse_penalty).fit(log_scores, is_defect)
    slope, intercept = float(regression.coef_[0, 0]), float(regression.intercept_[0])
    if slope <= 0.0:  # a higher score meaning "less likely a defect" is noise, not an opinion
        return None, f"the anomaly score does not rise with defects (slope {slope:.3f})"
    auroc = float(roc_auc_score(is_defect, log_scores[:, 0]))
    return SecondOpinion(slope, intercept, heads, {"good": int(good.size),
                                                   "defect": int(defects.size),
                                                   "auroc": auroc}), ""
