"""Metrics of one head, pure functions of targets and probabilities (numpy + scikit-learn).

Single-label heads: accuracy, macro-F1 over the classes that occur (in truth or prediction),
per-class precision/recall/F1/support, confusion matrix, expected calibration error of the top-1
confidence. Multi-label heads: per label AUROC and average precision (skipped, as None, where
the label lacks positives or negatives: both are undefined there), precision/recall/F1 at the
card's thresholds, macro averages, and the ECE of every (photo, label) probability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

ECE_BINS = 15


def reliability_bins(confidence: np.ndarray, outcome: np.ndarray,
                     bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Equal-width confidence bins: how many predictions, their mean confidence, and how often
    the outcome was true. Bin edges are (lo, hi], the first one [0, hi]."""
    confidence = np.asarray(confidence, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        table.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
                      "confidence": float(confidence[members].mean()) if count else 0.0,
                      "accuracy": float(outcome[members].mean()) if count else 0.0})
    return table


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of (share of predictions) x |mean confidence - observed frequency|."""
    total = len(confidence)
    if total == 0:
        return 0.0
    table = reliability_bins(confidence, outcome, bins)
    return float(sum(row["count"] / total * abs(row["confidence"] - row["accuracy"]) for row in table))


def single_label_metrics(targets: np.ndarray, probabilities: np.ndarray,
                         labels: Sequence[str]) -> dict[str, Any]:
    """`targets` are label indices; rows with -1 (unlabelled) are left out."""
    keep = targets >= 0
    y_true, probs = targets[keep], probabilities[keep]
    if len(y_true) == 0:
        return {"support": 0}
    y_pred = probs.argmax(axis=1)
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    per_class = {}
    for index, label in enumerate(labels):
        tp = int(((y_pred == index) & (y_true == index)).sum())
        predicted, actual = int((y_pred == index).sum()), int((y_true == index).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    confidence = probs.max(axis=1)
    correct = (y_pred == y_true).astype(np.float64)
    return {
        "support": int(len(y_true)),
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(range(len(labels)))).tolist(),
        "ece": expected_calibration_error(confidence, correct),
        "reliability": reliability_bins(confidence, correct),
    }


def multi_label_metrics(targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str],
                        thresholds: Mapping[str, float] | None = None,
                        labelled: np.ndarray | None = None) -> dict[str, Any]:
    """`targets` is N x labels of 0/1; `labelled` masks out photos without this head's column."""
    if labelled is not None:
        targets, probabilities = targets[labelled], probabilities[labelled]
    if len(targets) == 0:
        return {"support": 0}
    thresholds = thresholds or {}
    per_label: dict[str, dict[str, Any]] = {}
    for index, label in enumerate(labels):
        y_true, score = targets[:, index], probabilities[:, index]
        decided = score >= float(thresholds.get(label, 0.5))
        tp = int((decided & (y_true == 1)).sum())
        precision = tp / int(decided.sum()) if decided.any() else 0.0
        recall = tp / int(y_true.sum()) if y_true.any() else 0.0
        both = 0 < y_true.sum() < len(y_true)
        per_label[label] = {
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "support": int(y_true.sum()), "threshold": float(thresholds.get(label, 0.5)),
            "auroc": float(roc_auc_score(y_true, score)) if both else None,
            "average_precision": float(average_precision_score(y_true, score)) if both else None,
        }
    flat_prob, flat_true = probabilities.ravel(), targets.ravel()
    decided_all = np.stack([probabilities[:, i] >= per_label[label]["threshold"]
                            for i, label in enumerate(labels)], axis=1)
    return {
        "support": int(len(targets)),
        "accuracy": float((decided_all == (targets == 1)).mean()),  # per (photo, label) decision
        "exact_match": float((decided_all == (targets == 1)).all(axis=1).mean()),
        "macro_f1": _mean([v["f1"] for v in per_label.values() if v["support"]]),
        "macro_auroc": _mean([v["auroc"] for v in per_label.values() if v["auroc"] is not None]),
        "macro_average_precision": _mean([v["average_precision"] for v in per_label.values()
                                          if v["average_precision"] is not None]),
        "per_label": per_label,
        "ece": expected_calibration_error(flat_prob, flat_true),
        "reliability": reliability_bins(flat_prob, flat_true),
    }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None
