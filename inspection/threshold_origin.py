"""How a flag's threshold was chosen, in words, from the model card's calibration record and
the policy: the evidence packet states it beside every flag. Pure: card + policy in, text out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inspection.card import ModelCard
from inspection.case_compare import CASE_FLAGS
from inspection.decide import Policy

HEAD_OF_FLAG = {"damage_found": "damage", "accessory_missing": "accessories"}


def threshold_origin(kind: str, label: str | None, category: str | None, card: ModelCard,
                     policy: Policy, basis: str | None = None) -> str:
    """`basis` is what the photos' likeness was measured against (`sku` for the SKU catalog)."""
    if basis == "sku" and kind in ("item_mismatch", "anomaly"):
        return (f"fitted on SKU {label}'s catalog photos when they were registered "
                "(leave-one-out, for the catalog's false-flag target)")
    if kind in HEAD_OF_FLAG:
        return _head_origin(HEAD_OF_FLAG[kind], label, card)
    if kind == "low_confidence":
        if "low_confidence" in card.thresholds:
            return (f"set at calibration (`calibrate --low-confidence "
                    f"{card.calibration.get('low_confidence', '?')}`), {_fitted_on(card.calibration)}")
        return "the policy's default low-confidence floor"
    if kind == "defect_found":
        return _defect_origin(card, policy, category)
    if kind == "photo_unusable":
        return "the policy's photo quality limits (quality section of the policy file)"
    if kind == "item_mismatch":
        report = (card.calibration.get("item_mismatch") or {}).get(category or "")
        if not report:
            return "the policy's default item-mismatch similarity"
        return (f"fitted by `anomaly fit`: at most {_pct(report.get('false_mismatch_rate'))} of "
                f"{report.get('genuine')} genuine val photos below it (impostors below: "
                f"{_pct(report.get('true_mismatch_rate'))} of {report.get('impostor')})")
    if kind == "anomaly":
        fitted = (card.anomaly.get(category or "") or {}).get("fitted_on") or {}
        return (f"fitted by `anomaly fit` on {fitted.get('good', '?')} held-out good photos for a "
                f"{_pct(fitted.get('target_fpr'))} false-alarm target (achieved "
                f"{_pct(fitted.get('good_fpr'))})") if fitted else "the detector's own threshold"
    if kind in CASE_FLAGS:
        report = (card.calibration.get("case") or {}).get(kind)
        if not report:
            return ("set in the model card without a fitting record" if kind in card.thresholds
                    else "the policy's default")
        return (f"fitted by `case fit` on {report.get('negatives')} pairs of photos of the same "
                f"item ({report.get('split')} split) for at most {_pct(report.get('target'))} "
                f"raised on them (achieved {_pct(report.get('false_rate'))}; raised on "
                f"{_pct(report.get('detection_rate'))} of {report.get('positives')} "
                f"{report.get('positives_are')})")
    return "not recorded"


def _defect_origin(card: ModelCard, policy: Policy, category: str | None) -> str:
    """With no threshold the head's own call decides (its no-defect label is the bar); the
    anomaly score's second opinion, where fitted, is already in those probabilities."""
    fitted = card.thresholds.get("defect_found")
    if isinstance(fitted, Mapping) and fitted:
        calibration = card.calibration
        targets: Mapping[str, Any] = calibration.get("targets") or {}
        achieved: Mapping[str, Any] = calibration.get("achieved") or {}
        base = "; ".join(
            f"a threshold of {float(limit):.3f} on {head}'s probability of any defect, fitted by "
            f"`calibrate` for {head}_recall={targets.get(f'{head}_recall', '?')} (achieved "
            f"{_pct((achieved.get(f'{head}_recall') or {}).get('recall'))} of the items with a "
            f"defect, {_pct((achieved.get(f'{head}_recall') or {}).get('false_flag_rate'))} of "
            f"those without), {_fitted_on(calibration)}" for head, limit in fitted.items())
    elif fitted is not None:
        base = "a threshold on the probability of any defect, set in the model card"
    elif policy.thresholds.get("defect_found") is not None:
        base = "the policy's threshold on the probability of any defect"
    else:
        base = ("the head's own call: the likeliest defect against the no-defect label's "
                "probability (the policy sets no defect_found threshold)")
    opinion = (card.anomaly.get(category or "") or {}).get("second_opinion")
    if not opinion:
        return base
    fitted = opinion.get("fitted_on") or {}
    return (f"{base}; the anomaly score's second opinion is weighed into those probabilities "
            f"(fitted by `anomaly fit` on {fitted.get('good', '?')} good and "
            f"{fitted.get('defect', '?')} defect photos)")


def _head_origin(head: str, label: str | None, card: ModelCard) -> str:
    if label is None or label not in (card.thresholds.get(head) or {}):
        return "the policy's default threshold"
    calibration = card.calibration
    targets: Mapping[str, Any] = calibration.get("targets") or {}
    target = targets.get(f"{head}_recall")
    achieved = ((calibration.get("achieved") or {}).get(f"{head}_recall") or {}).get(label)
    if target is not None:
        return (f"fitted by `calibrate` for {head}_recall={target} "
                f"(achieved {_pct(achieved)} for {label}), {_fitted_on(calibration)}")
    if "review_rate" in targets:
        return f"fitted by `calibrate` for review_rate={targets['review_rate']}, {_fitted_on(calibration)}"
    return f"`calibrate` default (0.5), {_fitted_on(calibration)}"


def _fitted_on(calibration: Mapping[str, Any]) -> str:
    return (f"on the {calibration.get('split', '?')} split ({calibration.get('photos', '?')} photos of "
            f"manifest sha256 {str(calibration.get('manifest_sha256', '?'))[:12]}…, "
            f"{calibration.get('created', '?')})")


def _pct(value: object) -> str:
    return f"{100.0 * float(value):.1f}%" if isinstance(value, int | float) else "?"
