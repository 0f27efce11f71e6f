"""Gap analysis: our anomaly detector against the published PatchCore recipe, one step at a time,
on every set at hand (MVTec bottle, magnetic tile, the synthetic products' categories).

    python bench/anomaly_gap.py --sets bottle magnetic_tile phone shoe headphones boxed_kit \
        [--steps ours,bank10,...] [--max-fit 200 --max-test-good 100] [--json runs/gap.json]

Backbone maps (strides 8 and 16 of EfficientNet-Lite0, ImageNet weights) are extracted once per
set and pre-processing and cached under runs/anomaly-gap/, so each step only re-runs what it
changes. Every photo is decoded as the service decodes it (reduced-scale JPEG decode). A step is
(pre-processing, border pooling, bank, image score); the reference recipe (anomalib's default
Patchcore) is: 256 px, ImageNet mean/std, 3x3 average counting padding, 10 % coreset, density-
reweighted score with 9 neighbours. Magnetic tile's pixel AUROC uses the map the operator sees
(inspection.anomaly.upsample_map) against the masks beside the photos.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.anomaly import upsample_map  # noqa: E402
from inspection.card import PreprocessSpec  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.preprocess import resize_for_model  # noqa: E402
from training.anomaly.extractor import imagenet_backbone, timm_feature_maps  # noqa: E402
from training.anomaly.mvtec import GOOD, MvtecCategory  # noqa: E402
from training.anomaly.patchcore import (  # noqa: E402
    MAX_BANK,
    SEARCHED_ROWS,
    PatchCore,
    build_bank,
    support_neighbours,
)
from training.anomaly.sources import find_category  # noqa: E402

CACHE = Path("runs/anomaly-gap")
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# name -> (input size, normalisation); ours: (x - 127) / 128, what the TF weights were trained on
PREPROCESS = {"ours224": (224, "tf"), "ours256": (256, "tf"), "ours288": (288, "tf"),
              "ours320": (320, "tf"), "ref224": (224, "imagenet"),
              "ref256": (256, "imagenet")}


@dataclass(frozen=True)
class Step:
    preprocess: str
    count_pad: bool  # 3x3 average over the zero padding too (torch's AvgPool2d default)
    ratio: float
    cap: int | None  # largest bank
    neighbours: int  # 1 = worst patch's distance; 9 = PatchCore's density reweighting
    searched: int | None = None  # rows every patch sees; the worst patches see the rest


CAP_BEFORE = 1536  # the bank's cap before the two-pass search (2026-12-04)
STEPS = {
    "ours": Step("ours224", False, 0.01, CAP_BEFORE, 1),
    "reweight": Step("ours224", False, 0.01, CAP_BEFORE, 9),
    "pad": Step("ours224", True, 0.01, CAP_BEFORE, 1),
    "256px": Step("ours256", False, 0.01, CAP_BEFORE, 1),
    "256px+imagenet-norm": Step("ref256", False, 0.01, CAP_BEFORE, 1),
    "256px+reweight": Step("ours256", False, 0.01, CAP_BEFORE, 9),
    "bank3+reweight": Step("ours224", False, 0.03, None, 9),
    "bank10": Step("ours224", False, 0.10, None, 1),
    "bank10+reweight": Step("ours224", False, 0.10, None, 9),
    "pad+bank10": Step("ours224", True, 0.10, None, 1),
    "pad+bank4096": Step("ours224", True, 0.10, 4096, 1),
    "pad+bank10cap": Step("ours224", True, 0.10, CAP_BEFORE, 1),
    "pad+bank2cap": Step("ours224", True, 0.02, CAP_BEFORE, 1),
    "pad+bank3cap": Step("ours224", True, 0.03, CAP_BEFORE, 1),
    "pad+256px": Step("ours256", True, 0.01, CAP_BEFORE, 1),
    "pad+imagenet-norm": Step("ref224", True, 0.01, CAP_BEFORE, 1),
    "pad+256px+bank10": Step("ours256", True, 0.10, None, 1),
    "pad+256px+bank2cap": Step("ours256", True, 0.02, CAP_BEFORE, 1),  # the default 12-03 to 12-04
    "pad+256px+bank3cap": Step("ours256", True, 0.03, CAP_BEFORE, 1),
    "pad+256px+bank10cap": Step("ours256", True, 0.10, CAP_BEFORE, 1),
    "pad+256px+bank3072": Step("ours256", True, 0.10, 3072, 1),
    "pad+256px+bank4096": Step("ours256", True, 0.10, 4096, 1),
    "pad+288px": Step("ours288", True, 0.01, CAP_BEFORE, 1),
    "pad+320px": Step("ours320", True, 0.01, CAP_BEFORE, 1),
    "pad+reweight": Step("ours224", True, 0.01, CAP_BEFORE, 9),
    "pad+bank10+reweight": Step("ours224", True, 0.10, None, 9),
    # every step of anomalib's default recipe at once: our copy of the reference
    "reference": Step("ref256", True, 0.10, None, 9),
    # the default since 2026-12-04: 4,096 rows, 1,536 searched by every patch
    "pad+256px+bank2+twopass": Step("ours256", True, 0.02, MAX_BANK, 1, SEARCHED_ROWS),
}


def load_set(name: str, args: argparse.Namespace) -> MvtecCategory:
    """The named set, with a seeded bound on fit and test-good photos where it is large."""
    if name == "bottle":
        data = find_category(args.mvtec, "bottle")
    elif name == "magnetic_tile":
        data = find_category(args.magnetic_tile.parent, args.magnetic_tile.name)
    else:
        data = find_category(None, name, manifest=args.manifest)
    rng = random.Random(args.draw)  # which fit photos and test goods: seeded, 0 by default
    fit = sorted(rng.sample(data.train_good, min(args.max_fit, len(data.train_good))))
    goods = [p for p, kind in data.test if kind == GOOD]
    keep = set(rng.sample(goods, min(args.max_test_good, len(goods))))
    test = tuple((p, k) for p, k in data.test if k != GOOD or p in keep)
    return MvtecCategory(tuple(fit), test, data.masks)


@torch.inference_mode()
def backbone_maps(model: torch.nn.Module, paths: list[Path], preprocess: str
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Stride-8 and stride-16 maps (float16) of every photo, and seconds per photo."""
    size, norm = PREPROCESS[preprocess]
    mean, std = ((127.0,) * 3, (128.0,) * 3) if norm == "tf" else (IMAGENET_MEAN, IMAGENET_STD)
    spec = PreprocessSpec(input_size=size)
    fine, coarse = [], []
    started = time.perf_counter()
    for start in range(0, len(paths), 8):
        photos = [resize_for_model(load_photo(p, min_side=size), spec)
                  for p in paths[start:start + 8]]
        batch = ((np.stack(photos) - np.float32(mean)) / np.float32(std)).astype(np.float32)
        maps = timm_feature_maps(model, torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()))
        fine.append(maps[8].half().numpy())
        coarse.append(maps[16].half().numpy())
    seconds = (time.perf_counter() - started) / max(1, len(paths))
    return np.concatenate(fine), np.concatenate(coarse), seconds


