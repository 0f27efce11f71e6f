"""`returns-inspect anomaly evaluate`: the MVTec AD protocol on any category — an MVTec AD
folder, the magnetic-tile layout or a manifest's category (training.anomaly.sources).

Fit the memory bank on the good training photos (less a seeded held-out slice), fit the
normaliser and threshold on that held-out slice (test labels are never used for it), score every
test photo, and report image-level AUROC, each defect kind's detection rate at the threshold,
pixel AUROC and PRO where the set has masks (training.anomaly.pixel_metrics), and what it
cost: fit time, bank size, ms per photo.
Photos are decoded as the service decodes them. `--placement random` puts every photo down
anywhere first (training.anomaly.placement), train and test alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from inspection.errors import InputError
from inspection.images import load_photo
from inspection.locate import crop_to_item, find_upright, upright_item
from training.anomaly.extractor import DEFAULT_STRIDES, extract_all, torch_patch_extractor
from training.anomaly.mvtec import GOOD, MvtecCategory, holdout_split
from training.anomaly.patchcore import (
    CORESET_RATIO,
    NEIGHBOURS,
    PatchCore,
    add_bank_arguments,
    bank_bounds,
)
from training.anomaly.pixel_metrics import masked_pairs, pixel_figures
from training.anomaly.placement import (
    place,
    place_mask,
    random_placement,
    rotations,
    upright_views,
)
from training.anomaly.sources import find_category
from training.anomaly.threshold import DEFAULT_TARGET_FPR, fit_calibration

log = logging.getLogger(__name__)
Loader = Callable[[Path], np.ndarray]
REPORTED_FPR = 0.05  # "TPR at 5 % good FPR", per defect kind
# The ImageNet backbone's input for the protocol (a bundle's detector runs at the bundle's own
# size). 256 px, PatchCore's: against 224 px it gained on all six sets (phone, shoe, headphones,
# boxed_kit +0.007-0.06; magnetic tile +0.011; bottle level at 1.000; BENCHMARKS, issue 7).
INPUT_SIZE = 256
CROPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda rgb: rgb, "item": crop_to_item, "upright": upright_item}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="folder holding <category>/ (MVTec AD layout, "
                        "or MT_Free + MT_* folders as magnetic tile)")
    parser.add_argument("--manifest", type=Path, help="instead of --root: a manifest whose "
                        "category's train goods fit and whose test split is scored")
    parser.add_argument("--category", required=True)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE)
    add_bank_arguments(parser)
    parser.add_argument("--layers", default=",".join(map(str, DEFAULT_STRIDES)),
                        help="strides of the backbone maps to use, e.g. 8,16 (from 4,8,16,32)")
    parser.add_argument("--placement", choices=("aligned", "random"), default="aligned",
                        help="random: rotate 0-360, scale 0.8-1, shift +-10%% every photo")
    parser.add_argument("--crop", choices=CROPS, default="none",
                        help="item: crop every photo to the item found on it; upright: cut the "
                             "item out along its rotated outline, long side horizontal "
                             "(inspection.locate)")
    parser.add_argument("--rotations", type=int, default=1,
                        help="fit the bank on this many evenly rotated copies of each good photo")
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


def photo_loader(input_size: int, placement: str, seed: int, crop: str = "none") -> Loader:
    """Decode as the service does (large JPEGs at reduced scale), place if asked, then crop to
    the item if asked (inspection.locate: found in the photo, never from a mask)."""
    def load(path: Path) -> np.ndarray:
        rgb = load_photo(path, min_side=input_size)
        rgb = place(rgb, random_placement(path, seed)) if placement == "random" else rgb
        return CROPS[crop](rgb)
    return load


def mask_loader(placement: str, seed: int) -> Callable[[Path, Path], np.ndarray]:
    def load(photo: Path, mask: Path) -> np.ndarray:
        binary = (load_photo(mask)[:, :, 0] > 127).astype(np.uint8)
        return place_mask(binary, random_placement(photo, seed)) if placement == "random" \
            else binary
    return load


def maps_on_photos(paths: list[Path], maps: np.ndarray, load_uncropped: Loader) -> np.ndarray:
    """Maps of upright cut-outs drawn back over their photos, as the service draws them; a
    photo the item was not found on was scored whole and keeps its map."""
    drawn = []
    for path, crop_map in zip(paths, maps, strict=True):
        rgb = load_uncropped(path)
        item = find_upright(rgb)
        drawn.append(item.map_to_photo(crop_map, (rgb.shape[1], rgb.shape[0])) if item else crop_map)
    return np.stack(drawn)


def _upright_fit_views(photos: list[Path], load_uncropped: Loader) -> list[np.ndarray]:
    """Every good photo's upright views (placement.upright_views), decoded once: whether a
    photo gives one view or two is known only after finding its item."""
    return [view for path in photos for view in upright_views(load_uncropped(path))]


def defect_members(kinds: np.ndarray) -> dict[str, np.ndarray]:
    """Which test photos show each defect kind; a photo of several (`crack;dent`, a manifest's
    damage labels) counts for each of them."""
    labels = [set(kind.split(";")) for kind in kinds.tolist()]
    names = sorted(set().union(*labels) - {GOOD})
    return {name: np.array([name in photo for photo in labels]) for name in names}


def tpr_at_fpr(scores: np.ndarray, kinds: np.ndarray, fpr: float) -> dict[str, float]:
    """Each defect kind's detection rate at the score that flags `fpr` of the test goods: a
    point on the ROC curve, free of the calibrated threshold (which the held-out goods set)."""
    cut = float(np.quantile(scores[kinds == GOOD], 1.0 - fpr, method="higher"))
    return {name: float((scores[members] > cut).mean())
            for name, members in defect_members(kinds).items()}


def run_protocol(data: MvtecCategory, input_size: int = INPUT_SIZE,
                 coreset_ratio: float = CORESET_RATIO,
                 strides: tuple[int, ...] = DEFAULT_STRIDES, holdout: float = 0.2,
                 target_fpr: float = DEFAULT_TARGET_FPR, seed: int = 0,
                 max_bank: int | None = None, neighbours: int = NEIGHBOURS,
                 placement: str = "aligned", rotation_copies: int = 1,
                 crop: str = "none", searched_rows: int | None = None) -> dict[str, Any]:
    """Fit, calibrate and score one category; return the figures as a JSON-able dict."""
    if not 0.0 < coreset_ratio <= 1.0:
        raise InputError(f"must be in (0, 1], got {coreset_ratio}", "--coreset-ratio")
    if input_size < 32 or input_size % 32:
        raise InputError(f"must be a multiple of 32, got {input_size}", "--input-size")
    if not 1 <= rotation_copies <= 36 or neighbours < 1:
        raise InputError("--rotations must be 1..36 and --neighbours at least 1", "--rotations")
    max_bank, searched_rows = bank_bounds(crop, max_bank, searched_rows)
    fit_photos, held_photos = holdout_split(data.train_good, holdout, seed)
    extract = torch_patch_extractor(input_size, strides)
    load = photo_loader(input_size, placement, seed, crop)
    started = time.perf_counter()
    fit_features = (extract_all(extract, lambda view: view, _upright_fit_views(
                        fit_photos, photo_loader(input_size, placement, seed)), desc="train/good")
                    if crop == "upright" else
                    extract_all(extract, rotations(load, rotation_copies),
                                [(p, k) for p in fit_photos for k in range(rotation_copies)],
                                desc="train/good"))
    detector = PatchCore.fit(fit_features, coreset_ratio, seed=seed, max_bank=max_bank or None,
                             neighbours=neighbours, searched_rows=searched_rows or None)
    fit_seconds = time.perf_counter() - started
    held_scores, _ = detector.score(extract_all(extract, load, held_photos, desc="held-out"))
    calibration = fit_calibration(held_scores, target_fpr=target_fpr)
    test_paths = [path for path, _ in data.test]
    kinds = np.array([kind for _, kind in data.test])
    started = time.perf_counter()
    test_scores, test_maps = detector.score(extract_all(extract, load, test_paths, desc="test"))
    ms_per_photo = 1000 * (time.perf_counter() - started) / len(test_paths)
    normalised = test_scores / calibration.normaliser
    flagged = normalised >= calibration.threshold
    labels = (kinds != GOOD).astype(int)
    pixels = pixel_figures([])
    if data.masks and crop in ("none", "upright"):  # a square crop's map has no way back
        if crop == "upright":
            test_maps = maps_on_photos(test_paths, test_maps,
                                       photo_loader(input_size, placement, seed))
        pixels = pixel_figures(masked_pairs(test_paths, test_maps, data.masks,
                                            mask_loader(placement, seed)))
    return {
        "image_auroc": float(roc_auc_score(labels, test_scores)),
        "pixel_auroc": pixels.auroc,
        "pro": pixels.pro,
        "pro_regions": pixels.regions,
        "detection_rate": {name: float(flagged[members].mean())
                           for name, members in defect_members(kinds).items()},
        "good_false_positive_rate": float(flagged[kinds == GOOD].mean()),
        "tpr_at_fpr": tpr_at_fpr(test_scores, kinds, REPORTED_FPR),
        "threshold": calibration.threshold,
        "normaliser": calibration.normaliser,
        "calibration": calibration.fitted_on,
        "config": {"input_size": input_size, "coreset_ratio": coreset_ratio,
                   "max_bank": max_bank, "searched_rows": detector.rows_searched,
                   "neighbours": neighbours, "layers": list(strides),
                   "placement": placement, "rotations": rotation_copies, "crop": crop,
                   "holdout": holdout,
                   "seed": seed, "fit_photos": len(fit_photos),
                   "held_out_photos": len(held_photos), "test_photos": len(test_paths),
                   "bank_size": int(len(detector.bank)), "channels": int(fit_features.shape[1])},
        "fit_seconds": round(fit_seconds, 1),
        "ms_per_photo": round(ms_per_photo, 1),  # decode + features + nearest neighbours
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                   f"torch threads",
        "scores": {str(path): float(score) for path, score in zip(test_paths, normalised,
                                                                   strict=True)},
    }


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    data = find_category(args.root, args.category, args.manifest, args.seed)
    result = run_protocol(data, args.input_size, args.coreset_ratio, parse_layers(args.layers),
                          args.holdout, args.target_fpr, args.seed, args.max_bank,
                          args.neighbours, args.placement, args.rotations, args.crop,
                          args.searched_rows)
    result["category"] = args.category
    config = result["config"]
    pixel, pro = result["pixel_auroc"], result["pro"]
    print(f"{args.category} ({args.placement}): image AUROC {result['image_auroc']:.4f}"
          + (f", pixel AUROC {pixel:.4f}" if pixel is not None else "")
          + (f", PRO {pro:.4f} ({result['pro_regions']} regions)" if pro is not None else "")
          + f"  (threshold {result['threshold']:.3f})")
    print(f"  cost: fit {result['fit_seconds']:.1f} s on {config['fit_photos']} photos"
          f" x {config['rotations']} rotation(s), bank {config['bank_size']} patches"
          f" x {config['channels']} ch ({config['searched_rows']} searched by every patch),"
          f" {result['ms_per_photo']:.1f} ms/photo")
    at_fpr = result["tpr_at_fpr"]
    print(f"  {'kind':<24} at threshold   at {REPORTED_FPR:.0%} good FPR")
    for kind, rate in result["detection_rate"].items():
        print(f"  {kind:<24} {rate:6.1%}         {at_fpr[kind]:6.1%}")
    print(f"  {'good (false positives)':<24} {result['good_false_positive_rate']:6.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
