"""Pure decisions: per-photo probabilities -> the item's grade, damages and missing parts ->
flags -> a disposition and a refund recommendation.

Nothing here reads files, clocks or models; every number that decides something comes from
the policy (`inspection/defaults/policy.yaml`, overridable) or the model card's fitted
thresholds, so QA can change a rule without touching code and every decision is testable as a
table (tests/test_decide.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspection.errors import InputError
from inspection.quality import QualityLimits
from inspection.taxonomy import Taxonomy
from inspection.yamlfile import read_yaml

DEFAULT_POLICY = Path(__file__).parent / "defaults" / "policy.yaml"
Probabilities = Mapping[str, Mapping[str, float]]  # head -> label -> probability


@dataclass(frozen=True)
class Rule:
    name: str
    when: dict[str, Any]
    disposition: str
    refund: str


@dataclass(frozen=True)
class Policy:
    quality: QualityLimits
    thresholds: dict[str, Any]
    condition_aggregation: str
    hold_refund_flags: frozenset[str]
    rules: tuple[Rule, ...]
    default: Rule


def parse_policy(data: Mapping[str, Any], where: str = "policy") -> Policy:
    try:
        rules = tuple(_rule(entry) for entry in data.get("rules") or [])
        default = _rule({"when": {}, **data["default"]})
        aggregation = str((data.get("aggregation") or {}).get("condition", "worst"))
        if aggregation not in ("worst", "mean"):
            raise ValueError(f"aggregation.condition must be 'worst' or 'mean', got {aggregation!r}")
        return Policy(
            quality=QualityLimits.from_dict(dict(data.get("quality") or {})),
            thresholds=dict(data.get("thresholds") or {}),
            condition_aggregation=aggregation,
            hold_refund_flags=frozenset(data.get("hold_refund_flags") or ()),
            rules=rules, default=default,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"not a valid policy ({exc})", where) from None


KNOWN_CONDITIONS = {"grade_in", "damage_any", "damage_all", "missing_any", "flags_any"}


def _rule(entry: Mapping[str, Any]) -> Rule:
    when = dict(entry.get("when") or {})
    unknown = sorted(set(when) - KNOWN_CONDITIONS)
    if unknown:
        raise ValueError(f"rule {entry.get('name')!r}: unknown condition(s) {unknown}")
    return Rule(name=str(entry.get("name", "unnamed")), when=when,
                disposition=str(entry["disposition"]), refund=str(entry["refund"]))


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy YAML file; None means the packaged default."""
    path = Path(path) if path is not None else DEFAULT_POLICY
    return parse_policy(read_yaml(path, "policy") or {}, where=str(path))


def threshold(card_thresholds: Mapping[str, Any], policy: Policy, key: str,
              label: str | None = None) -> float | None:
    """The threshold for `key` (a head, or a check like `low_confidence`), per label or category
    where given. A fitted value in the card wins over the policy's default."""
    for source in (card_thresholds, policy.thresholds):
        value = source.get(key)
        if isinstance(value, Mapping):
            value = value.get(label) if label is not None else None
        if value is not None:
            return float(value)
    return None


@dataclass(frozen=True)
class Flag:
    kind: str  # damage_found | accessory_missing | low_confidence | photo_unusable | item_mismatch | anomaly
    reason: str
    score: float
    threshold: float
    label: str | None = None
    photo: int | None = None  # index of the photo that raised it, where one did


@dataclass(frozen=True)
class ItemAssessment:
    condition: str | None
    condition_confidence: float
    condition_probabilities: dict[str, float]
    damages: dict[str, float]  # every damage label -> the highest score any photo gave it
    found_damages: dict[str, float]  # those at or above their threshold
    accessories: dict[str, float]  # every accessory label -> the highest score any photo gave it
    visible_accessories: dict[str, float]
    missing_accessories: list[str]
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)


