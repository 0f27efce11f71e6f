"""The evidence packet: one self-contained HTML document per inspection or per return (photos
and heatmaps embedded as data URIs, no external resource) that shows why a refund was held or
refused — the photos and their sha256, the heatmaps, every flag with its score, threshold and
how the threshold was chosen, the model and policy versions, the timestamps and the operator's
review. Rendered from stored rows only, so the same inspection gives the same bytes every
time; the one exception is the line that says when the packet was generated (`GENERATED_ID`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from inspection.case import UNMATCHED_MAP, card_sha256
from inspection.case_compare import CHANGED, NEW_DAMAGE
from inspection.decide import Policy
from inspection.errors import InputError
from inspection.images import decode_photo
from inspection.loaded_model import LoadedModel
from inspection.service import catalog_store, crud
from inspection.service.case_view import case_comparison, timeline
from inspection.service.heatmap import ANOMALY, fit_display, heat_over, overlay
from inspection.service.models import Inspection, Photo
from inspection.service.routes.inspections import heat_values
from inspection.service.storage import PhotoStore
from inspection.threshold_origin import threshold_origin

GENERATED_ID = "generated"  # the <p id=...> whose text is the only non-reproducible line
EMBED_SIDE = 480  # px, longest side of an embedded photo: legible, keeps a packet ~100 kB/photo
JPEG_QUALITY = 85
TEMPLATES = Path(__file__).parent / "templates"
environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                          keep_trailing_newline=True)


@dataclass(frozen=True)
class Heatmap:
    label: str  # as the heatmap endpoint takes it: a damage label, `anomaly` or `unmatched`
    title: str
    data_uri: str


@dataclass
class PhotoEvidence:
    inspection_id: str
    number: int  # 1-based
    source: str
    filename: str | None
    sha256: str
    size_bytes: int
    stored_at: datetime
    status: str  # verified | purged | altered | unreadable
    data_uri: str | None = None
    heatmaps: list[Heatmap] = field(default_factory=list)


@dataclass(frozen=True)
class FlagEvidence:
    kind: str
    label: str | None
    reason: str
    score: float
    threshold: float
    photo: int | None  # 1-based
    origin: str


@dataclass
class InspectionEvidence:
    row: Inspection
    result: dict[str, Any]
    flags: list[FlagEvidence]
    photos: list[PhotoEvidence]
    reviews: list[dict[str, Any]]
    provenance_note: str
    catalog: list[dict[str, Any]]

    @property
    def created_at(self) -> str:
        return crud.as_utc(self.row.created_at).isoformat()


def jpeg_uri(rgb: np.ndarray) -> str:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV only fails on an empty array
        raise ValueError(f"cannot encode a {rgb.shape} image as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.tobytes()).decode()


def heat_labels(row: Inspection, photo: Photo,
                comparison: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(heatmap label, title) for every flag raised on this photo, and for either photo of a
    flagged new-damage pair (the label's map on both: there at the dock, absent at home)."""
    labels: list[tuple[str, str]] = []
    for flag in row.result.get("flags", []):
        if flag.get("photo") != photo.index:
            continue
        if flag["kind"] == "damage_found" and flag.get("label"):
            labels.append((flag["label"], f"{flag['label']} (damage map)"))
        elif flag["kind"] == "anomaly":
            labels.append((ANOMALY, "anomaly map"))
        elif flag["kind"] == CHANGED:
            labels.append(("unmatched", "patches the customer's photos never showed"))
    for check in (comparison or {}).get("checks", []):
        in_pair = any((check[side]["inspection_id"], check[side]["photo"]) == (row.id, photo.index)
                      for side in ("station", "customer"))
        if check["kind"] == NEW_DAMAGE and check["flagged"] and in_pair:
            labels.append((check["label"], f"{check['label']} (damage map)"))
    return list(dict.fromkeys(labels))


def photo_evidence(row: Inspection, photo: Photo, store: PhotoStore,
                   comparison: dict[str, Any] | None, peaks: dict[str, float]) -> PhotoEvidence:
    """`peaks`: label -> top of the colour scale shared by the packet's photos (a new-damage pair
    is drawn on one scale, so the customer's photo does not glow by self-normalisation)."""
    evidence = PhotoEvidence(row.id, photo.index + 1, row.source, photo.filename, photo.sha256,
                             photo.size_bytes, crud.as_utc(photo.created_at), "purged")
    try:
        data = store.read(photo.path)
    except (OSError, ValueError):
        return evidence  # retention removed the file: the hash is what remains
    if hashlib.sha256(data).hexdigest() != photo.sha256:
        evidence.status = "altered"
        return evidence
    try:
        rgb = decode_photo(data, min_side=EMBED_SIDE, where=f"photo {photo.index + 1}").rgb
    except InputError:
        evidence.status = "unreadable"
        return evidence
    scale = EMBED_SIDE / max(rgb.shape[:2])
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    evidence.status, evidence.data_uri = "verified", jpeg_uri(rgb)
    for label, title in heat_labels(row, photo, comparison):
        values = _heat(photo.predictions, label)
        if values is not None:
            heat = heat_over(label, values, rgb.shape[1], rgb.shape[0], peaks.get(label))
            evidence.heatmaps.append(Heatmap(label, title, jpeg_uri(overlay(rgb, heat))))
    return evidence


def _heat(predictions: dict[str, Any], label: str) -> np.ndarray | None:
    if label == "unmatched":
        values = predictions.get(UNMATCHED_MAP)
        return None if values is None else np.asarray(values, dtype=np.float32)
    try:
        return np.asarray(heat_values(predictions, label), dtype=np.float32)
    except Exception:  # noqa: BLE001 - an ApiError here only means "no map for this label"
        return None


