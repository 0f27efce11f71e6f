"""decide(): photos' probabilities -> item -> flags -> disposition and refund, as a table of edge
cases, each commented. Rules come from the packaged policy (inspection/defaults/policy.yaml)."""

from __future__ import annotations

from typing import Any

import pytest

from inspection.decide import (
    Flag,
    aggregate,
    assessment_flags,
    decide,
    load_policy,
    parse_policy,
    threshold,
)
from inspection.errors import InputError
from inspection.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
POLICY = load_policy()
DAMAGES = TAXONOMY.head("damage").labels
ACCESSORIES = TAXONOMY.head("accessories").labels


def photo(grade: str, confidence: float = 0.9, damage: dict[str, float] | None = None,
          seen: tuple[str, ...] = ACCESSORIES) -> dict[str, dict[str, float]]:
    rest = (1 - confidence) / 3
    return {
        "condition": {g: confidence if g == grade else rest for g in "ABCD"},
        "damage": {label: (damage or {}).get(label, 0.02) for label in DAMAGES},
        "accessories": {label: 0.95 if label in seen else 0.05 for label in ACCESSORIES},
    }


def outcome(photos: list[dict[str, Any]], category: str | None = "phone",
            extra_flags: tuple[str, ...] = (), card: dict[str, Any] | None = None
            ) -> tuple[str, str, set[str]]:
    card = card or {}
    item = aggregate(photos, TAXONOMY, category, card, POLICY)
    flags = assessment_flags(item, category, card, POLICY)
    flags += [Flag(kind, "test", 1.0, 0.5) for kind in extra_flags]
    decision = decide(item, flags, POLICY)
    return decision.disposition, decision.refund, {flag.kind for flag in flags}


NO_CHARGER = tuple(a for a in ACCESSORIES if a != "charger")

CASES = [
    # (photos, category, extra flags) -> (disposition, refund, flags raised)
    # grade A, complete kit: the happy path, nothing to review
    ([photo("A")], "phone", (), ("restock", "approve", set())),
    # grade B, complete: open-box, refund approved
    ([photo("B")], "phone", (), ("open_box", "approve", set())),
    # grade C: used -> refurbish, refund held
    ([photo("C")], "phone", (), ("refurbish", "hold_for_review", set())),
    # grade A but the charger is missing: incomplete beats the grade
    ([photo("A", seen=NO_CHARGER)], "phone", (), ("refurbish", "hold_for_review",
                                                   {"accessory_missing"})),
    # the charger is missing from a shoe return: not in the shoe kit, so nothing is missing
    ([photo("A", seen=NO_CHARGER)], "shoe", (), ("restock", "approve", set())),
    # no category given: no kit is expected
    ([photo("A", seen=())], None, (), ("restock", "approve", set())),
    # grade D: liquidate
    ([photo("D")], "phone", (), ("liquidate", "hold_for_review", set())),
    # grade B with a crack at 0.9: broken/cracked -> liquidate, even though the grade says B
    ([photo("B", damage={"crack": 0.9})], "phone", (),
     ("liquidate", "hold_for_review", {"damage_found"})),
    # grade D with crack AND broken part: worthless -> recycle
    ([photo("D", damage={"crack": 0.9, "broken_part": 0.8})], "phone", (),
     ("recycle", "hold_for_review", {"damage_found"})),
    # a crack at 0.49, just under the 0.5 default threshold: not found
    ([photo("A", damage={"crack": 0.49})], "phone", (), ("restock", "approve", set())),
    # a crack at exactly 0.5: found (>= threshold)
    ([photo("A", damage={"crack": 0.5})], "phone", (),
     ("liquidate", "hold_for_review", {"damage_found"})),
    # a scratch on a grade-A item: wear -> refurbish
    ([photo("A", damage={"scratch": 0.7})], "phone", (),
     ("refurbish", "hold_for_review", {"damage_found"})),
    # two photos, one A and one C: the worst grade any photo shows wins
    ([photo("A"), photo("C")], "phone", (), ("refurbish", "hold_for_review", set())),
    # accessories are visible if ANY photo shows them: charger on photo 2 only
    ([photo("A", seen=NO_CHARGER), photo("A")], "phone", (), ("restock", "approve", set())),
    # grade A at confidence 0.5 (< 0.55): low confidence holds the refund, keeps the disposition
    ([photo("A", confidence=0.5)], "phone", (), ("restock", "hold_for_review", {"low_confidence"})),
    # grade A but the item does not look like the declared product: refund held
    ([photo("A")], "phone", ("item_mismatch",), ("restock", "hold_for_review", {"item_mismatch"})),
    # anomaly on a grade-B item: refund held
    ([photo("B")], "phone", ("anomaly",), ("open_box", "hold_for_review", {"anomaly"})),
    # an unusable photo: refund held until a better photo comes
    ([photo("A")], "phone", ("photo_unusable",), ("restock", "hold_for_review", {"photo_unusable"})),
]


