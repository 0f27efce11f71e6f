"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    expected_calibration_error,
    multi_label_metrics,
    reliability_bins,
    single_label_metrics,
)

LABELS = ("A", "B", "C", "D")


def one_hot_probabilities(predicted: list[int], classes: int = 4, confidence: float = 0.7) -> np.ndarray:
    probabilities = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_macro_f1_averages_classes_that_occur() -> None:
    # A: tp 1 of 2 predicted, 2 true -> F1 0.5; B: tp 2 of 3 predicted, 2 true -> P 2/3, R 1, F1 0.8;
    # C: never predicted, 1 true -> F1 0; D occurs nowhere -> left out. Macro = 1.3 / 3.
    metrics = single_label_metrics(np.array([0, 0, 1, 1, 2]), one_hot_probabilities([0, 1, 1, 1, 0]), LABELS)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["macro_f1"] == pytest.approx(1.3 / 3)
    expected_b = {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert metrics["per_class"]["B"] == pytest.approx(expected_b)
    assert metrics["confusion_matrix"][0] == [1, 1, 0, 0]
    assert metrics["confusion_matrix"][2] == [1, 0, 0, 0]


def test_unlabelled_photos_are_left_out() -> None:
    metrics = single_label_metrics(np.array([0, -1, 1]), one_hot_probabilities([0, 3, 1]), LABELS)
    assert metrics["support"] == 2
    assert metrics["accuracy"] == 1.0


def test_ece_by_hand() -> None:
    # Bin (0.867, 0.933]: confidence 0.9, half right -> gap 0.4; bin (0.6, 0.667]: 0.65, all right
    # -> gap 0.35. Each bin holds half the predictions: ECE = 0.5 * 0.4 + 0.5 * 0.35.
    confidence = np.array([0.9, 0.9, 0.65, 0.65])
    correct = np.array([1, 0, 1, 1])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.375)
    assert sum(row["count"] for row in reliability_bins(confidence, correct)) == 4


def test_ece_is_zero_when_confidence_matches_frequency() -> None:
    confidence = np.full(10, 0.7)
    correct = np.array([1] * 7 + [0] * 3)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


def test_average_precision_and_auroc_by_hand() -> None:
    # Ranked: + (P 1, R 0.5), -, + (P 2/3, R 1), -  ->  AP = 0.5 * 1 + 0.5 * 2/3.
    # AUROC: of the 4 (positive, negative) pairs, 3 are ordered correctly.
    targets = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=float)
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
    metrics = multi_label_metrics(targets, scores, ("crack", "dent"))
    crack = metrics["per_label"]["crack"]
    assert crack["average_precision"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert crack["auroc"] == pytest.approx(0.75)
    # dent has no positives: AUROC and AP are undefined, so skipped, not zero.
    assert metrics["per_label"]["dent"]["auroc"] is None
    assert metrics["macro_auroc"] == pytest.approx(0.75)
    # At 0.5 crack flags photos 0, 1 and 2: two of three are cracked, both cracks found.
    assert crack["precision"] == pytest.approx(2 / 3)
    assert crack["recall"] == pytest.approx(1.0)


def test_multi_label_thresholds_and_mask() -> None:
    targets = np.array([[1.0], [0.0], [1.0]])
    scores = np.array([[0.3], [0.2], [0.9]])
    labelled = np.array([True, True, False])
    metrics = multi_label_metrics(targets, scores, ("crack",), {"crack": 0.25}, labelled)
    assert metrics["support"] == 2
    assert metrics["per_label"]["crack"]["recall"] == 1.0
    assert metrics["per_label"]["crack"]["precision"] == 1.0
    assert metrics["accuracy"] == 1.0