def pair_peaks(rows: list[Inspection], comparison: dict[str, Any] | None) -> dict[str, float]:
    """For each flagged new-damage label, the highest value of its map on either photo of the
    pair: both photos are then drawn on that one scale."""
    photos = {(row.id, photo.index): photo for row in rows for photo in row.photos}
    peaks: dict[str, float] = {}
    for check in (comparison or {}).get("checks", []):
        if check["kind"] != NEW_DAMAGE or not check["flagged"]:
            continue
        for side in ("station", "customer"):
            photo = photos.get((check[side]["inspection_id"], check[side]["photo"]))
            values = _heat(photo.predictions, check["label"]) if photo is not None else None
            if values is not None:
                peaks[check["label"]] = max(peaks.get(check["label"], -np.inf), float(values.max()))
    return peaks


def inspection_evidence(row: Inspection, store: PhotoStore, model: LoadedModel | None,
                        policy: Policy, comparison: dict[str, Any] | None,
                        peaks: dict[str, float], session: Session | None = None) -> InspectionEvidence:
    result = row.result
    recorded = (result.get("model") or {}).get("card_sha256")
    same_card = model is not None and recorded is not None and card_sha256(model.card) == recorded
    if same_card:
        note = "Thresholds were chosen as stated below (from the card that made this inspection)."
    else:
        note = ("The model card that made this inspection is no longer the one served: how each "
                "threshold was chosen is recorded in that card's calibration section.")
    flags = [FlagEvidence(flag["kind"], flag.get("label"), flag["reason"], flag["score"],
                          flag["threshold"], None if flag.get("photo") is None else flag["photo"] + 1,
                          threshold_origin(flag["kind"], flag.get("label"), row.category,
                                           model.card, policy,
                                           (result.get("comparison") or {}).get("basis"))
                          if same_card and model is not None else "see the card's calibration")
             for flag in result.get("flags", [])]
    return InspectionEvidence(
        row=row, result=result, flags=flags,
        photos=[photo_evidence(row, photo, store, comparison, peaks) for photo in row.photos],
        reviews=[crud.review_public(review) for review in row.reviews], provenance_note=note,
        catalog=catalog_references(result, session, store))


def catalog_references(result: dict[str, Any], session: Session | None = None,
                       store: PhotoStore | None = None) -> list[dict[str, Any]]:
    """The SKU catalog's reference photo the inspection was compared with, where one was
    (`comparison.closest_reference`, recorded with its sha256), embedded while some SKU still
    lists that photo; a replaced one is listed by its hash alone."""
    comparison = result.get("comparison") or {}
    closest = comparison.get("closest_reference") if comparison.get("basis") == "sku" else None
    if not closest:
        return []
    sha256 = closest.get("sha256")
    return [{"sku": comparison.get("sku"), "sha256": sha256,
             "similarity": closest.get("similarity"), "photo": closest.get("photo"),
             "threshold": comparison.get("similarity_threshold"),
             "data_uri": _catalog_photo(sha256, session, store) if sha256 else None}]


def _catalog_photo(sha256: str, session: Session | None, store: PhotoStore | None) -> str | None:
    relative = catalog_store.photo_path_by_sha(session, sha256) if session is not None else None
    if relative is None or store is None:
        return None
    try:
        data = store.read(relative)
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None  # never show a different photo under the recorded hash
    try:
        return jpeg_uri(fit_display(decode_photo(data, min_side=EMBED_SIDE).rgb, EMBED_SIDE))
    except InputError:
        return None


def render_packet(title: str, return_id: str, inspections: list[InspectionEvidence],
                  comparison: dict[str, Any] | None, events: list[dict[str, Any]],
                  generated_at: datetime | None = None) -> str:
    moment = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return environment.get_template("evidence.html").render(
        title=title, return_id=return_id, inspections=inspections, comparison=comparison,
        events=events, generated_at=moment, generated_id=GENERATED_ID,
        photos_by_place={(photo.inspection_id, photo.number - 1): photo
                         for evidence in inspections for photo in evidence.photos})


def inspection_packet(row: Inspection, case_rows: list[Inspection], store: PhotoStore,
                      model: LoadedModel | None, policy: Policy, session: Session | None = None) -> str:
    """One inspection, with the comparison that involves it (made on its arrival or on the
    other side's) and the other side's inspections of that pair."""
    comparison = involving(row, case_rows)
    referenced = {check[side]["inspection_id"] for check in (comparison or {}).get("checks", [])
                  for side in ("station", "customer")} - {row.id}
    others = [other for other in case_rows if other.id in referenced]
    peaks = pair_peaks([row, *others], comparison)
    evidence = [inspection_evidence(item, store, model, policy, comparison, peaks, session)
                for item in [row, *others]]
    return render_packet(f"Evidence: inspection {row.id}", row.return_id, evidence, comparison, [])


def involving(row: Inspection, case_rows: list[Inspection]) -> dict[str, Any] | None:
    own = row.result.get("case_comparison")
    if own and own.get("status") == "compared":
        return own
    latest = case_comparison(case_rows)
    pairs = [check[side]["inspection_id"] for check in latest.get("checks", [])
             for side in ("station", "customer")]
    return latest if row.id in pairs else own


def return_packet(return_id: str, rows: list[Inspection], store: PhotoStore,
                  model: LoadedModel | None, policy: Policy, session: Session | None = None) -> str:
    comparison = case_comparison(rows)
    peaks = pair_peaks(rows, comparison)
    evidence = [inspection_evidence(row, store, model, policy, comparison, peaks, session)
                for row in rows]
    return render_packet(f"Evidence: return {return_id}", return_id, evidence, comparison,
                         timeline(rows))
