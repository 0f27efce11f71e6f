"""`returns-inspect anomaly evaluate`: the MVTec AD protocol on any folder in its layout.

Fit the memory bank on train/good (less a seeded held-out slice), fit the normaliser and
threshold on that held-out slice (test labels are never used for it), score every test photo,
and report image-level AUROC plus each defect kind's detection rate at the threshold.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from inspection.errors import InputError
from inspection.images import load_photo
from training.anomaly.extractor import DEFAULT_STRIDES, extract_all, torch_patch_extractor
from training.anomaly.mvtec import GOOD, holdout_split, scan_category
from training.anomaly.patchcore import PatchCore
from training.anomaly.threshold import DEFAULT_TARGET_FPR, fit_calibration

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="folder holding <category>/")
    parser.add_argument("--category", required=True)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--coreset-ratio", type=float, default=0.01,
                        help="share of patches kept; 0.01 keeps the detector within 1.5x latency")
    parser.add_argument("--layers", default=",".join(map(str, DEFAULT_STRIDES)),
                        help="strides of the backbone maps to use, e.g. 8,16 (from 4,8,16,32)")
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="fraction of train/good held out to fit the threshold")
    parser.add_argument("--target-fpr", type=float, default=DEFAULT_TARGET_FPR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        strides = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise InputError(f"expected comma-separated strides, got {text!r}", "--layers") from None
    if not strides or not set(strides) <= {4, 8, 16, 32}:
        raise InputError(f"strides must be among 4,8,16,32, got {text!r}", "--layers")
    return strides


def run_protocol(root: Path, category: str, input_size: int = 224, coreset_ratio: float = 0.01,
                 strides: tuple[int, ...] = DEFAULT_STRIDES, holdout: float = 0.2,
                 target_fpr: float = DEFAULT_TARGET_FPR, seed: int = 0) -> dict[str, Any]:
    """Fit, calibrate and score one category; return the figures as a JSON-able dict."""
    if not 0.0 < coreset_ratio <= 1.0:
        raise InputError(f"must be in (0, 1], got {coreset_ratio}", "--coreset-ratio")
    if input_size < 32 or input_size % 32:
        raise InputError(f"must be a multiple of 32, got {input_size}", "--input-size")
    data = scan_category(root, category)
    fit_photos, held_photos = holdout_split(data.train_good, holdout, seed)
    extract = torch_patch_extractor(input_size, strides)
    started = time.perf_counter()
    fit_features = extract_all(extract, load_photo, fit_photos, desc="train/good")
    detector = PatchCore.fit(fit_features, coreset_ratio, seed=seed)
    fit_seconds = time.perf_counter() - started
    held_scores, _ = detector.score(extract_all(extract, load_photo, held_photos, desc="held-out"))
    calibration = fit_calibration(held_scores, target_fpr=target_fpr)
    test_paths = [path for path, _ in data.test]
    kinds = np.array([kind for _, kind in data.test])
    test_scores, _ = detector.score(extract_all(extract, load_photo, test_paths, desc="test"))
    normalised = test_scores / calibration.normaliser
    flagged = normalised >= calibration.threshold
    labels = (kinds != GOOD).astype(int)
    return {
        "category": category,
        "image_auroc": float(roc_auc_score(labels, test_scores)),
        "detection_rate": {kind: float(flagged[kinds == kind].mean())
                           for kind in data.defect_kinds},
        "good_false_positive_rate": float(flagged[kinds == GOOD].mean()),
        "threshold": calibration.threshold,
        "normaliser": calibration.normaliser,
        "calibration": calibration.fitted_on,
        "config": {"input_size": input_size, "coreset_ratio": coreset_ratio,
                   "layers": list(strides), "holdout": holdout, "seed": seed,
                   "fit_photos": len(fit_photos), "held_out_photos": len(held_photos),
                   "bank_size": int(len(detector.bank)), "channels": int(fit_features.shape[1])},
        "fit_seconds": round(fit_seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                   f"torch threads",
        "scores": {str(path): float(score) for path, score in zip(test_paths, normalised,
                                                                   strict=True)},
    }


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    result = run_protocol(args.root, args.category, args.input_size, args.coreset_ratio,
                          parse_layers(args.layers), args.holdout, args.target_fpr, args.seed)
    print(f"{args.category}: image AUROC {result['image_auroc']:.4f}  "
          f"(bank {result['config']['bank_size']} patches, threshold {result['threshold']:.3f})")
    for kind, rate in result["detection_rate"].items():
        print(f"  {kind:<24} detected {rate:6.1%}")
    print(f"  {'good (false positives)':<24} flagged  {result['good_false_positive_rate']:6.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
