"""Pure decisions: per-photo probabilities -> the item's grade, damages and missing parts ->
flags -> a disposition and a refund recommendation.

Nothing here reads files, clocks or models; every number that decides something comes from
the policy (`inspection/defaults/policy.yaml`, overridable) or the model card's fitted
thresholds, so QA can change a rule without touching code and every decision is testable as a
table (tests/test_decide.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspection.errors import InputError
from inspection.quality import PhotoQuality, QualityLimits
from inspection.taxonomy import SERVICE_HEADS, Head, Taxonomy
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


KNOWN_CONDITIONS = {"grade_in", "damage_any", "damage_all", "missing_any", "flags_any", "call_in"}


def _rule(entry: Mapping[str, Any]) -> Rule:
    when = dict(entry.get("when") or {})
    unknown = sorted(set(when) - KNOWN_CONDITIONS)
    if unknown:
        raise ValueError(f"rule {entry.get('name')!r}: unknown condition(s) {unknown}")
    calls = when.get("call_in", {})
    if not isinstance(calls, Mapping) or not all(
            isinstance(labels, list) and all(isinstance(label, str) for label in labels)
            for labels in calls.values()):
        raise ValueError(f"rule {entry.get('name')!r}: call_in maps a head to a list of its "
                         f"labels, e.g. {{defect: [good]}}; got {calls!r}")
    return Rule(name=str(entry.get("name", "unnamed")), when=when,
                disposition=str(entry["disposition"]), refund=str(entry["refund"]))


# the head a rule's condition reads its labels from (flags_any and missing_any read no label)
CONDITION_HEADS = {"grade_in": "condition", "damage_any": "damage", "damage_all": "damage"}


def policy_notes(policy: Policy, taxonomy: Taxonomy) -> list[str]:
    """What the policy's rules name that the served model cannot say: a misspelt label or a
    head the taxonomy lacks makes a rule silently never match, so the service logs these at
    every model load and `/v1/models/current` lists them. Notes, not errors: one policy file
    may serve bundles of different taxonomies (the default policy's grades mean nothing to an
    MVTec bundle)."""
    notes = []
    for rule in policy.rules:
        named = [(CONDITION_HEADS[key], list(value)) for key, value in rule.when.items()
                 if key in CONDITION_HEADS]
        named += [(head, list(labels)) for head, labels in rule.when.get("call_in", {}).items()]
        for head, labels in named:
            if not taxonomy.has_head(head):
                notes.append(f"rule {rule.name!r} reads head {head!r}, which this model does not "
                             f"have (heads: {taxonomy.head_names})")
                continue
            unknown = [label for label in labels if label not in taxonomy.head(head).labels]
            if unknown:
                notes.append(f"rule {rule.name!r} names {unknown}, not labels of head {head!r} "
                             f"({list(taxonomy.head(head).labels)})")
    return notes


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy YAML file; None means the packaged default."""
    path = Path(path) if path is not None else DEFAULT_POLICY
    return parse_policy(read_yaml(path, "policy") or {}, where=str(path))


def threshold(card_thresholds: Mapping[str, Any], policy: Policy, key: str,
              label: str | None = None, fitted: float | None = None) -> float | None:
    """The one rule for a threshold: `key` is a head or a check (`low_confidence`,
    `item_mismatch`, `anomaly`), per label or category where given. A value fitted for this
    very comparison (a SKU's reference, a category's detector) wins, then the card's
    calibrated one, then the policy's default; None when none exists (the check cannot run)."""
    if fitted is not None:
        return float(fitted)
    for source in (card_thresholds, policy.thresholds):
        value = source.get(key)
        if isinstance(value, Mapping):
            value = value.get(label) if label is not None else None
        if value is not None:
            return float(value)
    return None


@dataclass(frozen=True)
class Flag:
    # damage_found | defect_found | accessory_missing | low_confidence | photo_unusable |
    # item_mismatch | anomaly
    kind: str
    reason: str
    score: float
    threshold: float
    label: str | None = None
    photo: int | None = None  # index of the photo that raised it, where one did


