"""The other side of a return, read back for the comparison (inspection.case): the stored photos
of the return's inspections from the other source, newest first, re-scored by the model now
serving so both sides' embeddings come from one model. A photo whose file is gone (retention
purge) is listed as missing, never an error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inspection.case import (
    OTHER_SIDE,
    CaseCheck,
    CaseOutcome,
    Counterpart,
    case_outcome,
    case_thresholds,
)
from inspection.case_compare import case_photo
from inspection.decide import Policy
from inspection.engine import PhotoPrediction
from inspection.errors import InputError
from inspection.images import decode_photo
from inspection.loaded_model import LoadedModel
from inspection.service.models import Inspection
from inspection.service.storage import PhotoStore

MAX_COUNTERPART_PHOTOS = 16  # two full customer uploads; bounds the extra work per request


def return_inspections(session: Session, return_id: str,
                       source: str | None = None) -> list[Inspection]:
    """Every inspection of a return (or only those from `source`), oldest first, with photos and
    reviews. The source is filtered in SQL: a station re-inspecting a return with many station
    visits must not load them all to find the customer's few."""
    query = select(Inspection).where(Inspection.return_id == return_id)
    if source is not None:
        query = query.where(Inspection.source == source)
    query = (query.options(selectinload(Inspection.photos), selectinload(Inspection.reviews))
             .order_by(Inspection.created_at, Inspection.id))
    return list(session.scalars(query))


def counterpart(session: Session, store: PhotoStore, model: LoadedModel, return_id: str,
                source: str) -> Counterpart:
    other = OTHER_SIDE[source]
    rows = return_inspections(session, return_id, source=other)
    rgbs: list[np.ndarray] = []
    places: list[tuple[str, int, str]] = []  # (inspection id, photo index, sha256)
    missing: list[str] = []
    for row in reversed(rows):  # newest first: the latest visit wins when the cap is reached
        for photo in row.photos:
            if len(rgbs) >= MAX_COUNTERPART_PHOTOS:
                break
            where = f"photo {photo.index + 1} of inspection {row.id}"
            try:
                data = store.read(photo.path)
            except (OSError, ValueError):
                missing.append(f"{where} (sha256 {photo.sha256})")
                continue
            try:
                rgbs.append(decode_photo(data, min_side=model.engine.input_size, where=where).rgb)
            except InputError:
                missing.append(f"{where} (unreadable)")
                continue
            places.append((row.id, photo.index, photo.sha256))
    predictions = model.engine.predict(rgbs) if rgbs else []
    photos = [p for (inspection_id, index, sha256), prediction in zip(places, predictions, strict=True)
              if (p := case_photo(inspection_id, index, other, prediction, sha256)) is not None]
    return Counterpart(other, photos, [row.id for row in rows], missing)


def case_check(session: Session, store: PhotoStore, model: LoadedModel, policy: Policy,
               return_id: str, source: str, inspection_id: str) -> CaseCheck:
    """What inspect_item calls with the new photos' predictions (once they decoded and scored:
    a refused upload costs no re-scoring of the other side)."""
    def check(predictions: Sequence[PhotoPrediction]) -> CaseOutcome:
        other_side = counterpart(session, store, model, return_id, source)
        thresholds = case_thresholds(model.card.thresholds, policy)
        return case_outcome(inspection_id, source, predictions, other_side, thresholds)
    return check