def aggregate(photos: Sequence[Probabilities], taxonomy: Taxonomy, category: str | None,
              card_thresholds: Mapping[str, Any], policy: Policy) -> ItemAssessment:
    """Per-photo calibrated probabilities (usable photos only) -> one assessment of the item."""
    condition, confidence, condition_probs = _condition(photos, taxonomy, policy)
    damages = _max_per_label(photos, "damage")
    accessories = _max_per_label(photos, "accessories")
    used = {"damage": {label: threshold(card_thresholds, policy, "damage", label) or 0.5
                       for label in damages},
            "accessories": {label: threshold(card_thresholds, policy, "accessories", label) or 0.5
                            for label in accessories}}
    found = {k: v for k, v in damages.items() if v >= used["damage"][k]}
    visible = {k: v for k, v in accessories.items() if v >= used["accessories"][k]}
    missing = taxonomy.missing_accessories(category, set(visible)) if accessories else []
    return ItemAssessment(condition, confidence, condition_probs, damages, found, accessories,
                          visible, missing, used)


def _condition(photos: Sequence[Probabilities], taxonomy: Taxonomy,
               policy: Policy) -> tuple[str | None, float, dict[str, float]]:
    if not photos or not taxonomy.has_head("condition"):
        return None, 0.0, {}
    labels = taxonomy.head("condition").labels  # ordered best (A) to worst (D)
    if policy.condition_aggregation == "mean":
        mean = {label: sum(p["condition"][label] for p in photos) / len(photos) for label in labels}
        grade = max(mean, key=mean.__getitem__)
        return grade, mean[grade], mean
    tops = [max(p["condition"], key=p["condition"].__getitem__) for p in photos]
    worst = max(range(len(photos)), key=lambda i: labels.index(tops[i]))
    chosen = dict(photos[worst]["condition"])
    return tops[worst], chosen[tops[worst]], chosen


def _max_per_label(photos: Sequence[Probabilities], head: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for photo in photos:
        for label, value in photo.get(head, {}).items():
            scores[label] = max(scores.get(label, 0.0), float(value))
    return scores


def assessment_flags(item: ItemAssessment, category: str | None,
                     card_thresholds: Mapping[str, Any], policy: Policy) -> list[Flag]:
    """Flags that follow from the item's assessment alone (photo, mismatch and anomaly flags
    are measured elsewhere and join these)."""
    flags = [Flag("damage_found", f"{label.replace('_', ' ')} found with probability {score:.2f}",
                  score, item.thresholds["damage"][label], label=label)
             for label, score in sorted(item.found_damages.items(), key=lambda kv: -kv[1])]
    for part in item.missing_accessories:
        score = item.accessories.get(part, 0.0)
        limit = item.thresholds["accessories"].get(part, 0.5)
        flags.append(Flag("accessory_missing",
                          f"{part.replace('_', ' ')} is part of the {category} kit but no photo "
                          f"shows it (best probability {score:.2f})", score, limit, label=part))
    low = threshold(card_thresholds, policy, "low_confidence", label="condition")
    if item.condition is not None and low is not None and item.condition_confidence < low:
        flags.append(Flag("low_confidence",
                          f"condition grade {item.condition} has confidence "
                          f"{item.condition_confidence:.2f}", item.condition_confidence, low,
                          label=item.condition))
    return flags


@dataclass(frozen=True)
class Decision:
    disposition: str
    refund: str
    rule: str
    reasons: tuple[str, ...]


def decide(item: ItemAssessment, flags: Sequence[Flag], policy: Policy) -> Decision:
    """First matching rule gives the disposition; a hold-flag forces the refund to review."""
    kinds = {flag.kind for flag in flags}
    rule = next((r for r in policy.rules if _matches(r.when, item, kinds)), policy.default)
    reasons = [f"rule {rule.name}"]
    refund = rule.refund
    holding = sorted(kinds & policy.hold_refund_flags)
    if holding and refund != "hold_for_review":
        refund = "hold_for_review"
    if holding:
        reasons.append("refund held: " + ", ".join(holding))
    return Decision(rule.disposition, refund, rule.name, tuple(reasons))


def _matches(when: Mapping[str, Any], item: ItemAssessment, kinds: set[str]) -> bool:
    found = set(item.found_damages)
    checks = {
        "grade_in": lambda v: item.condition in set(v),
        "damage_any": lambda v: bool(found & set(v)),
        "damage_all": lambda v: set(v) <= found,
        "missing_any": lambda v: bool(item.missing_accessories) == bool(v),
        "flags_any": lambda v: bool(kinds & set(v)),
    }
    return all(checks[key](value) for key, value in when.items())
