"""`returns-inspect calibrate`: fit temperatures and flag thresholds of a bundle on its val split.

    returns-inspect calibrate --bundle models/default --manifest data/synth/manifest.csv \\
        --target damage_recall=0.95 --target review_rate=0.10

Targets, each chosen on the validation photos (run through the bundle's ONNX session):
- `<head>_recall=R` (`damage_recall`, `accessories_recall` or `accessory_recall`, any multi-label
  head): per label, the highest threshold that still finds R of the label's positives; 0.5 with a
  warning when the split has no positive of that label.
- `<head>_recall=R` for a single-label head with a `no_defect` label (MVTec's `defect_recall`):
  the highest threshold on P(any defect) = 1 - P(no defect) of an item's likeliest-defective
  photo that still flags R of the val items with a defect (`defect_found`; the anomaly score's
  second opinion weighed in where `anomaly fit` has fitted one, as served). Without it the
  head's own call raises the flag.
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
from inspection.manifest import Sample, read_manifest, rows_by_item, with_category
from inspection.taxonomy import Head, Taxonomy
from training.calibration import (
    DEFAULT_LOW_CONFIDENCE,
    LOG_T_BOUNDS,
    Opinion,
    default_thresholds,
    fit_temperature,
    threshold_for_recall,
    threshold_for_review_rate,
)
from training.metrics import expected_calibration_error
from training.predictions import (
    collect_logits,
    flag_rates,
    item_defect_calls,
    multi_targets,
    opinion_probabilities,
    single_targets,
    split_samples,
    weigh_in,
)
from training.versioning import utc_now

log = logging.getLogger(__name__)
DEFAULT_TARGETS = {"damage_recall": 0.95}
DEFECT_FLAG = "defect_found"  # the card's thresholds key: head -> threshold on P(any defect)
ALIASES = {"accessory_recall": "accessories_recall"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder, e.g. models/default")
    parser.add_argument("--manifest", required=True, help="manifest with a val split")
    parser.add_argument("--split", default="val", help="split to fit on (default val)")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=VALUE",
                        help="damage_recall=0.95, accessories_recall=0.9, review_rate=0.10, "
                        "defect_recall=0.99 (a head with a no_defect label, e.g. MVTec's defect) "
                        f"(repeatable; default {DEFAULT_TARGETS})")
    parser.add_argument("--as-category", metavar="NAME",
                        help="photos without a category count as category NAME (as for `anomaly "
                             "fit`): their anomaly detector's second opinion is weighed in")
    parser.add_argument("--low-confidence", type=float, default=DEFAULT_LOW_CONFIDENCE,
                        help="a single-label head whose top probability is below this flags low "
                        f"confidence (default {DEFAULT_LOW_CONFIDENCE})")


def parse_targets(texts: list[str], taxonomy: Taxonomy) -> dict[str, float]:
    if not texts:
        return {name: value for name, value in DEFAULT_TARGETS.items()
                if name == "review_rate" or taxonomy.has_head(name.removesuffix("_recall"))}
    targets: dict[str, float] = {}
    recall_heads = [head.name for head in taxonomy.heads
                    if head.type == "multi" or head.no_defect is not None]
    for text in texts:
        name, _, value = text.partition("=")
        name = ALIASES.get(name.strip(), name.strip())
        known = name == "review_rate" or (name.endswith("_recall") and name[:-7] in recall_heads)
        if not known:
            choices = ["review_rate", *(f"{head}_recall" for head in recall_heads)]
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
    if args.as_category:
        manifest = with_category(manifest, args.as_category)
    samples = split_samples(manifest, args.split)
    outputs = collect_logits(engine, manifest, samples, desc=f"calibrate on {args.split}")
    opinions, _ = opinion_probabilities(engine, manifest, samples)
    result = calibrate(outputs.logits, samples, taxonomy, targets, args.low_confidence, opinions)
    card = read_card(args.bundle)
    card.temperatures = result["temperatures"]
    # Thresholds other steps fitted (item mismatch, the case flags) stay; every head's are
    # replaced, defect_found's too (fitted on the old temperatures, or not asked for now).
    kept = {key: value for key, value in card.thresholds.items() if key != DEFECT_FLAG}
    card.thresholds = {**kept, **result["thresholds"]}
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
              targets: dict[str, float], low_confidence: float,
              opinions: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Temperatures, thresholds and the evidence for them, from raw val logits. `opinions`: per
    head the anomaly score's second opinion weighs, q per photo (NaN where none applies;
    `training.predictions.opinion_probabilities`): that head's temperature is fitted on the
    served product, and a `defect_found` threshold is chosen on it."""
    opinions = opinions or {}
    temperatures, ece = {}, {}
    probabilities = {}
    warnings: list[str] = []
    for head in taxonomy.heads:
        if head.type == "single":
            y = single_targets(samples, head)
            keep = y >= 0
            opinion = (Opinion(head.index(str(head.no_defect)), opinions[head.name][keep])
                       if head.name in opinions else None)
            temperatures[head.name] = fit_temperature(logits[head.name][keep], y[keep], "single",
                                                      opinion=opinion)
        else:
            y, keep = multi_targets(samples, head)
            opinion = None
            temperatures[head.name] = fit_temperature(logits[head.name][keep], y[keep], "multi")
        if not LOG_T_BOUNDS[0] + 0.01 < np.log(temperatures[head.name]) < LOG_T_BOUNDS[1] - 0.01:
            warnings.append(f"{head.name}: temperature {temperatures[head.name]:.3g} is at the search "
                            "bound; the model's scores carry little information on this split")
        before = head_probabilities(logits[head.name][keep], head, 1.0)
        after = head_probabilities(logits[head.name][keep], head, temperatures[head.name])
        if opinion is not None:  # the ECE of what is served
            before, after = opinion.weigh(before), opinion.weigh(after)
        ece[head.name] = {"before": head_ece(before, y[keep], head.type),
                          "after": head_ece(after, y[keep], head.type)}
        probabilities[head.name] = head_probabilities(logits[head.name], head, temperatures[head.name])
    thresholds = default_thresholds(taxonomy)
    thresholds["low_confidence"] = {name: low_confidence for name in thresholds["low_confidence"]}
    achieved: dict[str, Any] = {}
    defect_heads = [name for name in targets if name.endswith("_recall")
                    and taxonomy.head(name[:-7]).type == "single"]
    served = {name: values.copy() for name, values in probabilities.items()}
    weigh_in(served, opinions, taxonomy)  # what the service's flags read
    for name, value in targets.items():
        if name in defect_heads:
            head = taxonomy.head(name[:-7])
            chosen, achieved[name] = defect_threshold(served[head.name], samples, head, value)
            if chosen is None:
                warnings.append(f"{head.name}: no item with a defect in val; the head's own call "
                                "keeps raising defect_found")
            else:
                thresholds.setdefault(DEFECT_FLAG, {})[head.name] = chosen
        elif name.endswith("_recall"):
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
        shared = damage_threshold_for_rate(served, samples, taxonomy, thresholds,
                                           targets["review_rate"], warnings)
        if shared is not None:
            thresholds["damage"] = {label: shared for label in taxonomy.head("damage").labels}
    achieved["review_rate"] = float(item_flags(served, samples, taxonomy, thresholds).mean())
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


def defect_threshold(probabilities: np.ndarray, samples: list[Sample], head: Head,
                     target: float) -> tuple[float | None, dict[str, Any]]:
    """Per item, P(any defect) of its likeliest-defective photo (as `inspection.decide` calls the
    item): the highest threshold that flags `target` of the items with a defect, and what it
    does on both kinds of item."""
    calls, defective = item_defect_calls(probabilities, samples, head)
    score = np.array([call.defect_probability or 0.0 for call in calls], dtype=np.float64)
    chosen = threshold_for_recall(score, defective, target) if defective.any() else None
    if chosen is None:
        return None, {}
    return chosen, flag_rates(score >= chosen, defective)


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
