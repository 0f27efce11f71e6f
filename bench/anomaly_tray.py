"""The served anomaly branch on the synthetic tray scenes: a bundle's model + per-category ONNX
detectors, exactly as the service runs them (reduced-scale decode, the bundle's input size),
scored on a manifest's test split. Per category: image AUROC and each damage type's detection
rate at 5 % good FPR (a photo with several damage types counts for each).

    python bench/anomaly_tray.py --bundle models/default --manifest datasets/sample/manifest.csv

Run it on an older bundle (e.g. `git worktree add /tmp/old <commit>`) for the before figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.anomaly import AnomalyDetectors  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from training.anomaly.evaluate import REPORTED_FPR, tpr_at_fpr  # noqa: E402
from training.anomaly.mvtec import GOOD  # noqa: E402
from training.anomaly.sources import manifest_category  # noqa: E402


def served_scores(engine: Engine, detectors: AnomalyDetectors, category: str,
                  paths: list[Path]) -> np.ndarray:
    scores = []
    for start in range(0, len(paths), 16):
        photos = [load_photo(p, min_side=engine.input_size) for p in paths[start:start + 16]]
        features = next(engine.iter_raw(photos, 16, outputs=["patch_features"]))["patch_features"]
        result = detectors.score_photos(category, photos, features, engine.patch_features)
        assert result is not None
        scores.append(result.raw_scores)
    return np.concatenate(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    engine = Engine.load(args.bundle, threads=1)
    detectors = AnomalyDetectors.load(args.bundle, engine.card)
    print(f"{args.bundle} ({engine.input_size} px); TPR at {REPORTED_FPR:.0%} good FPR")
    for category in detectors.categories:
        data = manifest_category(args.manifest, category)
        kinds = np.array([kind for _, kind in data.test])
        scores = served_scores(engine, detectors, category, [p for p, _ in data.test])
        rates = tpr_at_fpr(scores, kinds, REPORTED_FPR)
        auroc = roc_auc_score(kinds != GOOD, scores)
        print(f"| {category} | {auroc:.3f} | "
              + ", ".join(f"{name} {rate:.2f}" for name, rate in rates.items()) + " |",
              flush=True)


if __name__ == "__main__":
    main()
