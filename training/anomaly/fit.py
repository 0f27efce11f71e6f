"""`returns-inspect anomaly fit`: per-category anomaly detectors and item-mismatch references
for a bundle, from the good photos of a manifest, run through the BUNDLE's ONNX so the fitted
features are exactly what the service sees.

Writes `anomaly/<category>.onnx` and `references.npz` into the bundle and updates only the
card's `anomaly` section and its `item_mismatch` thresholds; model.onnx and its binding to the
card are untouched. Where the model has a single-label head with a `no_defect` label (MVTec's
`defect`) and the manifest has labelled defects, each category's entry also gets the anomaly
score's second opinion on that head (inspection.second_opinion).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from inspection.anomaly import CROPS, MISMATCH_KEY, REFERENCES_FILE
from inspection.bundle import seal_bundle
from inspection.card import ModelCard
from inspection.engine import Engine
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.locate import upright_item
from inspection.manifest import Manifest, Sample, file_sha256, read_manifest, with_category
from inspection.second_opinion import CARD_KEY as SECOND_OPINION
from inspection.taxonomy import Taxonomy, shows_no_defect
from training.anomaly.export import parity, save_detector
from training.anomaly.features import PATCH_STRIDES
from training.anomaly.patchcore import NEIGHBOURS, PatchCore, add_bank_arguments, bank_bounds
from training.anomaly.placement import upright_views
from training.anomaly.references import (
    fit_mismatch_threshold,
    nearest_similarity,
    prototypes,
)
from training.anomaly.threshold import DEFAULT_TARGET_FPR, fit_calibration, fit_second_opinion

log = logging.getLogger(__name__)
MIN_PHOTOS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--categories", nargs="*", help="default: every category in the manifest")
    parser.add_argument("--as-category", metavar="NAME",
                        help="photos without a category count as category NAME (a set of one "
                             "product line, e.g. MVTec's bottle); the service scores requests "
                             "naming it")
    add_bank_arguments(parser)
    parser.add_argument("--target-fpr", type=float, default=DEFAULT_TARGET_FPR)
    parser.add_argument("--crop", choices=(*CROPS, "auto"), default="none",
                        help="upright: fit (and serve) on each photo's item cut out upright "
                             "(items lying anywhere on a tray; costs the model a second run); "
                             "auto: fit both, keep what separates the val split's defects best")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for ONNX Runtime and torch (1 on a busy machine)")
    parser.add_argument("--no-references", action="store_true", help="skip item mismatch")
    parser.add_argument("--no-second-opinion", action="store_true",
                        help="serve the heads' probabilities without the anomaly score's opinion")


def is_good(sample: Sample, taxonomy: Taxonomy | None = None) -> bool:
    """No defect by the sample's labels (inspection.taxonomy.shows_no_defect)."""
    return shows_no_defect(sample.labels, taxonomy)


def run_outputs(engine: Engine, manifest: Manifest, samples: Sequence[Sample], output: str,
                desc: str, crop: str = "none", bank: bool = False) -> np.ndarray:
    """`output` of the bundle's model for each sample's photo; with crop "upright", of its item
    cut out upright as the service does (inspection.anomaly) — for the `bank`, both half turns
    of it (placement.upright_views)."""
    chunks: list[np.ndarray] = []
    for start in tqdm(range(0, len(samples), 8), desc=desc, mininterval=1.0):
        # decoded as the service decodes an upload: large JPEGs at reduced DCT scale
        photos = [load_photo(manifest.image_path(s), min_side=engine.input_size)
                  for s in samples[start:start + 8]]
        if crop == "upright":
            photos = ([view for photo in photos for view in upright_views(photo)] if bank
                      else [upright_item(photo) for photo in photos])
        chunks.extend(next(engine.iter_raw(photos, batch_size=len(photos), outputs=[output]))[output])
    return np.stack(chunks) if chunks else np.zeros((0, 0), np.float32)


class SplitSamples(NamedTuple):
    train: list[Sample]  # good train photos: the bank
    held: list[Sample]  # good val photos (or a fifth of train): normaliser and threshold
    defects: list[Sample]  # damaged val photos: the threshold's margin, `--crop auto`
    train_defects: list[Sample]  # damaged train photos: with `defects`, the second opinion


