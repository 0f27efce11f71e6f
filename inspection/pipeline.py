"""Photos of one returned item -> the full answer: per-photo predictions and quality, the item's
assessment, flags with reasons, a decision, timings.

The API (`POST /v1/inspections`) and the offline scorer (`returns-inspect score`) both call
`inspect_item`, so a backlog scored offline gets exactly the answer the service would give.
No FastAPI here: errors are `InputError`s naming the photo.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inspection.case import UNMATCHED_MAP, CaseCheck, card_sha256, policy_sha256
from inspection.catalog import SkuComparison, SkuEntry, views_of
from inspection.decide import (
    Flag,
    ItemAssessment,
    Likeness,
    Policy,
    aggregate,
    assessment_flags,
    decide,
    likeness_flags,
    quality_flags,
    threshold,
)
from inspection.engine import PhotoPrediction
from inspection.images import DEFAULT_MAX_FULL_PIXELS, DEFAULT_MAX_PIXELS, DecodedPhoto, decode_photo
from inspection.loaded_model import LoadedModel
from inspection.quality import PhotoQuality, assess_quality
from inspection.second_opinion import apply_opinion
from inspection.stored_maps import pack_map
from inspection.taxonomy import Taxonomy


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None = None


@dataclass
class ItemScore:
    result: dict[str, Any]  # the JSON answer (schemas.InspectionResult), without id/metadata
    flags: list[Flag]
    photo_maps: list[dict[str, Any]]  # per photo: probabilities + CAMs + anomaly map, stored
    decoded: list[DecodedPhoto]


def photo_where(index: int, filename: str | None) -> str:
    return f"photos[{index}]" + (f" ({filename})" if filename else "")


def decode_uploads(uploads: Sequence[Upload], min_side: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                   max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS) -> list[DecodedPhoto]:
    return [decode_photo(upload.data, min_side=min_side, max_pixels=max_pixels,
                         where=photo_where(index, upload.filename), max_full_pixels=max_full_pixels)
            for index, upload in enumerate(uploads)]


def inspect_item(model: LoadedModel, policy: Policy, uploads: Sequence[Upload],
                 category: str | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 sku: SkuEntry | None = None, case: CaseCheck | None = None,
                 max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS) -> ItemScore:
    """Score one item. With a `sku` whose reference was built by this model, the photos are
    compared with that SKU's reference photos instead of the category's. `case` compares them
    with the return's other side (inspection.case); its flags join the others before the
    decision."""
    started = time.perf_counter()
    category = category or (sku.category if sku else None)
    decoded = decode_uploads(uploads, model.engine.input_size, max_pixels, max_full_pixels)
    decoded_at = time.perf_counter()
    predictions = model.engine.predict([photo.rgb for photo in decoded])
    inferred_at = time.perf_counter()
    catalog = _sku_comparison(sku, predictions)
    anomaly = None if catalog else _anomaly(model, category, predictions,
                                            [photo.rgb for photo in decoded])
    predictions, opinions = _second_opinion(model, category, predictions, anomaly)
    anomaly_at = time.perf_counter()
    qualities = [assess_quality(p.rgb, p.original_size, policy.quality) for p in decoded]
    if not any(quality.usable for quality in qualities):
        timings = {"decode_ms": _ms(started, decoded_at), "inference_ms": _ms(decoded_at, inferred_at),
                   "anomaly_ms": _ms(inferred_at, anomaly_at)}
        return _retake(model, policy, uploads, decoded, qualities, predictions, category, sku,
                       timings, started)
    usable = [i for i, quality in enumerate(qualities) if quality.usable]
    card_thresholds = model.card.thresholds
    item = aggregate([predictions[i].probabilities for i in usable], model.engine.taxonomy,
                     category, card_thresholds, policy, kit=sku.accessory_kit if sku else None)
    similarities = catalog.similarities if catalog else _similarities(model, category, predictions)
    likeness = _likeness(sku, catalog, category, similarities, anomaly, card_thresholds, policy)
    compared = case(predictions) if case is not None else None
    flags = [*_locate(assessment_flags(item, category, card_thresholds, policy), predictions, usable),
             *quality_flags(qualities), *(likeness_flags(likeness) if likeness else []),
             *(compared.flags if compared else [])]
    decision = decide(item, flags, policy)
    timings = {"decode_ms": _ms(started, decoded_at), "inference_ms": _ms(decoded_at, inferred_at),
               "anomaly_ms": _ms(inferred_at, anomaly_at), "total_ms": _ms(started, time.perf_counter())}
    scores = catalog.anomaly_scores if catalog else (anomaly[0] if anomaly else None)
    maps = catalog.anomaly_maps if catalog else (anomaly[1] if anomaly else None)
    photos = [_photo_result(i, uploads[i], decoded[i], qualities[i], predictions[i],
                            similarities[i] if similarities else None,
                            scores[i] if scores else None,
                            catalog.closest[i] if catalog else None, sku,
                            opinions[i] if opinions else None)
              for i in range(len(decoded))]
    result = {
        "category": category,
        "photos": photos,
        "item": _item_dict(item, usable),
        "flags": [flag_dict(flag) for flag in flags],
        "skipped_checks": [*_skipped(model, category, similarities is not None, scores is not None,
                                     sku),
                           *(compared.skipped if compared else [])],
        "comparison": _comparison_dict(sku, catalog, likeness),
        "decision": {"disposition": decision.disposition, "refund": decision.refund,
                     "rule": decision.rule, "reasons": list(decision.reasons)},
        "model": {"name": model.card.name, "version": model.card.version,
                  "model_id": model.card.model_id, "card_sha256": card_sha256(model.card)},
        "policy": {"sha256": policy_sha256(policy)},
        "case_comparison": compared.comparison if compared else None,
        "timings": timings,
    }
    stored = [_stored_maps(p, model.engine.taxonomy, maps[i] if maps else None)
              for i, p in enumerate(predictions)]
    for index, unmatched in (compared.maps if compared else {}).items():
        stored[index][UNMATCHED_MAP] = unmatched
    return ItemScore(result=result, flags=flags, photo_maps=stored, decoded=decoded)


def _sku_comparison(sku: SkuEntry | None, predictions: Sequence[PhotoPrediction]
                    ) -> SkuComparison | None:
    if sku is None or sku.reference is None:
        return None
    embeddings = [p.embedding for p in predictions]
    features = [p.patch_features for p in predictions]
    if any(e is None for e in embeddings) or any(f is None for f in features):
        return None
    return sku.reference.compare(views_of(embeddings, features))  # type: ignore[arg-type]


def _likeness(sku: SkuEntry | None, catalog: SkuComparison | None, category: str | None,
              similarities: list[float] | None,
              anomaly: tuple[list[float], list[np.ndarray | None], float] | None,
              card_thresholds: dict[str, Any], policy: Policy) -> Likeness | None:
    """What the photos were compared with: the SKU's references replace the category's."""
    if sku is not None and catalog is not None and sku.reference is not None:
        fitted = sku.reference.thresholds
        return Likeness("sku", f"SKU {sku.sku}", catalog.similarities,
                        threshold(card_thresholds, policy, "item_mismatch", fitted=fitted.similarity),
                        catalog.anomaly_scores,
                        threshold(card_thresholds, policy, "anomaly", fitted=fitted.anomaly),
                        closest=catalog.closest, label=sku.sku)
    if similarities is None and anomaly is None:
        return None
    return Likeness("category", f"a {category}", similarities,
                    threshold(card_thresholds, policy, "item_mismatch", category),
                    anomaly[0] if anomaly else None,
                    threshold(card_thresholds, policy, "anomaly", category,
                              fitted=anomaly[2] if anomaly else None))


def _comparison_dict(sku: SkuEntry | None, catalog: SkuComparison | None,
                     likeness: Likeness | None) -> dict[str, Any]:
    """Which comparison ran, and for a SKU the reference photo closest to the least alike photo."""
    basis = likeness.basis if likeness else "none"
    answer: dict[str, Any] = {"basis": basis, "sku": sku.sku if sku else None,
                              "note": sku.note if sku and basis != "sku" else "",
                              "closest_reference": None,
                              "similarity_threshold": likeness.similarity_threshold if likeness else None,
                              "anomaly_threshold": likeness.anomaly_threshold if likeness else None}
    if catalog is not None:
        photo = int(np.argmin(catalog.similarities))
        answer["closest_reference"] = {"photo": photo, "reference": catalog.closest[photo],
                                       "similarity": catalog.similarities[photo],
                                       "sha256": _reference_sha(sku, catalog.closest[photo])}
    return answer


RETAKE = "retake_photos"  # not a disposition: nothing is decided about the item yet


def _retake(model: LoadedModel, policy: Policy, uploads: Sequence[Upload], decoded: list[DecodedPhoto],
            qualities: list[PhotoQuality], predictions: Sequence[PhotoPrediction],
            category: str | None, sku: SkuEntry | None, timings: dict[str, float],
            started: float) -> ItemScore:
    """No usable photo: the only answer is "retake the photos" and why. No grade, damage,
    missing accessory or disposition is derived from what the model saw in a black frame or a
    1-pixel image (the per-photo probabilities stay, for the record)."""
    flags = quality_flags(qualities)
    photos = []
    for i in range(len(decoded)):
        photo = _photo_result(i, uploads[i], decoded[i], qualities[i], predictions[i], None, None,
                              None, sku)
        photos.append({**photo, "condition": None, "damages": {}, "accessories": {}})
    elapsed = _ms(started, time.perf_counter())
    result: dict[str, Any] = {
        "category": category, "photos": photos,
        "item": {"condition": {"grade": None, "confidence": 0.0, "probabilities": {}},
                 "damages": [], "accessories_visible": [], "missing_accessories": [],
                 "photos_used": [], "heads": {}},
        "flags": [flag_dict(flag) for flag in flags],
        "skipped_checks": [{"kind": kind, "reason": "no usable photo"}
                           for kind in ("condition", "damage", "accessories", "item_mismatch",
                                        "anomaly")],
        "comparison": _comparison_dict(sku, None, None),
        "decision": {"disposition": RETAKE, "refund": "hold_for_review", "rule": "no_usable_photo",
                     "reasons": [flag.reason for flag in flags]},
        "model": {"name": model.card.name, "version": model.card.version,
                  "model_id": model.card.model_id, "card_sha256": card_sha256(model.card)},
        "policy": {"sha256": policy_sha256(policy)},
        "case_comparison": None,
        "timings": {**timings, "total_ms": elapsed},
    }
    maps = [_stored_maps(p, model.engine.taxonomy, None) for p in predictions]
    return ItemScore(result=result, flags=flags, photo_maps=maps, decoded=decoded)


def _item_dict(item: ItemAssessment, usable: list[int]) -> dict[str, Any]:
    damages = [{"label": label, "score": score, "threshold": item.thresholds["damage"][label],
                "found": label in item.found_damages} for label, score in item.damages.items()]
    return {"condition": {"grade": item.condition, "confidence": item.condition_confidence,
                          "probabilities": item.condition_probabilities},
            "damages": damages, "accessories_visible": sorted(item.visible_accessories),
            "missing_accessories": item.missing_accessories, "photos_used": usable,
            "heads": {name: {"label": call.label, "confidence": call.confidence,
                             "probabilities": call.probabilities, "photo": usable[call.photo]}
                      for name, call in item.other_heads.items()}}


def _skipped(model: LoadedModel, category: str | None, mismatch_ran: bool,
             anomaly_ran: bool, sku: SkuEntry | None) -> list[dict[str, str]]:
    """Checks that could not run, and why: a check never passes silently by not running."""
    skipped = []
    for kind, ran, what in (("item_mismatch", mismatch_ran, "reference photos"),
                            ("anomaly", anomaly_ran, "anomaly detector")):
        if not ran:
            why = model.unavailable.get(kind) or f"no {what} for category {category!r}"
            skipped.append({"kind": kind, "reason": why})
    if sku is not None and sku.registered and sku.reference is None:
        skipped.append({"kind": "catalog", "reason": sku.note})
    return skipped


def flag_dict(flag: Flag) -> dict[str, Any]:
    return {"kind": flag.kind, "reason": flag.reason, "score": flag.score,
            "threshold": flag.threshold, "label": flag.label, "photo": flag.photo}


def _locate(flags: list[Flag], predictions: Sequence[PhotoPrediction],
            usable: Sequence[int]) -> list[Flag]:
    """Point each damage flag at the usable photo that scored it highest (its heatmap), and each
    defect flag from its position among the usable photos to the photo's own index."""
    def best(label: str) -> int:
        return max(usable, key=lambda i: predictions[i].probabilities["damage"].get(label, 0.0))

    def located(flag: Flag) -> Flag:
        if flag.kind == "damage_found" and flag.label:
            return replace(flag, photo=best(flag.label))
        if flag.kind == "defect_found" and flag.photo is not None:
            return replace(flag, photo=usable[flag.photo])
        return flag
    return [located(flag) for flag in flags]


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 2)


