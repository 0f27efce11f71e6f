"""What the operator page shows, computed from a stored inspection (schemas.InspectionPublic as
a dict): heatmap choices, photo captions, the correction form's choices, and the way back from a
submitted form to a review. Pure functions: no request, no database, so they test as tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from inspection.decide import Policy
from inspection.service.validation import allowed_dispositions
from inspection.taxonomy import Taxonomy

FLAG_KINDS = ("damage_found", "defect_found", "accessory_missing", "item_mismatch", "anomaly",
              "low_confidence", "photo_unusable", "changed_since_request", "new_damage_since_request")
SOURCES = ("station", "customer")
LEGENDS = {"condition": "Condition grade", "damage": "Damage (tick every one you see)",
           "accessories": "Accessories visible"}
MULTI_VISIBLE = 0.5  # heads the service gives no item-level answer for: a label counts from here


def human(text: object) -> str:
    """`damage_found` -> `damage found`: codes read as words on the page."""
    return str(text).replace("_", " ")


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * value:.0f}%"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def filter_query(flag: str | None, source: str | None, sku: str | None, **extra: object) -> str:
    """The queue filters as a query string ('' when none), carried from page to page so `next`
    stays inside the operator's filtered queue."""
    pairs = {"flag": flag, "source": source, "sku": sku, **extra}
    kept = {key: value for key, value in pairs.items() if value not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


@dataclass(frozen=True)
class Overlay:
    label: str  # what the heatmap endpoint takes: a damage label or `anomaly`
    title: str
    url: str = ""


def overlay_choices(flags: Sequence[Mapping[str, Any]]) -> list[Overlay]:
    """One heatmap toggle per flagged label that has a map: found damages and anomalies. A
    defect a single-label head called has no map of its own (class activation maps are exported
    for multi-label heads only); the anomaly map, where the photo has one, shows where it is."""
    labels: list[str] = []
    for flag in flags:
        label = flag.get("label") if flag["kind"] == "damage_found" else (
            "anomaly" if flag["kind"] in ("anomaly", "defect_found") else None)
        if label and label not in labels:
            labels.append(label)
    return [Overlay(label, human(label)) for label in labels]


def first_overlay(overlays: Sequence[Overlay], result: Mapping[str, Any]) -> str:
    """The heatmap shown at first: against a SKU's catalog photos, the anomaly map (the region
    unlike the catalog is the point of the side-by-side view); else the first flagged label."""
    labels = [overlay.label for overlay in overlays]
    if "anomaly" in labels and (result.get("comparison") or {}).get("basis") == "sku":
        return "anomaly"
    return labels[0] if labels else ""


@dataclass(frozen=True)
class PhotoView:
    number: int  # 1-based, as operators count
    url: str
    filename: str | None
    width: int
    height: int
    grade: str | None
    grade_confidence: float | None
    problems: list[str]
    raised: list[str]
    overlays: list[Overlay]
    reference: ReferenceView | None = None


@dataclass(frozen=True)
class ReferenceView:
    """The SKU's catalog photo closest to a returned photo, shown beside it."""

    url: str
    number: int  # 1-based
    similarity: float | None
    threshold: float | None


def reference_view(result: Mapping[str, Any], photo: Mapping[str, Any],
                   catalog_url: str | None) -> ReferenceView | None:
    comparison = result.get("comparison") or {}
    index, sha256 = photo.get("closest_reference"), photo.get("closest_reference_sha256")
    if catalog_url is None or comparison.get("basis") != "sku" or index is None or not sha256:
        return None
    url = f"{catalog_url}/{quote(str(sha256), safe='')}"  # the very photo compared, by content
    return ReferenceView(url, index + 1, photo.get("item_similarity"),
                         comparison.get("similarity_threshold"))


def photo_views(result: Mapping[str, Any], base_url: str, overlays: Sequence[Overlay],
                catalog_url: str | None = None) -> list[PhotoView]:
    views = []
    for photo in result["photos"]:
        index = photo["index"]
        url = f"{base_url}/photos/{index}"
        raised = [human(f["kind"]) + (f": {human(f['label'])}" if f.get("label") else "")
                  for f in result["flags"] if f.get("photo") == index]
        condition = photo.get("condition") or {}
        views.append(PhotoView(
            number=index + 1, url=url, filename=photo.get("filename"), width=photo["width"],
            height=photo["height"], grade=condition.get("grade"),
            grade_confidence=condition.get("confidence"),
            problems=[check["reason"] for check in photo.get("quality", []) if not check["ok"]],
            raised=raised,
            overlays=[Overlay(o.label, o.title, f"{url}/heatmap?{urlencode({'label': o.label})}")
                      for o in overlays if o.label != "anomaly" or photo.get("anomaly_score") is not None],
            reference=reference_view(result, photo, catalog_url),
        ))
    return views


@dataclass(frozen=True)
class HeadChoice:
    name: str
    type: str  # single | multi
    labels: tuple[str, ...]
    selected: frozenset[str]
    legend: str
    expected: frozenset[str] = field(default_factory=frozenset)  # the category's kit


def model_labels(result: Mapping[str, Any], head: str, multi: bool) -> set[str]:
    """The model's answer for one head, as the correction form starts from it."""
    item = result["item"]
    if head == "condition":
        return {item["condition"]["grade"]} if item["condition"]["grade"] else set()
    if head == "damage":
        return {damage["label"] for damage in item["damages"] if damage["found"]}
    if head == "accessories":
        return set(item["accessories_visible"])
    used = [result["photos"][i]["probabilities"].get(head, {}) for i in item.get("photos_used", [])]
    scores: dict[str, float] = {}
    for probabilities in used:
        for label, value in probabilities.items():
            scores[label] = max(scores.get(label, 0.0), value)
    if not scores:
        return set()
    if multi:
        return {label for label, value in scores.items() if value >= MULTI_VISIBLE}
    return {max(scores, key=scores.__getitem__)}


def head_choices(result: Mapping[str, Any], taxonomy: Taxonomy,
                 review: Mapping[str, Any] | None) -> list[HeadChoice]:
    """Every head of the taxonomy, pre-filled with the latest review's labels or the model's."""
    reviewed = (review or {}).get("labels") or {}
    kit = frozenset(taxonomy.kits.get(result.get("category") or "", ()))
    choices = []
    for head in taxonomy.heads:
        multi = head.type == "multi"
        selected = set(reviewed[head.name]) if head.name in reviewed else model_labels(result, head.name,
                                                                                      multi)
        choices.append(HeadChoice(head.name, head.type, head.labels, frozenset(selected),
                                  LEGENDS.get(head.name, human(head.name)),
                                  kit if head.name == "accessories" else frozenset()))
    return choices


def dispositions(policy: Policy, recommended: str | None) -> list[str]:
    """The dispositions the policy's rules can give, in rule order, plus the recommended one."""
    return allowed_dispositions(policy, recommended)


@dataclass(frozen=True)
class ReviewForm:
    decision: str
    labels: dict[str, list[str]]
    disposition: str | None
    note: str | None


def review_from_form(form: Mapping[str, Iterable[str]], heads: Sequence[HeadChoice],
                     recommended: str | None) -> ReviewForm:
    """The submitted form -> a review. `confirm` keeps the model's labels and disposition;
    `correct` sends every head (an unticked box means the label is absent). Raises ValueError
    with a message an operator can act on."""
    decision = _one(form, "decision")
    if decision not in ("confirm", "correct"):
        raise ValueError(f"choose confirm or correct, got {decision!r}")
    note = (_one(form, "note") or "").strip() or None
    if decision == "confirm":
        return ReviewForm("confirm", {}, recommended, note)
    labels: dict[str, list[str]] = {}
    for head in heads:
        values = list(dict.fromkeys(form.get(f"label_{head.name}", [])))
        if head.type == "single" and len(values) != 1:
            raise ValueError(f"choose exactly one {human(head.name)} label")
        labels[head.name] = values
    return ReviewForm("correct", labels, _one(form, "disposition") or recommended, note)


def _one(form: Mapping[str, Iterable[str]], key: str) -> str | None:
    values = list(form.get(key, []))
    return values[-1] if values else None
