"""Issue 10's learning curves: macro-F1 against labelled photos per class, frozen-feature baselines.

For bottle and magnetic tile (../shared/datasets; skipped when absent) it builds the same manifests
as `bench/supervised_real.py`, extracts the ImageNet backbone's pooled features of every photo once
(through the service's decode and preprocessing; cached under runs/features/), then, for
n = 5, 10, 20 and all labelled photos per class drawn from the train+val rows (`--pool train`:
the train rows only, as fine-tuning trains), fits logistic
regression and kNN on those features and scores macro-F1 of the `defect` head on the test split.
Each point is the mean ± std over 3 seeds of the subset draw ("all" has one subset, so its std
is 0 for the deterministic logistic regression).

    python bench/learning_curves.py [--datasets mvtec_bottle magnetic_tile] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.supervised_real import PREPARE, WORK, prepared  # noqa: E402

HEAD = "defect"  # the one single-label head both datasets' recipes label
SHOTS = (5, 10, 20, 0)  # labelled photos per class; 0 = all
CACHE = REPO / "runs" / "features"


@dataclass(frozen=True)
class Features:
    """Pooled backbone features of every labelled photo of a manifest, with its split."""

    x: np.ndarray  # photos x 1280 (EfficientNet-Lite's pooled head conv)
    labels: np.ndarray  # label names
    splits: np.ndarray  # "train", "val" or "test"


def extract(manifest_path: Path, backbone: str, input_size: int) -> Features:
    """Features of the manifest's labelled photos, read from the cache when the manifest is unchanged."""
    import torch

    from inspection.card import PreprocessSpec
    from inspection.images import load_photo
    from inspection.manifest import read_manifest
    from inspection.preprocess import normalise, resize_for_model
    from training.backbone import create_imagenet_model

    manifest = read_manifest(manifest_path)
    cached = CACHE / f"{manifest_path.parent.name}-{backbone}-{input_size}-{manifest.sha256()[:12]}.npz"
    if cached.is_file():
        data = np.load(cached)
        return Features(data["x"], data["labels"], data["splits"])
    torch.set_num_threads(1)  # on 2 shared cores one thread is as fast for batch-1 inference
    model = create_imagenet_model(backbone).eval()
    spec = PreprocessSpec(input_size=input_size)
    rows = [s for s in manifest.samples if s.labels.get(HEAD)]
    features = []
    with torch.inference_mode():
        for index, sample in enumerate(rows):
            rgb = resize_for_model(load_photo(manifest.image_path(sample), min_side=input_size), spec)
            image = torch.from_numpy(normalise(rgb, spec))[None]
            features.append(model.forward_head(model.forward_features(image), pre_logits=True)[0].numpy())
            if index % 100 == 0:
                print(f"  features {index}/{len(rows)}", flush=True)
    result = Features(np.stack(features), np.array([s.labels[HEAD][0] for s in rows]),
                      np.array([s.split for s in rows]))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, x=result.x, labels=result.labels, splits=result.splits)
    return result


def draw(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `shots` photos per class (all of a class that has fewer; all when shots is 0)."""
    chosen: list[int] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        chosen.extend(rows if not shots or len(rows) <= shots else rng.choice(rows, shots, replace=False))
    return np.sort(np.array(chosen))


def score(method: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
          test_y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler, normalize

    if method == "logistic regression":
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000,
                                                                   class_weight="balanced"))
        model.fit(train_x, train_y)
        predicted = model.predict(test_x)
    else:  # kNN on L2-normalised features (cosine), k at most the smallest class's count
        k = max(1, min(5, int(np.unique(train_y, return_counts=True)[1].min())))
        knn = KNeighborsClassifier(n_neighbors=k, weights="distance")
        knn.fit(normalize(train_x), train_y)
        predicted = knn.predict(normalize(test_x))
    return float(f1_score(test_y, predicted, average="macro", zero_division=0))


def curve(features: Features, seeds: int, pool_splits: tuple[str, ...]) -> dict[tuple[str, int], list[float]]:
    pool = np.isin(features.splits, pool_splits)
    test = features.splits == "test"
    results: dict[tuple[str, int], list[float]] = {}
    for shots in SHOTS:
        for seed in range(seeds):
            chosen = np.flatnonzero(pool)[draw(features.labels[pool], shots, np.random.default_rng(seed))]
            for method in ("logistic regression", "kNN"):
                results.setdefault((method, shots), []).append(score(
                    method, features.x[chosen], features.labels[chosen], features.x[test],
                    features.labels[test]))
    return results


def print_table(dataset: str, features: Features, results: dict[tuple[str, int], list[float]],
                pool_splits: tuple[str, ...]) -> None:
    pool = features.labels[np.isin(features.splits, pool_splits)]
    counts = ", ".join(f"{k} {v}" for k, v in zip(*np.unique(pool, return_counts=True), strict=True))
    print(f"\n{dataset}: test macro-F1 of `{HEAD}`, mean ± std over seeds "
          f"(labelled pool {'+'.join(pool_splits)} per class: {counts}; "
          f"test photos: {int((features.splits == 'test').sum())})")
    print("| method | " + " | ".join(f"{s or 'all'} / class" for s in SHOTS) + " |")
    print("|---" * (len(SHOTS) + 1) + "|")
    for method in ("logistic regression", "kNN"):
        cells = [f"{np.mean(results[method, s]):.3f} ± {np.std(results[method, s]):.3f}" for s in SHOTS]
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(PREPARE), choices=list(PREPARE))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--pool", choices=["train+val", "train"], default="train+val",
                        help="splits the labelled photos are drawn from (train: as fine-tuning trains)")
    args = parser.parse_args()
    if not prepared(args.datasets):
        return 0
    for dataset in args.datasets:
        started = time.perf_counter()
        features = extract(WORK / dataset / "manifest.csv", args.backbone, args.input_size)
        print(f"{dataset}: {len(features.x)} photos' features in {time.perf_counter() - started:.0f} s "
              f"({args.backbone}, {args.input_size} px)")
        pool_splits = tuple(args.pool.split("+"))
        print_table(dataset, features, curve(features, args.seeds, pool_splits), pool_splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