@pytest.mark.parametrize(("photos", "category", "extra", "expected"), CASES)
def test_decision_table(photos: list[dict[str, Any]], category: str | None,
                        extra: tuple[str, ...], expected: tuple[str, str, set[str]]) -> None:
    assert outcome(photos, category, extra) == expected


def test_no_photos_and_no_rule_matches_falls_back_to_the_default() -> None:
    # nothing to grade: the default rule sends it to a person
    assert outcome([], "phone")[:2] == ("manual_review", "hold_for_review")


def test_card_thresholds_override_the_policy() -> None:
    # calibration chose 0.3 for crack: a 0.4 crack is now found, other labels keep 0.5
    card = {"damage": {"crack": 0.3}}
    assert outcome([photo("A", damage={"crack": 0.4})], card=card)[0] == "liquidate"
    assert threshold(card, POLICY, "damage", "scratch") == 0.5
    assert threshold({"low_confidence": 0.8}, POLICY, "low_confidence") == 0.8


def test_calibrated_low_confidence_per_head_is_read() -> None:
    # calibrate writes {"low_confidence": {"condition": p}}: a 0.7 grade is low against 0.8
    card = {"low_confidence": {"condition": 0.8}}
    flags = outcome([photo("A", confidence=0.7)], "phone", card=card)[2]
    assert "low_confidence" in flags


def test_mean_aggregation_averages_probabilities() -> None:
    policy = parse_policy({**_raw_policy(), "aggregation": {"condition": "mean"}})
    item = aggregate([photo("A", 0.9), photo("C", 0.6)], TAXONOMY, "phone", {}, policy)
    assert item.condition == "A"  # mean A = (0.9 + 0.133) / 2 > mean C = (0.033 + 0.6) / 2
    assert item.condition_confidence == pytest.approx((0.9 + 0.4 / 3) / 2)


def test_flags_carry_reason_score_and_threshold() -> None:
    item = aggregate([photo("A", damage={"crack": 0.8}, seen=NO_CHARGER)], TAXONOMY, "phone", {},
                     POLICY)
    flags = {flag.kind: flag for flag in assessment_flags(item, "phone", {}, POLICY)}
    assert flags["damage_found"].score == 0.8 and flags["damage_found"].threshold == 0.5
    assert "crack" in flags["damage_found"].reason
    assert flags["accessory_missing"].label == "charger"
    assert flags["accessory_missing"].score == 0.05  # the best probability that it is visible


def test_a_policy_with_an_unknown_condition_is_refused() -> None:
    raw = _raw_policy()
    raw["rules"] = [{"name": "x", "when": {"grade_is": ["A"]}, "disposition": "d", "refund": "r"}]
    with pytest.raises(InputError, match="grade_is"):
        parse_policy(raw)


def _raw_policy() -> dict[str, Any]:
    import yaml

    from inspection.decide import DEFAULT_POLICY
    return yaml.safe_load(DEFAULT_POLICY.read_text())


def test_a_taxonomy_s_own_single_label_heads_get_an_item_call() -> None:
    """The item's answer carries the call of a taxonomy's own single-label heads: with a
    `no_defect` label (MVTec's `defect`), from the photo least likely to show no defect (one
    photo of a break is enough); without one, from the most confident photo."""
    from inspection.taxonomy import Taxonomy
    taxonomy = Taxonomy.from_dict({"heads": {
        "defect": {"type": "single", "labels": ["good", "broken", "stain"]},
        "colour": {"type": "single", "labels": ["red", "blue"]}}})
    photos = [{"defect": {"good": 0.7, "broken": 0.2, "stain": 0.1}, "colour": {"red": 0.9, "blue": 0.1}},
              {"defect": {"good": 0.4, "broken": 0.5, "stain": 0.1}, "colour": {"red": 0.4, "blue": 0.6}}]
    item = aggregate(photos, taxonomy, None, {}, POLICY)
    assert (item.other_heads["defect"].label, item.other_heads["defect"].photo) == ("broken", 1)
    assert (item.other_heads["colour"].label, item.other_heads["colour"].photo) == ("red", 0)
    assert item.other_heads["defect"].confidence == 0.5
    assert aggregate([photo("A")], TAXONOMY, "phone", {}, POLICY).other_heads == {}  # only the three


OWN_HEADS = {"heads": {"defect": {"type": "single", "labels": ["good", "broken", "stain"]},
                       "colour": {"type": "single", "labels": ["red", "blue"]}}}


def _defect_item(*defect_rows: dict[str, float], card: dict[str, Any] | None = None):
    from inspection.taxonomy import Taxonomy
    taxonomy = Taxonomy.from_dict(OWN_HEADS)
    photos = [{"defect": row, "colour": {"red": 0.9, "blue": 0.1}} for row in defect_rows]
    item = aggregate(photos, taxonomy, None, card or {}, POLICY)
    return item, assessment_flags(item, None, card or {}, POLICY)