@dataclass(frozen=True)
class HeadCall:
    """The item's call on a single-label head the service gives no meaning of its own (MVTec's
    `defect`). A head with a `no_defect` label raises `defect_found` from it; rules read the
    label through `call_in`."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    photo: int  # position among the photos aggregated: the one the call comes from
    no_defect: str | None = None  # the head's label for "no defect", where it has one

    @property
    def defect_probability(self) -> float | None:
        """P(some defect) on the photo the call comes from: every label but `no_defect`."""
        if self.no_defect is None:
            return None
        return 1.0 - self.probabilities[self.no_defect]

    @property
    def likeliest_defect(self) -> str | None:
        defects = {k: v for k, v in self.probabilities.items() if k != self.no_defect}
        return max(defects, key=defects.__getitem__) if self.no_defect and defects else None


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
    other_heads: dict[str, HeadCall] = field(default_factory=dict)


def aggregate(photos: Sequence[Probabilities], taxonomy: Taxonomy, category: str | None,
              card_thresholds: Mapping[str, Any], policy: Policy,
              kit: Sequence[str] | None = None) -> ItemAssessment:
    """Per-photo calibrated probabilities (usable photos only) -> one assessment of the item.
    `kit` replaces the category's accessory kit (a catalog SKU's own kit)."""
    condition, confidence, condition_probs = _condition(photos, taxonomy, policy)
    damages = _max_per_label(photos, "damage")
    accessories = _max_per_label(photos, "accessories")
    used = {"damage": {label: threshold(card_thresholds, policy, "damage", label) or 0.5
                       for label in damages},
            "accessories": {label: threshold(card_thresholds, policy, "accessories", label) or 0.5
                            for label in accessories}}
    found = {k: v for k, v in damages.items() if v >= used["damage"][k]}
    visible = {k: v for k, v in accessories.items() if v >= used["accessories"][k]}
    expected = list(kit) if kit is not None else list(taxonomy.kits.get(category or "", ()))
    missing = [part for part in expected if part not in visible] if accessories else []
    other = {head.name: head_call(photos, head) for head in taxonomy.heads
             if head.name not in SERVICE_HEADS and head.type == "single" and photos}
    return ItemAssessment(condition, confidence, condition_probs, damages, found, accessories,
                          visible, missing, used, other)


def head_call(photos: Sequence[Probabilities], head: Head) -> HeadCall:
    """With a `no_defect` label, the photo least likely to show no defect speaks for the item
    (one photo of a break is enough, as for damage); otherwise the most confident photo."""
    rows = [photo[head.name] for photo in photos]
    if head.no_defect is not None:
        chosen = min(range(len(rows)), key=lambda i: rows[i][head.no_defect])  # type: ignore[index]
    else:
        chosen = max(range(len(rows)), key=lambda i: max(rows[i].values()))
    probabilities = dict(rows[chosen])
    label = max(probabilities, key=probabilities.__getitem__)
    return HeadCall(label, probabilities[label], probabilities, chosen, head.no_defect)


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


@dataclass(frozen=True)
class Check:
    """One measured score against its threshold. Every model-score flag is a failed Check, so
    the direction of each comparison is written once, here."""

    kind: str
    score: float
    threshold: float
    worse: Literal["above", "below"]  # which side of the threshold raises the flag
    reason: str
    label: str | None = None
    photo: int | None = None

    @property
    def fails(self) -> bool:
        # at or above for scores of trouble; strictly below for scores of likeness/confidence
        return self.score >= self.threshold if self.worse == "above" else self.score < self.threshold

    def flag(self) -> Flag:
        return Flag(self.kind, self.reason, self.score, self.threshold, self.label, self.photo)


def raised(checks: Iterable[Check]) -> list[Flag]:
    return [check.flag() for check in checks if check.fails]


def assessment_flags(item: ItemAssessment, category: str | None,
                     card_thresholds: Mapping[str, Any], policy: Policy) -> list[Flag]:
    """Flags that follow from the item's assessment alone: damage found, a defect called by a
    head with a no-defect label, accessory missing, low confidence (photo, likeness and anomaly
    flags are measured elsewhere and join these)."""
    checks = [Check("damage_found", score, item.thresholds["damage"][label], "above",
                    f"{label.replace('_', ' ')} found with probability {score:.2f}", label=label)
              for label, score in sorted(item.damages.items(), key=lambda kv: -kv[1])]
    checks += [defect_check(name, call, card_thresholds, policy)
               for name, call in item.other_heads.items() if call.likeliest_defect is not None]
    for part in item.missing_accessories:
        score = item.accessories.get(part, 0.0)
        kit_owner = f"the {category}" if category else "this SKU's"
        checks.append(Check("accessory_missing", score,
                            item.thresholds["accessories"].get(part, 0.5), "below",
                            f"{part.replace('_', ' ')} is part of {kit_owner} kit but no photo "
                            f"shows it (best probability {score:.2f})", label=part))
    low = threshold(card_thresholds, policy, "low_confidence", label="condition")
    if item.condition is not None and low is not None:
        checks.append(Check("low_confidence", item.condition_confidence, low, "below",
                            f"condition grade {item.condition} has confidence "
                            f"{item.condition_confidence:.2f}", label=item.condition))
    return raised(checks)


def defect_check(head: str, call: HeadCall, card_thresholds: Mapping[str, Any],
                 policy: Policy) -> Check:
    """Did the head call a defect on the item's likeliest-defective photo? By default the head's
    own call decides: the likeliest defect against the no-defect label, the rule its macro-F1
    measures. A threshold for this head (the card's, else the policy's `defect_found`) instead
    compares P(any defect) = 1 - P(no defect) with it: a recall knob. Not 0.5 by default: a head
    with five defect kinds spreads a good photo's doubt over all five, and their sum passed one
    half on most good magnetic tiles (BENCHMARKS.md, "The head's call decides")."""
    no_defect, defect = str(call.no_defect), str(call.likeliest_defect)
    limit = threshold(card_thresholds, policy, "defect_found", label=head)
    if limit is None:
        score, bar = call.probabilities[defect], call.probabilities[no_defect]
        return Check("defect_found", score, bar, "above",
                     f"{head}: {defect.replace('_', ' ')} called (probability {score:.2f}, "
                     f"{no_defect.replace('_', ' ')} {bar:.2f})", label=defect, photo=call.photo)
    score = float(call.defect_probability or 0.0)
    return Check("defect_found", score, limit, "above",
                 f"{head}: {defect.replace('_', ' ')} likely (probability of any defect "
                 f"{score:.2f}, of {no_defect.replace('_', ' ')} {1.0 - score:.2f})",
                 label=defect, photo=call.photo)


def quality_flags(qualities: Sequence[PhotoQuality]) -> list[Flag]:
    """A photo the quality checks refused (two-sided exposure limits live in quality.py)."""
    return [Flag("photo_unusable", f"photo {index + 1}: {check.reason}", check.value,
                 check.threshold, label=check.name, photo=index)
            for index, quality in enumerate(qualities) for check in quality.problems]


@dataclass(frozen=True)
class Likeness:
    """How the photos compare with what the item should look like: the SKU's own reference
    photos (basis `sku`) or the declared category's references and detector (`category`)."""

    basis: Literal["sku", "category"]
    subject: str  # for reasons: "SKU PHONE-X" or "a phone"
    similarities: Sequence[float] | None = None  # per photo, to the nearest reference
    similarity_threshold: float | None = None
    anomaly_scores: Sequence[float] | None = None  # per photo, normalised
    anomaly_threshold: float | None = None
    closest: Sequence[int] | None = None  # per photo: the nearest reference photo (sku basis)
    label: str | None = None  # the SKU, on its flags