def cached_maps(model: torch.nn.Module, set_name: str, part: str, paths: list[Path],
                preprocess: str, draw: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    suffix = f"-draw{draw}" if draw else ""  # draw 0 keeps the caches of before
    path = CACHE / f"{set_name}-{part}-{preprocess}-{len(paths)}{suffix}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["fine"], data["coarse"], float(data["seconds"])
    fine, coarse, seconds = backbone_maps(model, paths, preprocess)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, fine=fine, coarse=coarse, seconds=seconds)
    return fine, coarse, seconds


def pooled(fine: np.ndarray, coarse: np.ndarray, count_pad: bool) -> np.ndarray:
    """3x3 neighbourhood average of both maps, stride 16 resized to stride 8, concatenated."""
    parts = []
    for array in (fine, coarse):
        maps = torch.from_numpy(array.astype(np.float32))
        parts.append(F.avg_pool2d(maps, 3, stride=1, padding=1, count_include_pad=count_pad))
    parts[1] = F.interpolate(parts[1], size=parts[0].shape[-2:], mode="bilinear",
                             align_corners=False)
    return torch.cat(parts, dim=1).numpy()


def pixel_auroc(data: MvtecCategory, paths: list[Path], maps: np.ndarray) -> float | None:
    """Pixel AUROC of the operator's heatmap (upsampled, smoothed) against the masks."""
    truth, predicted = [], []
    for path, anomaly_map in zip(paths, maps, strict=True):
        mask_path = data.masks.get(path)
        if mask_path is None and data.masks:
            continue
        if mask_path is None:
            return None
        mask = load_photo(mask_path)[:, :, 0] > 127
        truth.append(mask[::2, ::2].ravel())  # every 2nd pixel: same figure, a quarter the work
        heat = upsample_map(anomaly_map, mask.shape[1], mask.shape[0])
        predicted.append(heat[::2, ::2].ravel())
    if not truth:
        return None
    labels = np.concatenate(truth)
    return float(roc_auc_score(labels, np.concatenate(predicted))) if labels.any() else None