@pytest.mark.parametrize(("rows", "raised"), [
    # one photo of a break is enough: it speaks for the item, the break against good
    ([{"good": 0.7, "broken": 0.2, "stain": 0.1}, {"good": 0.4, "broken": 0.5, "stain": 0.1}],
     [("broken", 1, 0.5, 0.4)]),
    # 0.55 of the photo is some defect, but the head calls it good: its own call decides
    ([{"good": 0.45, "broken": 0.30, "stain": 0.25}], []),
    ([{"good": 0.8, "broken": 0.1, "stain": 0.1}], []),
    ([{"good": 0.3, "broken": 0.3, "stain": 0.4}], [("stain", 0, 0.4, 0.3)]),
])
def test_a_head_with_a_no_defect_label_raises_defect_found_on_its_call(
        rows: list[dict[str, float]], raised: list[tuple[str, int, float, float]]) -> None:
    item, flags = _defect_item(*rows)
    defects = [(f.label, f.photo, f.score, f.threshold) for f in flags if f.kind == "defect_found"]
    assert defects == raised
    assert all(f.kind == "defect_found" for f in flags)  # the head without no_defect raises none


def test_a_threshold_makes_any_defect_s_probability_decide() -> None:
    """A threshold (policy or card, per head) compares 1 - P(no defect) with it: a recall knob."""
    row = {"good": 0.55, "broken": 0.3, "stain": 0.15}
    assert not _defect_item(row)[1]  # the head calls it good
    flags = _defect_item(row, card={"defect_found": {"defect": 0.4}})[1]
    assert [(f.kind, f.label, f.threshold) for f in flags] == [("defect_found", "broken", 0.4)]
    assert flags[0].score == pytest.approx(0.45)
    assert "broken likely" in flags[0].reason and "good 0.55" in flags[0].reason
    assert not _defect_item(row, card={"defect_found": {"defect": 0.5}})[1]
    assert not _defect_item(row, card={"defect_found": {"colour": 0.1}})[1]  # another head's


def test_defect_found_holds_the_refund_and_call_in_rules_read_the_head_s_call() -> None:
    raw = _raw_policy()
    raw["rules"] = [{"name": "clean", "when": {"call_in": {"defect": ["good"]}},
                     "disposition": "restock", "refund": "approve"},
                    {"name": "broken", "when": {"call_in": {"defect": ["broken"]}},
                     "disposition": "liquidate", "refund": "hold_for_review"}]
    policy = parse_policy(raw)
    item, flags = _defect_item({"good": 0.9, "broken": 0.05, "stain": 0.05})
    assert decide(item, flags, policy).rule == "clean" and decide(item, flags, policy).refund == "approve"
    item, flags = _defect_item({"good": 0.3, "broken": 0.6, "stain": 0.1})
    decision = decide(item, flags, policy)
    assert (decision.rule, decision.refund) == ("broken", "hold_for_review")
    assert "refund held: defect_found" in decision.reasons
    # a head the item has no call on matches nothing
    item, flags = _defect_item({"good": 0.9, "broken": 0.05, "stain": 0.05})
    odd = parse_policy({**raw, "rules": [{"name": "x", "when": {"call_in": {"size": ["big"]}},
                                          "disposition": "d", "refund": "approve"}]})
    assert decide(item, flags, odd).rule == odd.default.name


@pytest.mark.parametrize("call_in", [["good"], {"defect": "good"}, {"defect": [1]}])
def test_a_malformed_call_in_is_refused_naming_the_rule(call_in: Any) -> None:
    raw = _raw_policy()
    raw["rules"] = [{"name": "odd", "when": {"call_in": call_in}, "disposition": "d", "refund": "r"}]
    with pytest.raises(InputError, match="'odd': call_in maps a head"):
        parse_policy(raw)


def test_policy_notes_name_what_a_rule_reads_that_the_model_cannot_say() -> None:
    from inspection.decide import policy_notes
    from inspection.taxonomy import Taxonomy
    assert policy_notes(POLICY, TAXONOMY) == []  # the default policy and taxonomy agree
    raw = _raw_policy()
    raw["rules"] = [{"name": "typo", "when": {"damage_any": ["crak", "scratch"]},
                     "disposition": "d", "refund": "r"},
                    {"name": "own", "when": {"call_in": {"defect": ["good"]}, "flags_any": ["x"]},
                     "disposition": "d", "refund": "r"}]
    notes = policy_notes(parse_policy(raw), TAXONOMY)
    assert notes[0].startswith("rule 'typo' names ['crak'], not labels of head 'damage'")
    assert notes[1].startswith("rule 'own' reads head 'defect', which this model does not have")
    assert len(notes) == 2
    assert policy_notes(parse_policy(raw), Taxonomy.from_dict(OWN_HEADS))[1:] == []
