"""PRO and pixel AUROC of the operator's heatmap against defect masks, and that the heatmap drawn
for the operator is the map measured."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.anomaly import upsample_map
from inspection.service.heatmap import ANOMALY, heat_over
from training.anomaly.pixel_metrics import per_region_overlap, pixel_figures


def _pair(regions: list[tuple[slice, slice]], found: list[bool], size: int = 64
          ) -> tuple[np.ndarray, np.ndarray]:
    """A mask with these regions and a map that is high on the `found` ones only."""
    rng = np.random.default_rng(len(regions))
    mask = np.zeros((size, size), np.uint8)
    values = rng.random((size, size)).astype(np.float32) * 0.5
    for (rows, cols), hit in zip(regions, found, strict=True):
        mask[rows, cols] = 1
        if hit:
            values[rows, cols] = 1.0
    return mask, values


def test_a_map_that_finds_every_region_scores_one() -> None:
    pairs = [_pair([(slice(2, 6), slice(2, 6)), (slice(30, 60), slice(30, 60))], [True, True])]
    pro, regions = per_region_overlap(pairs)
    assert regions == 2 and pro == pytest.approx(1.0, abs=1e-6)


def test_a_small_missed_region_counts_as_much_as_a_large_found_one() -> None:
    """Pixel AUROC barely notices a missed 4x4 stain beside a found 30x30 crack; PRO halves."""
    pairs = [_pair([(slice(2, 6), slice(2, 6)), (slice(30, 60), slice(30, 60))], [False, True])]
    figures = pixel_figures(pairs)
    assert figures.auroc is not None and figures.auroc > 0.95
    assert figures.pro is not None and 0.45 < figures.pro < 0.6


def test_a_random_map_scores_near_chance() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((128, 128), np.uint8)
    mask[10:40, 10:40] = 1
    mask[80:100, 60:120] = 1
    figures = pixel_figures([(mask, rng.random((128, 128)).astype(np.float32))])
    assert figures.auroc == pytest.approx(0.5, abs=0.05)
    assert figures.pro == pytest.approx(0.15, abs=0.05)  # the mean of the FPR over [0, 0.3]


def test_no_masks_no_figures() -> None:
    empty = np.zeros((8, 8), np.uint8)
    assert pixel_figures([]).auroc is None
    assert pixel_figures([(empty, np.ones((8, 8), np.float32))]).pro is None


def test_the_operators_anomaly_heatmap_is_the_measured_map() -> None:
    grid = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    drawn = heat_over(ANOMALY, grid, 160, 120)
    measured = upsample_map(grid, 160, 120)
    assert drawn.shape == (120, 160)
    assert np.array_equal(np.argsort(drawn, axis=None)[-50:], np.argsort(measured, axis=None)[-50:])
    assert heat_over("crack", grid, 160, 120).shape == (20, 20)  # a CAM: `overlay` resizes it