def _photo_result(index: int, upload: Upload, photo: DecodedPhoto, quality: PhotoQuality,
                  prediction: PhotoPrediction, similarity: float | None,
                  anomaly_score: float | None, closest: int | None,
                  sku: SkuEntry | None, defect_probability: float | None = None) -> dict[str, Any]:
    probabilities = prediction.probabilities
    condition = None
    if "condition" in probabilities:
        grade, confidence = prediction.top("condition")
        condition = {"grade": grade, "confidence": confidence, "probabilities": probabilities["condition"]}
    return {
        "index": index, "filename": upload.filename, "format": photo.format,
        "width": photo.original_size[0], "height": photo.original_size[1],
        "usable": quality.usable, "quality": [check.to_dict() for check in quality.checks],
        "condition": condition,
        "damages": probabilities.get("damage", {}),
        "accessories": probabilities.get("accessories", {}),
        "probabilities": probabilities,
        "item_similarity": similarity, "anomaly_score": anomaly_score,
        "anomaly_defect_probability": defect_probability,
        "closest_reference": closest,
        "closest_reference_sha256": _reference_sha(sku, closest),
    }


def _reference_sha(sku: SkuEntry | None, index: int | None) -> str | None:
    """The reference photo's sha256: evidence that outlives a replaced set of photos."""
    if sku is None or index is None or index >= len(sku.photo_sha256):
        return None
    return sku.photo_sha256[index]


