"""`returns-inspect calibrate`: fit temperatures and flag thresholds of a bundle on its val split.

    returns-inspect calibrate --bundle models/default --manifest data/synth/manifest.csv \\
        --target damage_recall=0.95 --target review_rate=0.10

Targets, each chosen on the validation photos (run through the bundle's ONNX session):
- `<head>_recall=R` (`damage_recall`, `accessories_recall` or `accessory_recall`, any multi-label
  head): per label, the highest threshold that still finds R of the label's positives; 0.5 with a
  warning when the split has no positive of that label.
- `review_rate=Q`: the damage labels share the lowest threshold at which at most Q of the val
  ITEMS are sent to review by the three threshold flags (damage found, accessory missing, low
  confidence). Used for the damage head when no `damage_recall` is given; otherwise the rate is
  only measured and a conflict reported, because a recall target is a safety promise.
Only model_card.json is rewritten (atomically); model.onnx is untouched, so the hash binding
between the two holds.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from inspection.bundle import seal_bundle
from inspection.card import read_card
from inspection.decide import Policy, aggregate, assessment_flags, load_policy
from inspection.engine import Engine, head_probabilities
from inspection.errors import InputError
from inspection.manifest import Sample, read_manifest, rows_by_item
from inspection.taxonomy import Taxonomy
from training.calibration import (
    DEFAULT_LOW_CONFIDENCE,
    LOG_T_BOUNDS,
    default_thresholds,
    fit_temperature,
    threshold_for_recall,
    threshold_for_review_rate,
)
from training.metrics import expected_calibration_error
from training.predictions import collect_logits, multi_targets, single_targets, split_samples
from training.versioning import utc_now

log = logging.getLogger(__name__)
DEFAULT_TARGETS = {"damage_recall": 0.95}
ALIASES = {"accessory_recall": "accessories_recall"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder, e.g. models/default")
    parser.add_argument("--manifest", required=True, help="manifest with a val split")
    parser.add_argument("--split", default="val", help="split to fit on (default val)")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=VALUE",
                        help="damage_recall=0.95, accessories_recall=0.9, review_rate=0.10 "
                        f"(repeatable; default {DEFAULT_TARGETS})")
    parser.add_argument("--low-confidence", type=float, default=DEFAULT_LOW_CONFIDENCE,
                        help="a single-label head whose top probability is below this flags low "
                        f"confidence (default {DEFAULT_LOW_CONFIDENCE})")


def parse_targets(texts: list[str], taxonomy: Taxonomy) -> dict[str, float]:
    if not texts:
        return {name: value for name, value in DEFAULT_TARGETS.items()
                if name == "review_rate" or taxonomy.has_head(name.removesuffix("_recall"))}
    targets: dict[str, float] = {}
    multi_heads = [head.name for head in taxonomy.heads if head.type == "multi"]
    for text in texts:
        name, _, value = text.partition("=")
        name = ALIASES.get(name.strip(), name.strip())
        known = name == "review_rate" or (name.endswith("_recall") and name[:-7] in multi_heads)
        if not known:
            choices = ["review_rate", *(f"{head}_recall" for head in multi_heads)]
            raise InputError(f"unknown target {name!r}; choose from {choices}", "--target")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{text!r}: the value must be a number, e.g. {name}=0.95", "--target") from None
        if not 0.0 < number <= 1.0:
            raise InputError(f"{text!r}: the value must be in (0, 1]", "--target")
        targets[name] = number
    return targets


def main(args: argparse.Namespace) -> int:
    if not 0.0 <= args.low_confidence <= 1.0:
        raise InputError(f"must be in [0, 1], got {args.low_confidence}", "--low-confidence")
    engine = Engine.load(args.bundle)
    taxonomy = engine.taxonomy
    targets = parse_targets(args.target, taxonomy)
    manifest = read_manifest(args.manifest, taxonomy)
    samples = split_samples(manifest, args.split)
    outputs = collect_logits(engine, manifest, samples, desc=f"calibrate on {args.split}")
    result = calibrate(outputs.logits, samples, taxonomy, targets, args.low_confidence)
    card = read_card(args.bundle)
    card.temperatures = result["temperatures"]
    # Thresholds other steps fitted (item mismatch, the case flags) stay; every head's are replaced.
    card.thresholds = {**card.thresholds, **result["thresholds"]}
    card.calibration = {**result["calibration"], "manifest": str(manifest.path),
                        "manifest_sha256": manifest.sha256(), "split": args.split,
                        "photos": len(samples), "created": utc_now()}
    card.save(engine.bundle_dir)
    seal_bundle(engine.bundle_dir)  # a deliberate change to the card: bind it again
    Engine.load(args.bundle)  # the rewritten card still binds the same ONNX file
    for name, achieved in result["calibration"]["achieved"].items():
        print(f"{name}: target {targets.get(name, '-')}, achieved on {args.split} {achieved}")
    print(f"temperatures {result['temperatures']}; card rewritten: {engine.bundle_dir / 'model_card.json'}")
    return 0


def calibrate(logits: dict[str, np.ndarray], samples: list[Sample], taxonomy: Taxonomy,
              targets: dict[str, float], low_confidence: float) -> dict[str, Any]:
    """Temperatures, thresholds and the evidence for them, from raw val logits."""
    temperatures, ece = {}, {}
    probabilities = {}
    warnings: list[str] = []
    for head in taxonomy.heads:
        if head.type == "single":
            y = single_targets(samples, head)
            keep = y >= 0
            temperatures[head.name] = fit_temperature(logits[head.name][keep], y[keep], "single")
        else:
            y, keep = multi_targets(samples, head)
            temperatures[head.name] = fit_temperature(logits[head.name][keep], y[keep], "multi")
        if not LOG_T_BOUNDS[0] + 0.01 < np.log(temperatures[head.name]) < LOG_T_BOUNDS[1] - 0.01:
            warnings.append(f"{head.name}: temperature {temperatures[head.name]:.3g} is at the search "
                            "bound; the model's scores carry little information on this split")
        before = head_probabilities(logits[head.name][keep], head, 1.0)
        after = head_probabilities(logits[head.name][keep], head, temperatures[head.name])
        ece[head.name] = {"before": head_ece(before, y[keep], head.type),
                          "after": head_ece(after, y[keep], head.type)}
        probabilities[head.name] = head_probabilities(logits[head.name], head, temperatures[head.name])
    thresholds = default_thresholds(taxonomy)
    thresholds["low_confidence"] = {name: low_confidence for name in thresholds["low_confidence"]}
    achieved: dict[str, Any] = {}
    for name, value in targets.items():
        if name.endswith("_recall"):
            head = taxonomy.head(name[:-7])
            y, keep = multi_targets(samples, head)
            for index, label in enumerate(head.labels):
                chosen = threshold_for_recall(probabilities[head.name][keep, index], y[keep, index], value)
                if chosen is None:
                    warnings.append(f"{head.name}/{label}: no positives in val; threshold stays 0.5")
                    chosen = 0.5
                thresholds[head.name][label] = chosen
            achieved[name] = recall_at(probabilities[head.name][keep], y[keep], head.labels,
                                       thresholds[head.name])
    if "review_rate" in targets and taxonomy.has_head("damage") and "damage_recall" not in targets:
        shared = damage_threshold_for_rate(probabilities, samples, taxonomy, thresholds,
                                           targets["review_rate"], warnings)
        if shared is not None:
            thresholds["damage"] = {label: shared for label in taxonomy.head("damage").labels}
    achieved["review_rate"] = float(item_flags(probabilities, samples, taxonomy, thresholds).mean())
    if "review_rate" in targets and achieved["review_rate"] > targets["review_rate"] + 1e-9:
        warnings.append(f"review rate on val is {achieved['review_rate']:.3f}, above the target "
                        f"{targets['review_rate']} (recall targets and the other flags come first)")
    for warning in warnings:
        log.warning(warning)
    return {"temperatures": temperatures, "thresholds": thresholds,
            "calibration": {"targets": targets, "achieved": achieved, "ece": ece,
                            "low_confidence": low_confidence, "warnings": warnings,
                            "method": "temperature scaling (golden section on log T, NLL); "
                                      "thresholds chosen on the split for the targets"}}


def head_ece(probabilities: np.ndarray, targets: np.ndarray, kind: str) -> float:
    if len(targets) == 0:
        return 0.0
    if kind == "single":
        return expected_calibration_error(probabilities.max(1), probabilities.argmax(1) == targets)
    return expected_calibration_error(probabilities.ravel(), targets.ravel())


def recall_at(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...],
              thresholds: dict[str, float]) -> dict[str, float | None]:
    recalls: dict[str, float | None] = {}
    for index, label in enumerate(labels):
        positives = targets[:, index] == 1
        found = probabilities[positives, index] >= thresholds[label]
        recalls[label] = float(found.mean()) if positives.any() else None
    return recalls


def item_flags(probabilities: dict[str, np.ndarray], samples: list[Sample], taxonomy: Taxonomy,
               thresholds: dict[str, Any], skip_damage: bool = False,
               policy: Policy | None = None) -> np.ndarray:
    """Per item (in first-seen order): would the service send it to review on the model's
    assessment alone? Asks inspection.decide itself, so calibration and serving cannot drift."""
    policy = policy or load_policy()
    flags = []
    for item_rows in rows_by_item(samples).values():
        photos = [{head.name: dict(zip(head.labels, map(float, probabilities[head.name][row]), strict=True))
                   for head in taxonomy.heads if head.name in probabilities} for row in item_rows]
        category = samples[item_rows[0]].category
        item = aggregate(photos, taxonomy, category, thresholds, policy)
        kinds = {flag.kind for flag in assessment_flags(item, category, thresholds, policy)}
        if skip_damage:
            kinds.discard("damage_found")
        flags.append(bool(kinds))
    return np.array(flags, dtype=bool)


def damage_threshold_for_rate(probabilities: dict[str, np.ndarray], samples: list[Sample],
                              taxonomy: Taxonomy, thresholds: dict[str, Any], rate: float,
                              warnings: list[str]) -> float | None:
    """One damage threshold for all labels: the review budget left after the other flags."""
    others = item_flags(probabilities, samples, taxonomy, thresholds, skip_damage=True)
    budget = rate * len(others) - others.sum()
    if budget < 0:
        warnings.append(f"review_rate={rate} cannot be met: accessory and low-confidence flags "
                        f"alone send {others.mean():.3f} of val items; damage thresholds stay 0.5")
        return None
    items = rows_by_item(samples).values()
    scores = np.array([probabilities["damage"][item_rows].max() for item_rows in items])
    free = scores[~others]
    if len(free) == 0:
        return None
    return threshold_for_review_rate(free, min(1.0, budget / len(free)))
