"""Ablation of the anomaly detector on an MVTec-layout category: which backbone layers, coreset
ratio and input resolution. Same protocol as `returns-inspect anomaly evaluate` (fit on
train/good less a seeded held-out fifth, threshold from that fifth), features extracted once per
resolution and shared by the runs.

    python bench/ablation_anomaly.py --root ../shared/datasets/mvtec_ad --category bottle

Besides AUROC (saturated on easy categories), `margin` = lowest defect score / highest good
test score: above 1 every defect outranks every good photo, and the larger it is the more room
the threshold has.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.card import PreprocessSpec  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.preprocess import batch_inputs  # noqa: E402
from training.anomaly.extractor import (  # noqa: E402
    imagenet_backbone,
    pooled_patches,
    timm_feature_maps,
)
from training.anomaly.mvtec import GOOD, holdout_split, scan_category  # noqa: E402
from training.anomaly.patchcore import PatchCore  # noqa: E402
from training.anomaly.threshold import fit_calibration  # noqa: E402

# (input size, layers, coreset ratio); the default is (224, (8, 16), 0.1)
RUNS = [
    (224, (8,), 0.01), (224, (16,), 0.01), (224, (8, 16), 0.01), (224, (4, 8), 0.01),
    (224, (8, 16, 32), 0.01), (224, (8, 16), 0.001), (224, (8, 16), 0.1),
    (160, (8, 16), 0.01), (320, (8, 16), 0.01),
]


@torch.inference_mode()
def features(model: torch.nn.Module, photos: list[np.ndarray], size: int,
             strides: tuple[int, ...]) -> np.ndarray:
    spec = PreprocessSpec(input_size=size)
    out = []
    for start in range(0, len(photos), 8):
        images = torch.from_numpy(batch_inputs(photos[start:start + 8], spec))
        out.append(pooled_patches(timm_feature_maps(model, images), strides).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--category", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch {torch.__version__}, {args.threads} thread(s)")
    data = scan_category(args.root, args.category)
    fit_paths, held_paths = holdout_split(data.train_good, 0.2, 0)
    photos = {p: load_photo(p) for p in [*fit_paths, *held_paths, *(p for p, _ in data.test)]}
    kinds = np.array([kind for _, kind in data.test])
    model = imagenet_backbone()
    print("| input | layers | coreset | bank | AUROC | margin | detected | good FP | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, strides, ratio in RUNS:
        started = time.perf_counter()
        fit = features(model, [photos[p] for p in fit_paths], size, strides)
        detector = PatchCore.fit(fit, ratio, progress=False)
        seconds = time.perf_counter() - started
        held = detector.score(features(model, [photos[p] for p in held_paths], size, strides))[0]
        calibration = fit_calibration(held)
        scores = detector.score(features(model, [photos[p] for p, _ in data.test], size,
                                         strides))[0] / calibration.normaliser
        bad = kinds != GOOD
        flagged = scores >= calibration.threshold
        print(f"| {size} | {'+'.join(map(str, strides))} | {ratio} | {len(detector.bank)} | "
              f"{roc_auc_score(bad, scores):.4f} | {scores[bad].min() / scores[~bad].max():.2f} | "
              f"{flagged[bad].mean():.1%} | {flagged[~bad].mean():.1%} | {seconds:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
