"""Where, not only whether: pixel-level figures of the anomaly map the operator sees.

Both compare `inspection.anomaly.upsample_map` (the detector's stride-8 map resized to the photo
and Gaussian-smoothed, what the heatmap draws) with the defect masks beside the photos:

- pixel AUROC: every pixel of every masked photo is one sample.
- PRO (per-region overlap, Bergmann et al., MVTec AD): at each threshold, the mean over defect
  regions (connected components of the masks) of the share of the region above it — a small
  region counts as much as a large one — integrated over the false-positive rate of the
  defect-free pixels from 0 to 0.3 and divided by 0.3, so 1.0 is perfect and a random map
  scores about 0.15.

A detector that saw an upright cut-out (`--crop upright`) has its maps drawn back onto the photo
first (`inspection.locate.UprightItem.map_to_photo`), as the service draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from inspection.anomaly import upsample_map

MAX_FPR = 0.3  # PRO's customary integration limit
FPR_STEPS = 101


@dataclass(frozen=True)
class PixelFigures:
    auroc: float | None
    pro: float | None
    regions: int


def masked_pairs(paths: Sequence[Path], maps: Sequence[np.ndarray],
                 masks: dict[Path, Path], load_mask: Callable[[Path, Path], np.ndarray]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask, map resized to it) for every photo that has a mask."""
    pairs = []
    for path, anomaly_map in zip(paths, maps, strict=True):
        mask_path = masks.get(path)
        if mask_path is None:
            continue
        mask = load_mask(path, mask_path)
        pairs.append((mask, upsample_map(anomaly_map, mask.shape[1], mask.shape[0])))
    return pairs


def per_region_overlap(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float | None, int]:
    """PRO integrated up to MAX_FPR (normalised to 1), and the number of defect regions."""
    normal = np.concatenate([values[mask == 0] for mask, values in pairs])
    regions = []
    for mask, values in pairs:
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions.extend(np.sort(values[labels == label]) for label in range(1, count))
    if not regions or not len(normal):
        return None, len(regions)
    fprs = np.linspace(0.0, MAX_FPR, FPR_STEPS)
    thresholds = np.quantile(normal, 1.0 - fprs)
    overlap = np.array([[1.0 - np.searchsorted(region, t, side="left") / len(region)
                         for t in thresholds] for region in regions]).mean(axis=0)
    return float(np.trapezoid(overlap, fprs) / MAX_FPR), len(regions)


def pixel_figures(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> PixelFigures:
    if not pairs:
        return PixelFigures(None, None, 0)
    labels = np.concatenate([mask.ravel() for mask, _ in pairs]).astype(bool)
    if not labels.any() or labels.all():
        return PixelFigures(None, None, 0)
    auroc = float(roc_auc_score(labels, np.concatenate([values.ravel() for _, values in pairs])))
    pro, regions = per_region_overlap(pairs)
    return PixelFigures(auroc, pro, regions)
