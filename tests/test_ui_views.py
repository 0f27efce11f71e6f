"""The operator page's pure parts as tables: where sign-in may send you, how filters ride along,
which heatmaps are offered, and how a submitted form becomes a review."""

from __future__ import annotations

from typing import Any

import pytest

from inspection.decide import load_policy
from inspection.service.ui_auth import safe_next
from inspection.service.ui_views import (
    HeadChoice,
    dispositions,
    filter_query,
    head_choices,
    model_labels,
    overlay_choices,
    review_from_form,
)
from inspection.taxonomy import load_taxonomy


@pytest.mark.parametrize(("target", "expected"), [
    ("/ui/items/abc?flag=anomaly", "/ui/items/abc?flag=anomaly"),  # back where the operator was
    ("/ui/", "/ui/"),
    ("/ui/login", "/ui/"),  # never back to the sign-in page itself
    ("https://evil.example/ui/", "/ui/"),  # another site
    ("//evil.example/ui/", "/ui/"),  # protocol-relative: another site too
    ("/ui/\\evil.example", "/ui/"),  # some browsers read a backslash as a slash
    ("/v1/review-queue", "/ui/"),  # the JSON API is not a page
    ("", "/ui/"),
])
def test_safe_next(target: str, expected: str) -> None:
    assert safe_next(target, "/ui") == expected


@pytest.mark.parametrize(("args", "extra", "expected"), [
    ((None, None, None), {}, ""),
    (("anomaly", None, ""), {}, "?flag=anomaly"),
    ((None, "customer", "SKU 1&2"), {}, "?source=customer&sku=SKU+1%262"),  # escaped
    ((None, None, None), {"offset": 0}, "?offset=0"),  # 0 is a value, not "absent"
    (("damage_found", None, None), {"saved": "abc"}, "?flag=damage_found&saved=abc"),
])
def test_filter_query(args: tuple[Any, ...], extra: dict[str, Any], expected: str) -> None:
    assert filter_query(*args, **extra) == expected


def test_overlays_one_per_flagged_label_with_a_map() -> None:
    flags = [{"kind": "damage_found", "label": "crack"}, {"kind": "damage_found", "label": "scratch"},
             {"kind": "damage_found", "label": "crack"},  # a second photo: still one toggle
             {"kind": "accessory_missing", "label": "charger"},  # nothing visible, nothing to draw
             {"kind": "photo_unusable", "label": "blurred"},
             {"kind": "anomaly", "label": None}]
    assert [o.label for o in overlay_choices(flags)] == ["crack", "scratch", "anomaly"]
    # a defect a single-label head called has no map of its own: the anomaly map shows it
    called = [{"kind": "defect_found", "label": "broken_large"}, {"kind": "anomaly", "label": None}]
    assert [o.label for o in overlay_choices(called)] == ["anomaly"]


HEADS = [HeadChoice("condition", "single", ("A", "B", "C", "D"), frozenset({"D"}), "Condition"),
         HeadChoice("damage", "multi", ("scratch", "crack"), frozenset({"crack"}), "Damage")]


def test_confirm_keeps_the_recommended_disposition_and_no_labels() -> None:
    form = review_from_form({"decision": ["confirm"], "label_condition": ["B"], "note": ["  "]},
                            HEADS, "liquidate")
    assert (form.decision, form.labels, form.disposition, form.note) == ("confirm", {}, "liquidate", None)


def test_correct_sends_every_head_and_an_empty_multi_head_means_none() -> None:
    form = review_from_form({"decision": ["correct"], "label_condition": ["B"],
                             "disposition": ["open_box"], "note": ["looks fine"]}, HEADS, "liquidate")
    assert form.labels == {"condition": ["B"], "damage": []}
    assert (form.disposition, form.note) == ("open_box", "looks fine")


@pytest.mark.parametrize(("fields", "message"), [
    ({"decision": ["correct"]}, "choose exactly one condition label"),
    ({"decision": ["correct"], "label_condition": ["A", "B"]}, "choose exactly one condition label"),
    ({}, "choose confirm or correct"),
])
def test_review_form_refusals(fields: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        review_from_form(fields, HEADS, None)


def result(**item: Any) -> dict[str, Any]:
    base = {"condition": {"grade": "D"}, "damages": [{"label": "crack", "found": True},
                                                     {"label": "dent", "found": False}],
            "accessories_visible": ["cable"], "photos_used": [0, 1]}
    photos = [{"probabilities": {"defect": {"good": 0.3, "hole": 0.7}}},
              {"probabilities": {"defect": {"good": 0.9, "hole": 0.1}}}]
    return {"category": "phone", "item": {**base, **item}, "photos": photos}


def test_model_labels_start_the_form_from_the_models_answer() -> None:
    assert model_labels(result(), "condition", multi=False) == {"D"}
    assert model_labels(result(), "damage", multi=True) == {"crack"}
    assert model_labels(result(), "accessories", multi=True) == {"cable"}
    assert model_labels(result(), "defect", multi=False) == {"good"}  # best over usable photos
    assert model_labels(result(), "defect", multi=True) == {"good", "hole"}
    assert model_labels(result(condition={"grade": None}), "condition", multi=False) == set()


def test_a_review_prefills_the_form_over_the_model() -> None:
    choices = head_choices(result(), load_taxonomy(), {"labels": {"condition": ["B"]}})
    by_name = {choice.name: choice for choice in choices}
    assert by_name["condition"].selected == {"B"}
    assert by_name["damage"].selected == {"crack"}
    assert by_name["accessories"].expected == {"charger", "cable", "case", "manual"}  # phone kit


def test_dispositions_come_from_the_policy() -> None:
    names = dispositions(load_policy(), "liquidate")
    assert names[:3] == ["recycle", "liquidate", "refurbish"]
    assert {"open_box", "restock", "manual_review"} <= set(names)
    assert len(names) == len(set(names))
    assert dispositions(load_policy(), "send_back")[-1] == "send_back"  # a custom policy's answer