def split_samples(manifest: Manifest, category: str, taxonomy: Taxonomy | None = None) -> SplitSamples:
    rows = [s for s in manifest.samples if s.category == category]
    train = [s for s in rows if s.split == "train" and is_good(s, taxonomy)]
    held = [s for s in rows if s.split == "val" and is_good(s, taxonomy)]
    defects = [s for s in rows if s.split == "val" and not is_good(s, taxonomy)]
    train_defects = [s for s in rows if s.split == "train" and not is_good(s, taxonomy)]
    if len(held) < 2:  # no val goods: hold out a fifth of the train goods instead
        cut = max(2, len(train) // 5)
        train, held = train[cut:], train[:cut]
    if len(train) < MIN_PHOTOS:
        raise InputError(f"category {category!r} has {len(train)} good train photos; "
                         f"need {MIN_PHOTOS}", where=manifest.path)
    return SplitSamples(train, held, defects, train_defects)


@dataclass(frozen=True)
class Fitted:
    """One detector fitted on a category's good train photos, and its val scores."""

    crop: str
    max_bank: int  # rows at most (0: no cap)
    detector: PatchCore
    held_features: np.ndarray
    held_scores: np.ndarray
    defect_scores: np.ndarray | None

    def val_auroc(self) -> float | None:
        """How well the val split's goods and defects separate; None without val defects."""
        if self.defect_scores is None or not len(self.defect_scores):
            return None
        labels = np.r_[np.zeros(len(self.held_scores)), np.ones(len(self.defect_scores))]
        return float(roc_auc_score(labels, np.r_[self.held_scores, self.defect_scores]))


def fit_detector(engine: Engine, manifest: Manifest, category: str, samples: SplitSamples,
                 crop: str, coreset_ratio: float, max_bank: int | None, neighbours: int,
                 searched_rows: int | None = None) -> Fitted:
    train, held, defects, _ = samples
    max_bank, searched_rows = bank_bounds(crop, max_bank, searched_rows)
    features = run_outputs(engine, manifest, train, "patch_features", f"{category} train", crop,
                           bank=True)
    detector = PatchCore.fit(features, coreset_ratio, max_bank=max_bank or None,
                             neighbours=neighbours, searched_rows=searched_rows or None)
    held_features = run_outputs(engine, manifest, held, "patch_features", f"{category} held", crop)
    defect_scores = (detector.score(run_outputs(engine, manifest, defects, "patch_features",
                                                f"{category} defects", crop))[0]
                     if defects else None)
    return Fitted(crop, max_bank, detector, held_features, detector.score(held_features)[0],
                  defect_scores)


def choose_crop(candidates: list[Fitted]) -> tuple[Fitted, dict[str, float | None]]:
    """`--crop auto`: the candidate whose val goods and defects separate best; whole photos
    (the first, and the cheaper to serve) on a tie or without val defects."""
    aurocs = {fitted.crop: fitted.val_auroc() for fitted in candidates}
    best = max(candidates, key=lambda fitted: aurocs[fitted.crop] or 0.0)
    if aurocs[best.crop] is None or aurocs[best.crop] == aurocs[candidates[0].crop]:
        best = candidates[0]
    return best, aurocs


def fit_category(engine: Engine, manifest: Manifest, category: str, coreset_ratio: float,
                 target_fpr: float, max_bank: int | None = None,
                 neighbours: int = NEIGHBOURS, crop: str = "none", opinion: bool = True,
                 searched_rows: int | None = None) -> dict:
    """Fit, export and calibrate one category's detector; return its card entry. With crop
    "auto", a detector on whole photos and one on upright items are both fitted and the val
    split's defects choose (the choice and both val AUROCs go into the entry). With `opinion`,
    the second opinion too, where the model has a head to weigh it into."""
    samples = split_samples(manifest, category, engine.taxonomy)
    candidates = [fit_detector(engine, manifest, category, samples, option, coreset_ratio,
                               max_bank, neighbours, searched_rows)
                  for option in (CROPS if crop == "auto" else (crop,))]
    fitted, aurocs = choose_crop(candidates)
    path = engine.bundle_dir / "anomaly" / f"{category}.onnx"
    save_detector(fitted.detector.bank, path, {"category": category,
                                               "returns_inspection.model_id": engine.card.model_id},
                  fitted.detector.support, fitted.detector.searched_rows)
    error = parity(path, fitted.detector, fitted.held_features)
    if error > 1e-3:
        raise RuntimeError(f"{path}: ONNX/torch parity {error:.2e} exceeds 1e-3")
    calibration = fit_calibration(fitted.held_scores, fitted.defect_scores, target_fpr)
    heads = opinion_heads(engine.taxonomy) if opinion else ()
    second = second_opinion_entry(engine, manifest, category, samples, fitted, calibration.normaliser,
                                  heads) if heads else {}
    return {"file": f"anomaly/{category}.onnx", "sha256": file_sha256(path),
            "threshold": calibration.threshold, "normaliser": calibration.normaliser,
            "bank_size": int(len(fitted.detector.bank)), "layers": list(PATCH_STRIDES),
            "coreset_ratio": coreset_ratio, "max_bank": fitted.max_bank, "neighbours": neighbours,
            "searched_rows": fitted.detector.rows_searched,
            "crop": fitted.crop, **({"crop_val_auroc": aurocs} if crop == "auto" else {}),
            "parity_max_rel_error": error,
            "fitted_on": {**calibration.fitted_on, "train": len(samples.train),
                          "manifest_sha256": manifest.sha256()}, **second}


def opinion_heads(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The heads a second opinion on "defect or not" can weigh: those naming a `no_defect` label."""
    return tuple(head.name for head in taxonomy.heads if head.no_defect is not None)


def second_opinion_entry(engine: Engine, manifest: Manifest, category: str, samples: SplitSamples,
                         fitted: Fitted, normaliser: float, heads: tuple[str, ...]) -> dict:
    """{second_opinion: ...} fitted on the held-out goods against the train + val defects (the
    bank never saw either), or {second_opinion_skipped: why}."""
    train_defect_scores = (fitted.detector.score(run_outputs(
        engine, manifest, samples.train_defects, "patch_features", f"{category} train defects",
        fitted.crop))[0] if samples.train_defects else np.zeros(0))
    defect_scores = np.r_[fitted.defect_scores if fitted.defect_scores is not None else [],
                          train_defect_scores]
    opinion, why = fit_second_opinion(fitted.held_scores / normaliser, defect_scores / normaliser,
                                      heads)
    return {SECOND_OPINION: opinion.to_entry()} if opinion else {f"{SECOND_OPINION}_skipped": why}


def fit_references(engine: Engine, manifest: Manifest, categories: Sequence[str]
                   ) -> tuple[dict[str, np.ndarray], dict[str, float], dict]:
    """Prototypes from train goods; threshold from val: genuine vs other categories' photos.
    Every val photo of the category is genuine, damaged ones too: a cracked phone is still the
    declared phone. Fitted on goods alone, a set of one product (MVTec's bottle) had no other
    category to bound the threshold from below, and every damaged photo was called another
    product (the swap flag) on top of its defect."""
    def embeddings(category: str, split: str) -> np.ndarray:
        rows = [s for s in manifest.samples if s.category == category and s.split == split
                and (split == "val" or is_good(s, engine.taxonomy))]
        return run_outputs(engine, manifest, rows, "embedding", f"{category} {split}")

    embed = {split: {c: embeddings(c, split) for c in categories} for split in ("train", "val")}
    references, thresholds, report = {}, {}, {}
    for category in categories:
        references[category] = prototypes(embed["train"][category])
        genuine = embed["val"][category]
        if len(genuine) < 2:  # no val photos: judge on train (optimistic, said in the card)
            genuine = embed["train"][category]
        others = [embed["val"][c] for c in categories if c != category and len(embed["val"][c])]
        fitted = fit_mismatch_threshold(
            nearest_similarity(references[category], genuine),
            nearest_similarity(references[category], np.concatenate(others)) if others else None)
        thresholds[category] = fitted.threshold
        report[category] = fitted.__dict__
    return references, thresholds, report


def opinion_summary(entry: dict) -> str:
    if SECOND_OPINION in entry:
        opinion = entry[SECOND_OPINION]
        fitted_on = opinion["fitted_on"]
        return (f"second opinion on {opinion['heads']} from {fitted_on['good']} held-out goods and "
                f"{fitted_on['defect']} defects (AUROC {fitted_on['auroc']:.3f})")
    return f"no second opinion: {entry.get(f'{SECOND_OPINION}_skipped', 'no head names a no_defect label')}"


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    engine = Engine.load(args.bundle, threads=max(1, args.threads))
    manifest = read_manifest(args.manifest)
    if args.as_category:
        manifest = with_category(manifest, args.as_category)
    known = sorted({s.category for s in manifest.samples if s.category})
    if not known:  # detectors are per category: fitting none would change nothing, silently
        raise InputError(f"{manifest.path} gives no photo a category; add a `category` column or "
                         "pass --as-category NAME", "--manifest")
    categories = args.categories or known
    missing = sorted(set(categories) - set(known))
    if missing:
        raise InputError(f"no photos of {missing} in the manifest (it has {known})", "--categories")
    card: ModelCard = engine.card
    for number, category in enumerate(categories, start=1):
        print(f"[{number}/{len(categories)}] {category}: fitting", flush=True)
        started = time.perf_counter()
        card.anomaly[category] = fit_category(engine, manifest, category, args.coreset_ratio,
                                              args.target_fpr, args.max_bank, args.neighbours,
                                              args.crop, not args.no_second_opinion,
                                              args.searched_rows)
        entry = card.anomaly[category]
        chosen = (f", crop {entry['crop']} (val AUROC {entry['crop_val_auroc']})"
                  if "crop_val_auroc" in entry else "")
        print(f"[{number}/{len(categories)}] {category}: bank {entry['bank_size']} patches "
              f"({entry['searched_rows']} searched by every patch), "
              f"threshold {entry['threshold']:.3f}{chosen}, fitted in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        print(f"[{number}/{len(categories)}] {category}: {opinion_summary(entry)}", flush=True)
    if not args.no_references:
        references, thresholds, report = fit_references(engine, manifest, categories)
        np.savez(args.bundle / REFERENCES_FILE, **references)
        card.thresholds[MISMATCH_KEY] = {**card.thresholds.get(MISMATCH_KEY, {}), **thresholds}
        card.calibration[MISMATCH_KEY] = report
    card.save(args.bundle)
    seal_bundle(args.bundle)  # detectors, references and card changed: bind them again
    return 0
