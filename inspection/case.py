"""A return is a case: the inspection being made is compared with the photos of the return's
other side (the customer's at the request, the station's at the dock), and the comparison's
flags join the inspection's own before the decision.

`case_outcome` is pure (numbers in, flags and a JSON-ready record out); gathering the other
side's photos from the database and the photo store is the service's job
(`inspection.service.case_photos`). The record is stored with the inspection as `comparison`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from inspection.card import ModelCard
from inspection.case_compare import (
    CASE_FLAGS,
    CHANGED,
    NEW_DAMAGE,
    WEIGHT_KEY,
    CasePhoto,
    PairCheck,
    case_photo,
    compare,
    rounded_map,
)
from inspection.decide import Flag, Policy, threshold
from inspection.engine import PhotoPrediction

OTHER_SIDE = {"station": "customer", "customer": "station"}
UNMATCHED_MAP = "unmatched_map"  # key of the stored per-photo map (heatmap label `unmatched`)


@dataclass(frozen=True)
class Counterpart:
    """The other side's photos of the same return, re-scored by the current model."""

    source: str  # customer | station
    photos: list[CasePhoto]
    inspections: list[str]  # their inspection ids, oldest first
    missing: list[str] = field(default_factory=list)  # photos no longer stored (retention)


@dataclass(frozen=True)
class CaseOutcome:
    flags: list[Flag]
    comparison: dict[str, Any]  # schemas.CaseComparisonPublic, stored as `case_comparison`
    skipped: list[dict[str, str]]
    maps: dict[int, list[list[float]]]  # this inspection's photo index -> unmatched map


CaseCheck = Callable[[Sequence[PhotoPrediction]], CaseOutcome]


def case_thresholds(card_thresholds: Mapping[str, Any], policy: Policy) -> dict[str, float | None]:
    """Each flag's threshold and the same-item score's embedding weight (None: not fitted)."""
    return {key: threshold(card_thresholds, policy, key) for key in (*CASE_FLAGS, WEIGHT_KEY)}


def case_outcome(inspection_id: str, source: str, predictions: Sequence[PhotoPrediction],
                 counterpart: Counterpart, thresholds: Mapping[str, float | None]) -> CaseOutcome:
    """Compare this inspection's photos with the counterpart's; a one-sided return (or one
    whose other side was purged) is not compared, and the record says why."""
    other = counterpart.source
    base = {"against": other, "against_inspections": counterpart.inspections,
            "missing_photos": counterpart.missing, "checks": [], "compared": {}}
    mine = [photo for index, prediction in enumerate(predictions)
            if (photo := case_photo(inspection_id, index, source, prediction)) is not None]
    why = _not_compared(counterpart, mine)
    if why:  # said in `comparison`, not in skipped_checks: most station visits are one-sided
        return CaseOutcome([], {**base, "status": "not_compared", "reason": why}, [], {})
    station, customer = (mine, counterpart.photos) if source == "station" else (counterpart.photos, mine)
    comparison = compare(station, customer, thresholds)
    skipped = [{"kind": kind, "reason": "no fitted threshold in the model card "
                "(run `returns-inspect case fit`): the score is shown, nothing is flagged"}
               for kind in CASE_FLAGS if thresholds.get(kind) is None]
    record = {**base, "status": "compared", "reason": "",
              "checks": [check.to_dict() for check in comparison.checks],
              "compared": comparison.compared}
    maps = ({index: rounded_map(values) for index, values in comparison.unmatched_maps.items()}
            if source == "station" else {})
    return CaseOutcome([_flag(check, source) for check in comparison.flagged()], record, skipped, maps)


def _not_compared(counterpart: Counterpart, mine: list[CasePhoto]) -> str:
    other = counterpart.source
    if not mine:
        return "the model gives no embedding or patch features: nothing to compare"
    if counterpart.photos:
        return ""
    if counterpart.missing:
        return (f"the {other}'s photos of this return are no longer stored (retention): "
                f"{len(counterpart.missing)} photo(s) purged")
    if counterpart.inspections:  # the rows are there but hold no photo any more
        return (f"the {other}'s {len(counterpart.inspections)} inspection(s) of this return hold "
                f"no stored photo (retention)")
    return (f"photos from one side only: no {other} photos for this return yet; the comparison "
            f"runs when they arrive")


def _flag(check: PairCheck, source: str) -> Flag:
    """The flag points at this inspection's photo of the pair (the other is in `comparison`)."""
    photo = check.station[1] if source == "station" else check.customer[1]
    assert check.threshold is not None
    return Flag(check.kind, check.reason, check.score, check.threshold, label=check.label,
                photo=photo)


def card_sha256(card: ModelCard) -> str:
    """The card's content as served (thresholds included), canonical JSON: a later `calibrate`
    keeps the model_id but changes this."""
    return _digest(card.to_dict())


def policy_sha256(policy: Policy) -> str:
    """The policy in effect, canonical JSON (frozensets sorted): its version in the evidence."""
    return _digest(asdict(policy))


def _digest(data: Any) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, frozenset | set):
            return sorted(value)
        raise TypeError(f"cannot hash {type(value).__name__}")
    text = json.dumps(data, sort_keys=True, default=plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["CHANGED", "NEW_DAMAGE", "OTHER_SIDE", "UNMATCHED_MAP", "CaseCheck", "CaseOutcome",
           "Counterpart", "card_sha256", "case_outcome", "case_thresholds", "policy_sha256"]