def _similarities(model: LoadedModel, category: str | None,
                  predictions: Sequence[PhotoPrediction]) -> list[float] | None:
    """Each photo's cosine similarity to the nearest reference of the declared category."""
    if not category or not model.references.has(category):
        return None
    embeddings = [p.embedding for p in predictions]
    if any(e is None for e in embeddings):
        return None
    return [model.references.similarity(category, e) for e in embeddings if e is not None]


def _anomaly(model: LoadedModel, category: str | None, predictions: Sequence[PhotoPrediction],
             photos: Sequence[np.ndarray]
             ) -> tuple[list[float], list[np.ndarray | None], float] | None:
    """(scores, maps, threshold) from the bundle's detector for this category, if any."""
    features = [p.patch_features for p in predictions]
    if model.anomaly is None or not category or any(f is None for f in features):
        return None
    outcome = model.anomaly.score_photos(category, photos, np.stack(features),  # type: ignore[arg-type]
                                         model.engine.patch_features)
    if outcome is None:
        return None
    return [float(s) for s in outcome.scores], list(outcome.maps), float(outcome.threshold)


def _second_opinion(model: LoadedModel, category: str | None,
                    predictions: Sequence[PhotoPrediction],
                    anomaly: tuple[list[float], list[np.ndarray | None], float] | None
                    ) -> tuple[Sequence[PhotoPrediction], list[float] | None]:
    """The predictions with the category's anomaly score weighed into the heads that name a
    `no_defect` label (inspection.second_opinion), and each photo's P(defect) from the score;
    unchanged where the bundle has no opinion for this category."""
    opinion = model.anomaly.second_opinion(category) if model.anomaly and category else None
    if opinion is None or anomaly is None:
        return predictions, None
    weighed = [apply_opinion(opinion, model.engine.taxonomy, p.probabilities, score)
               for p, score in zip(predictions, anomaly[0], strict=True)]
    return ([replace(p, probabilities=probabilities)
             for p, (probabilities, _) in zip(predictions, weighed, strict=True)],
            [q for _, q in weighed])


def _stored_maps(prediction: PhotoPrediction, taxonomy: Taxonomy,
                 anomaly_map: np.ndarray | None) -> dict[str, Any]:
    """head -> label -> map, packed as uint8 (inspection.stored_maps): what the heatmap
    endpoint draws later."""
    cams = {head: {label: pack_map(cam[i]) for i, label in enumerate(taxonomy.head(head).labels)}
            for head, cam in prediction.cams.items()}
    stored: dict[str, Any] = {"probabilities": prediction.probabilities, "cams": cams}
    if anomaly_map is not None:
        stored["anomaly_map"] = pack_map(anomaly_map)
    return stored
