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

from inspection.decide import (
    Flag,
    ItemAssessment,
    Policy,
    aggregate,
    assessment_flags,
    decide,
    threshold,
)
from inspection.engine import PhotoPrediction
from inspection.images import DEFAULT_MAX_FULL_PIXELS, DEFAULT_MAX_PIXELS, DecodedPhoto, decode_photo
from inspection.loaded_model import LoadedModel
from inspection.quality import PhotoQuality, assess_quality
from inspection.taxonomy import Taxonomy

MAP_DECIMALS = 4  # heatmaps are stored with the inspection; 4 decimals keep them small


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
                 max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS) -> ItemScore:
    started = time.perf_counter()
    decoded = decode_uploads(uploads, model.engine.input_size, max_pixels, max_full_pixels)
    decoded_at = time.perf_counter()
    predictions = model.engine.predict([photo.rgb for photo in decoded])
    anomaly = _anomaly(model, category, predictions)
    inferred_at = time.perf_counter()
    qualities = [assess_quality(p.rgb, p.original_size, policy.quality) for p in decoded]
    if not any(quality.usable for quality in qualities):
        timings = {"decode_ms": _ms(started, decoded_at), "inference_ms": _ms(decoded_at, inferred_at)}
        return _retake(model, uploads, decoded, qualities, predictions, category, timings, started)
    usable = [i for i, quality in enumerate(qualities) if quality.usable]
    card_thresholds = model.card.thresholds
    item = aggregate([predictions[i].probabilities for i in usable], model.engine.taxonomy,
                     category, card_thresholds, policy)
    similarities = _similarities(model, category, predictions)
    flags = [*_locate(assessment_flags(item, category, card_thresholds, policy), predictions, usable),
             *_quality_flags(qualities),
             *_mismatch_flags(similarities, category, card_thresholds, policy),
             *_anomaly_flags(anomaly)]
    decision = decide(item, flags, policy)
    timings = {"decode_ms": _ms(started, decoded_at), "inference_ms": _ms(decoded_at, inferred_at),
               "total_ms": _ms(started, time.perf_counter())}
    photos = [_photo_result(i, uploads[i], decoded[i], qualities[i], predictions[i],
                            similarities[i] if similarities else None,
                            anomaly[0][i] if anomaly else None)
              for i in range(len(decoded))]
    result = {
        "category": category,
        "photos": photos,
        "item": _item_dict(item, usable),
        "flags": [flag_dict(flag) for flag in flags],
        "skipped_checks": _skipped(model, category, similarities is not None, anomaly is not None),
        "decision": {"disposition": decision.disposition, "refund": decision.refund,
                     "rule": decision.rule, "reasons": list(decision.reasons)},
        "model": {"name": model.card.name, "version": model.card.version,
                  "model_id": model.card.model_id},
        "timings": timings,
    }
    maps = [_stored_maps(p, model.engine.taxonomy, anomaly[1][i] if anomaly else None)
            for i, p in enumerate(predictions)]
    return ItemScore(result=result, flags=flags, photo_maps=maps, decoded=decoded)


RETAKE = "retake_photos"  # not a disposition: nothing is decided about the item yet


def _retake(model: LoadedModel, uploads: Sequence[Upload], decoded: list[DecodedPhoto],
            qualities: list[PhotoQuality], predictions: Sequence[PhotoPrediction],
            category: str | None, timings: dict[str, float], started: float) -> ItemScore:
    """No usable photo: the only answer is "retake the photos" and why. No grade, damage,
    missing accessory or disposition is derived from what the model saw in a black frame or a
    1-pixel image (the per-photo probabilities stay, for the record)."""
    flags = _quality_flags(qualities)
    photos = []
    for i in range(len(decoded)):
        photo = _photo_result(i, uploads[i], decoded[i], qualities[i], predictions[i], None, None)
        photos.append({**photo, "condition": None, "damages": {}, "accessories": {}})
    elapsed = _ms(started, time.perf_counter())
    result: dict[str, Any] = {
        "category": category, "photos": photos,
        "item": {"condition": {"grade": None, "confidence": 0.0, "probabilities": {}},
                 "damages": [], "accessories_visible": [], "missing_accessories": [],
                 "photos_used": []},
        "flags": [flag_dict(flag) for flag in flags],
        "skipped_checks": [{"kind": kind, "reason": "no usable photo"}
                           for kind in ("condition", "damage", "accessories", "item_mismatch",
                                        "anomaly")],
        "decision": {"disposition": RETAKE, "refund": "hold_for_review", "rule": "no_usable_photo",
                     "reasons": [flag.reason for flag in flags]},
        "model": {"name": model.card.name, "version": model.card.version,
                  "model_id": model.card.model_id},
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
            "missing_accessories": item.missing_accessories, "photos_used": usable}