def likeness_flags(likeness: Likeness) -> list[Flag]:
    """item_mismatch for the least alike photo, anomaly for every photo over the line."""
    checks: list[Check] = []
    sims, limit = likeness.similarities, likeness.similarity_threshold
    if sims and limit is not None:
        worst = min(range(len(sims)), key=lambda i: sims[i])
        nearest = (f"reference photo {likeness.closest[worst] + 1}" if likeness.closest
                   else "the nearest reference")
        checks.append(Check("item_mismatch", sims[worst], limit, "below",
                            f"photo {worst + 1} does not look like {likeness.subject} "
                            f"(similarity {sims[worst]:.2f} to {nearest})",
                            label=likeness.label, photo=worst))
    scores, limit = likeness.anomaly_scores, likeness.anomaly_threshold
    if scores is not None and limit is not None:
        checks += [Check("anomaly", score, limit, "above",
                         f"photo {i + 1} has a region unlike any good photo of "
                         f"{likeness.subject} (anomaly score {score:.2f})",
                         label=likeness.label, photo=i) for i, score in enumerate(scores)]
    return raised(checks)


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
        "call_in": lambda v: all(head in item.other_heads and item.other_heads[head].label in labels
                                 for head, labels in v.items()),
    }
    return all(checks[key](value) for key, value in when.items())
