"""`returns-inspect case fit`: thresholds of the customer <-> dock comparison flags, fitted on a
manifest split through the bundle's own ONNX session, written into the model card.

    returns-inspect case fit --bundle models/default --manifest datasets/sample/manifest.csv \\
        [--split val] [--target-false-rate 0.05]

The same-item score mixes the embedding (`--embedding-weight`, default 0.75) with the patch
match; the card records the weight the threshold was fitted with, and the AUROC of same-item vs
other-item pairs for each weight of WEIGHTS (the embedding alone separates other items a little
better, but damage moves it: BENCHMARKS.md). Both thresholds are then chosen on pairs of photos
of the SAME item (two photos of one item_id: a genuine return photographed twice), for at most
`--target-false-rate` of them raised:
- changed_since_request: that quantile of their same-item similarity (raised below it);
- new_damage_since_request: the upper quantile of their damage rise (raised at or above it).
Pairs that should raise them are measured and recorded, not fitted on: another item of the same
category (changed) and an undamaged item's photo against a damaged item's of the same category
(new damage). Only the card's `thresholds` and `calibration.case` change; model.onnx and its
binding are untouched, like `calibrate`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from inspection.bundle import seal_bundle
from inspection.case_compare import (
    CHANGED,
    EMBEDDING_WEIGHT,
    NEW_DAMAGE,
    WEIGHT_KEY,
    CasePhoto,
    case_photo,
    new_damage_check,
    pair_similarity,
)
from inspection.engine import Engine
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.manifest import Manifest, Sample, read_manifest, rows_by_item
from training.predictions import split_samples
from training.versioning import utc_now

DEFAULT_FALSE_RATE = 0.05  # genuine returns (same item twice) sent to review by a case flag
MIN_PAIRS = 5
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder, e.g. models/default")
    parser.add_argument("--manifest", required=True, help="manifest whose items have 2+ photos")
    parser.add_argument("--split", default="val", help="split to fit on (default val)")
    parser.add_argument("--target-false-rate", type=float, default=DEFAULT_FALSE_RATE,
                        help="share of same-item pairs a flag may raise "
                             f"(default {DEFAULT_FALSE_RATE})")
    parser.add_argument("--embedding-weight", type=float, default=EMBEDDING_WEIGHT,
                        help="share of the embedding in the same-item score, the rest is the "
                             f"patch match (default {EMBEDDING_WEIGHT})")


@dataclass(frozen=True)
class CasePairs:
    """Photos (scored) and the pairs to measure, as (customer row, station row) indices."""

    photos: list[CasePhoto]
    same: list[tuple[int, int]]
    other: list[tuple[int, int]]  # another item of the same category
    damaged: list[tuple[int, int]]  # an undamaged item -> a damaged item of the same category


def is_damaged(sample: Sample) -> bool:
    return bool(sample.labels.get("damage"))


def make_pairs(samples: Sequence[Sample]) -> tuple[list[tuple[int, int]], ...]:
    """Deterministic pairs: each item's first two photos; its first photo against the next item
    of the same category (items in manifest order), and good -> damaged the same way."""
    items = [rows for rows in rows_by_item(samples).values()]
    same = [(rows[0], rows[1]) for rows in items if len(rows) >= 2]
    by_category: dict[str | None, list[list[int]]] = {}
    for rows in items:
        by_category.setdefault(samples[rows[0]].category, []).append(rows)
    other, damaged = [], []
    for group in by_category.values():
        for position, rows in enumerate(group):
            following = group[(position + 1) % len(group)]
            if following is not rows:
                other.append((rows[0], following[0]))
        good = [rows[0] for rows in group if not is_damaged(samples[rows[0]])]
        bad = [rows[0] for rows in group if is_damaged(samples[rows[0]])]
        damaged += list(zip(good, bad, strict=False))
    return same, other, damaged


def score_photos(engine: Engine, manifest: Manifest, samples: Sequence[Sample]) -> list[CasePhoto]:
    photos: list[CasePhoto] = []
    for start in tqdm(range(0, len(samples), 16), desc="case fit: scoring photos", mininterval=1.0):
        chunk = samples[start:start + 16]
        predictions = engine.predict([load_photo(manifest.image_path(s)) for s in chunk])
        for offset, prediction in enumerate(predictions):
            photo = case_photo(chunk[offset].item_id, start + offset, "", prediction)
            if photo is None:
                raise InputError("the bundle has no `embedding`/`patch_features` output", "--bundle")
            photos.append(photo)
    return photos


def sameness(photos: Sequence[CasePhoto], pairs: Sequence[tuple[int, int]],
             weight: float) -> np.ndarray:
    return np.array([pair_similarity(photos[b], photos[a], weight).score for a, b in pairs])


def auroc_by_weight(pairs: CasePairs) -> dict[str, float]:
    """How well each embedding weight tells same-item from other-item pairs (recorded)."""
    if not pairs.other:
        return {}
    labels = [0] * len(pairs.same) + [1] * len(pairs.other)
    aurocs = {}
    for weight in WEIGHTS:
        scores = np.concatenate([sameness(pairs.photos, pairs.same, weight),
                                 sameness(pairs.photos, pairs.other, weight)])
        aurocs[str(weight)] = float(roc_auc_score(labels, -scores))
    return aurocs


def damage_rise(photos: Sequence[CasePhoto], pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    checks = [new_damage_check([photos[b]], [photos[a]], None) for a, b in pairs]
    return np.array([check.score if check is not None else 0.0 for check in checks])


def fit(pairs: CasePairs, target: float, split: str,
        weight: float = EMBEDDING_WEIGHT) -> dict[str, dict[str, Any]]:
    """Both thresholds and the record of how they were chosen (card.calibration['case'])."""
    if len(pairs.same) < MIN_PAIRS:
        raise InputError(f"split {split!r} has {len(pairs.same)} items with 2+ photos; need "
                         f"{MIN_PAIRS}", "--manifest")
    aurocs = auroc_by_weight(pairs)
    same = sameness(pairs.photos, pairs.same, weight)
    changed = float(np.quantile(same, target, method="lower")) - 1e-6  # raised below it
    other = sameness(pairs.photos, pairs.other, weight)
    rise_same = damage_rise(pairs.photos, pairs.same)
    rise_bad = damage_rise(pairs.photos, pairs.damaged)
    new_damage = float(np.quantile(rise_same, 1.0 - target, method="higher")) + 1e-6
    return {
        CHANGED: {**_report(changed, split, target, len(same), float(np.mean(same < changed)),
                            len(other), float(np.mean(other < changed)) if len(other) else None,
                            "photos of another item of the same category"),
                  "embedding_weight": weight, "auroc_by_embedding_weight": aurocs},
        NEW_DAMAGE: _report(new_damage, split, target, len(rise_same),
                            float(np.mean(rise_same >= new_damage)), len(rise_bad),
                            float(np.mean(rise_bad >= new_damage)) if len(rise_bad) else None,
                            "undamaged -> damaged pairs (different items, same category)"),
    }


def _report(threshold: float, split: str, target: float, negatives: int, false_rate: float,
            positives: int, detection_rate: float | None, positives_are: str) -> dict[str, Any]:
    return {"threshold": threshold, "split": split, "target": target, "negatives": negatives,
            "false_rate": false_rate, "positives": positives, "detection_rate": detection_rate,
            "positives_are": positives_are}


def main(args: argparse.Namespace) -> int:
    if not 0.0 < args.target_false_rate < 0.5:
        raise InputError(f"must be in (0, 0.5), got {args.target_false_rate}", "--target-false-rate")
    if not 0.0 <= args.embedding_weight <= 1.0:
        raise InputError(f"must be in [0, 1], got {args.embedding_weight}", "--embedding-weight")
    engine = Engine.load(args.bundle, threads=2)
    manifest = read_manifest(args.manifest, engine.taxonomy)
    samples = split_samples(manifest, args.split)
    same, other, damaged = make_pairs(samples)
    photos = score_photos(engine, manifest, samples)
    reports = fit(CasePairs(photos, same, other, damaged), args.target_false_rate, args.split,
                  args.embedding_weight)
    card = engine.card
    card.thresholds[WEIGHT_KEY] = reports[CHANGED]["embedding_weight"]
    print(f"same-item score: embedding weight {card.thresholds[WEIGHT_KEY]} (same vs other item "
          f"AUROC by weight: {reports[CHANGED]['auroc_by_embedding_weight']})")
    for kind, report in reports.items():
        card.thresholds[kind] = report["threshold"]
        print(f"{kind}: threshold {report['threshold']:.4f}; raised on {report['false_rate']:.1%} of "
              f"{report['negatives']} same-item pairs and {report['detection_rate'] or 0:.1%} of "
              f"{report['positives']} {report['positives_are']}")
    card.calibration["case"] = {**reports, "manifest": str(manifest.path),
                                "manifest_sha256": manifest.sha256(), "created": utc_now()}
    card.save(engine.bundle_dir)
    seal_bundle(engine.bundle_dir)  # the card changed on purpose: bind it again
    Engine.load(args.bundle)  # the rewritten card still binds the same ONNX file
    return 0