def run_step(step: Step, fit: np.ndarray, test: np.ndarray, labels: np.ndarray,
             banks: dict[tuple, tuple[np.ndarray, float]]) -> tuple[dict[str, float], np.ndarray]:
    """Fit the bank (shared by steps that differ only in the score) and score the test
    photos for one step; figures and the anomaly maps."""
    key = (step.preprocess, step.count_pad, step.ratio, step.cap, step.searched)
    if key not in banks:
        started = time.perf_counter()
        banks[key] = (build_bank(fit, step.ratio, progress=False, max_bank=step.cap,
                                 searched_rows=step.searched),
                      time.perf_counter() - started)
    bank, bank_seconds = banks[key]
    started = time.perf_counter()
    support = support_neighbours(bank, step.neighbours) if step.neighbours > 1 else None
    bank_seconds += time.perf_counter() - started
    started = time.perf_counter()
    scores, maps = PatchCore(bank, support, step.searched).score(test)
    score_seconds = time.perf_counter() - started
    return ({"image_auroc": float(roc_auc_score(labels, scores)), "bank": int(len(bank)),
             "bank_seconds": bank_seconds, "nn_ms_per_photo": 1000 * score_seconds / len(test)},
            maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["bottle", "magnetic_tile", "phone", "shoe",
                                                      "headphones", "boxed_kit"])
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--mvtec", type=Path, default=Path("../shared/datasets/mvtec_ad"))
    parser.add_argument("--magnetic-tile", type=Path,
                        default=Path("../shared/datasets/magnetic_tile"))
    parser.add_argument("--manifest", type=Path,
                        default=Path("/work/main/datasets/sample/manifest.csv"))
    parser.add_argument("--max-fit", type=int, default=200, help="good photos fitted, at most")
    parser.add_argument("--max-test-good", type=int, default=100)
    parser.add_argument("--draw", type=int, default=0,
                        help="seed of which good photos fit and which test goods are scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch {torch.__version__}, {args.threads} thread(s)")
    model = imagenet_backbone()
    results: dict[str, dict[str, dict]] = {}
    steps = args.steps.split(",")
    print("| set | step | image AUROC | pixel AUROC | bank | fit s | ms/photo |")
    print("|---|---|---|---|---|---|---|")
    for set_name in args.sets:
        data = load_set(set_name, args)
        test_paths = [p for p, _ in data.test]
        labels = np.array([kind != GOOD for _, kind in data.test])
        results[set_name] = {}
        banks: dict[tuple, tuple[np.ndarray, float]] = {}
        for name in steps:
            step = STEPS[name]
            fit_maps = cached_maps(model, set_name, "fit", list(data.train_good), step.preprocess,
                                   args.draw)
            test_maps = cached_maps(model, set_name, "test", test_paths, step.preprocess,
                                    args.draw)
            figures, maps = run_step(step, pooled(*fit_maps[:2], step.count_pad),
                                     pooled(*test_maps[:2], step.count_pad), labels, banks)
            figures["fit_seconds"] = figures["bank_seconds"] + fit_maps[2] * len(data.train_good)
            figures["ms_per_photo"] = figures["nn_ms_per_photo"] + 1000 * test_maps[2]
            figures["pixel_auroc"] = pixel_auroc(data, test_paths, maps) if data.masks else None
            results[set_name][name] = figures
            pixel = f"{figures['pixel_auroc']:.4f}" if figures["pixel_auroc"] else "—"
            print(f"| {set_name} | {name} | {figures['image_auroc']:.4f} | {pixel} | "
                  f"{figures['bank']} | {figures['fit_seconds']:.0f} | "
                  f"{figures['ms_per_photo']:.1f} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": describe(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