def _skipped(model: LoadedModel, category: str | None, mismatch_ran: bool,
             anomaly_ran: bool) -> list[dict[str, str]]:
    """Checks that could not run, and why: a check never passes silently by not running."""
    skipped = [{"kind": kind, "reason": why} for kind, why in model.unavailable.items()]
    for kind, ran, what in (("item_mismatch", mismatch_ran, "reference photos"),
                            ("anomaly", anomaly_ran, "anomaly detector")):
        if not ran and kind not in model.unavailable:
            skipped.append({"kind": kind, "reason": f"no {what} for category {category!r}"})
    return skipped


def flag_dict(flag: Flag) -> dict[str, Any]:
    return {"kind": flag.kind, "reason": flag.reason, "score": flag.score,
            "threshold": flag.threshold, "label": flag.label, "photo": flag.photo}


def _locate(flags: list[Flag], predictions: Sequence[PhotoPrediction],
            usable: Sequence[int]) -> list[Flag]:
    """Point each damage flag at the usable photo that scored it highest (its heatmap)."""
    def best(label: str) -> int:
        return max(usable, key=lambda i: predictions[i].probabilities["damage"].get(label, 0.0))
    return [replace(flag, photo=best(flag.label)) if flag.kind == "damage_found" and flag.label
            else flag for flag in flags]


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 2)


def _photo_result(index: int, upload: Upload, photo: DecodedPhoto, quality: PhotoQuality,
                  prediction: PhotoPrediction, similarity: float | None,
                  anomaly_score: float | None) -> dict[str, Any]:
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
    }


def _quality_flags(qualities: Sequence[PhotoQuality]) -> list[Flag]:
    return [Flag("photo_unusable", f"photo {index + 1}: {check.reason}", check.value,
                 check.threshold, label=check.name, photo=index)
            for index, quality in enumerate(qualities) for check in quality.problems]


def _similarities(model: LoadedModel, category: str | None,
                  predictions: Sequence[PhotoPrediction]) -> list[float] | None:
    """Each photo's cosine similarity to the nearest reference of the declared category."""
    if not category or not model.references.has(category):
        return None
    embeddings = [p.embedding for p in predictions]
    if any(e is None for e in embeddings):
        return None
    return [model.references.similarity(category, e) for e in embeddings if e is not None]


def _mismatch_flags(similarities: list[float] | None, category: str | None,
                    card_thresholds: dict[str, Any], policy: Policy) -> list[Flag]:
    limit = threshold(card_thresholds, policy, "item_mismatch", category)
    if similarities is None or limit is None:
        return []
    worst = int(np.argmin(similarities))
    if similarities[worst] >= limit:
        return []
    reason = (f"photo {worst + 1} does not look like a {category} (similarity "
              f"{similarities[worst]:.2f} to the nearest reference)")
    return [Flag("item_mismatch", reason, similarities[worst], limit, photo=worst)]


def _anomaly(model: LoadedModel, category: str | None, predictions: Sequence[PhotoPrediction]
             ) -> tuple[list[float], list[np.ndarray | None], float] | None:
    """(scores, maps, threshold) from the bundle's detector for this category, if any."""
    features = [p.patch_features for p in predictions]
    if model.anomaly is None or not category or any(f is None for f in features):
        return None
    outcome = model.anomaly.score(category, np.stack(features))  # type: ignore[arg-type]
    if outcome is None:
        return None
    return [float(s) for s in outcome.scores], list(outcome.maps), float(outcome.threshold)


def _anomaly_flags(anomaly: tuple[list[float], list[np.ndarray | None], float] | None) -> list[Flag]:
    if anomaly is None:
        return []
    scores, _, limit = anomaly
    return [Flag("anomaly", f"photo {i + 1} is unlike the good photos of this category "
                 f"(anomaly score {score:.2f})", score, limit, photo=i)
            for i, score in enumerate(scores) if score >= limit]


def _stored_maps(prediction: PhotoPrediction, taxonomy: Taxonomy,
                 anomaly_map: np.ndarray | None) -> dict[str, Any]:
    """head -> label -> map, rounded: what the heatmap endpoint draws later."""
    cams = {head: {label: np.round(np.asarray(cam[i], dtype=np.float64), MAP_DECIMALS).tolist()
                   for i, label in enumerate(taxonomy.head(head).labels)}
            for head, cam in prediction.cams.items()}
    stored: dict[str, Any] = {"probabilities": prediction.probabilities, "cams": cams}
    if anomaly_map is not None:
        stored["anomaly_map"] = np.round(np.asarray(anomaly_map, dtype=np.float64),
                                         MAP_DECIMALS).tolist()
    return stored
