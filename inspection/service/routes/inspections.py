"""POST /v1/inspections scores the photos of one returned item and stores the answer; GET reads
it back, with the photos and a heatmap per flagged damage. Plain `def` routes: decoding and
inference block, so FastAPI runs them in its threadpool, and at most one request per core
decodes and infers at once (service.compute)."""

from __future__ import annotations

import time
import uuid
from pathlib import PurePosixPath
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inspection.case import UNMATCHED_MAP
from inspection.images import decode_photo
from inspection.pipeline import ItemScore, Upload, inspect_item, photo_where
from inspection.service import catalog_store, crud, idempotency
from inspection.service.answer import DETAIL_QUERY, Detail, shape_answer
from inspection.service.case_photos import case_check
from inspection.service.deps import (
    ComputeDep,
    EngineDep,
    MetricsDep,
    PolicyDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    StateDep,
    StoreDep,
    SubmitterDep,
)
from inspection.service.errors import Forbidden, NotFound, Unprocessable
from inspection.service.heatmap import ANOMALY, DISPLAY_SIDE, heatmap_png
from inspection.service.limits import check_photo_pixels, check_photo_size, check_request_pixels
from inspection.service.models import Inspection
from inspection.service.photo_writes import discard, start_writing
from inspection.service.schemas import InspectionPublic, Source
from inspection.service.settings import Principal, Settings
from inspection.service.storage import PhotoStore, StoredPhoto
from inspection.service.validation import (
    FILENAME_MAX,
    LABEL_MAX,
    MAX_PHOTOS_DOCUMENTED,
    CategoryForm,
    IdempotencyKeyHeader,
    InspectionId,
    ReturnIdForm,
    SkuForm,
    check_line,
)
from inspection.stored_maps import unpack_map

router = APIRouter(prefix="/v1/inspections", tags=["inspections"])
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".tif": "image/tiff", ".heic": "image/heic", ".bmp": "image/bmp", ".gif": "image/gif"}


@router.post("", response_model=InspectionPublic, status_code=201,
             summary="Score the photos of one returned item",
             responses={413: {"description": "an upload, a photo or its pixel count is too large"},
                        422: {"description": "a field or a photo is invalid, or the "
                                             "Idempotency-Key was used for another request"}})
def create_inspection(
    caller: SubmitterDep, model: EngineDep, session: SessionDep, settings: SettingsDep,
    policy: PolicyDep, store: StoreDep, metrics: MetricsDep, state: StateDep, compute: ComputeDep,
    response: Response,
    photos: Annotated[list[UploadFile], File(description="1-8 photos of the item (JPEG, PNG, HEIC…)",
                                             min_length=1, max_length=MAX_PHOTOS_DOCUMENTED)],
    return_id: ReturnIdForm,
    sku: SkuForm = None,
    category: CategoryForm = None,
    source: Annotated[Source | None, Form(description="station | customer")] = None,
    detail: Annotated[Detail, Query(description=DETAIL_QUERY)] = "default",
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, object]:
    started = time.perf_counter()
    origin = _source_for(caller.role, source)
    category = _known_category(category or None, model.engine.taxonomy.categories)
    uploads = _read_uploads(photos, settings, model.engine.input_size)
    fields = {"return_id": return_id, "sku": sku or None, "category": category, "source": origin}
    fingerprint = idempotency.request_fingerprint(fields, uploads)
    if idempotency_key and (earlier := idempotency.earlier_inspection(
            session, caller, idempotency_key, fingerprint)):
        return _replay(session, earlier, caller, response, detail)
    entry = catalog_store.entry_for(session, sku, model, state.catalog_cache) if sku else None
    inspection_id = uuid.uuid4().hex
    writing = start_writing(store, uploads)  # the photos reach the disk while the model runs
    try:
        with compute.slot() as waited:  # the case check may score the other side's photos
            case = case_check(session, store, model, policy, return_id, origin, inspection_id)
            score = inspect_item(model, policy, uploads, category, settings.max_pixels, sku=entry,
                                 case=case, max_full_pixels=settings.max_full_decode_pixels)
    except BaseException:
        discard(store, writing)
        raise
    timings = score.result["timings"]
    timings["queue_ms"] = round(waited * 1000.0, 2)
    scored = time.perf_counter()
    stored = writing.result()
    saving = time.perf_counter()
    timings["storage_ms"] = round((saving - scored) * 1000.0, 2)  # what was left after scoring
    timings["total_ms"] = round((saving - started) * 1000.0, 2)
    try:
        row = _save(session, store, score, stored, uploads, fields, caller, idempotency_key,
                    fingerprint, inspection_id)
    except IntegrityError:  # the same Idempotency-Key committed first by a concurrent retry
        earlier = idempotency_key and idempotency.earlier_inspection(
            session, caller, idempotency_key, fingerprint)
        if not earlier:
            raise
        return _replay(session, earlier, caller, response, detail)
    answer = crud.inspection_public(row, caller)
    # The stored answer was written before the database: its time only reaches this answer.
    finished = time.perf_counter()
    answer["timings"] = {**timings, "database_ms": round((finished - saving) * 1000.0, 2),
                         "total_ms": round((finished - started) * 1000.0, 2)}
    metrics.inspections.labels(origin).inc()
    metrics.observe_stages(answer["timings"])
    for flag in score.flags:
        metrics.flags.labels(flag.kind).inc()
    return shape_answer(answer, detail, row.photos)


def _save(session: Session, store: PhotoStore, score: ItemScore, stored: list[StoredPhoto],
          uploads: list[Upload], fields: dict[str, str | None], caller: Principal,
          idempotency_key: str | None, fingerprint: str, inspection_id: str) -> Inspection:
    """The rows in one transaction. A failed commit leaves nothing behind: the photo files this
    request created are removed unless another inspection uses them."""
    try:
        row = crud.save_inspection(session, inspection_id=inspection_id,
                                   return_id=str(fields["return_id"]), sku=fields["sku"],
                                   source=str(fields["source"]), owner=caller.name, score=score,
                                   stored=stored, filenames=[u.filename for u in uploads])
        if idempotency_key:
            idempotency.remember(session, caller, idempotency_key, fingerprint, row.id)
        session.commit()
    except BaseException:
        session.rollback()
        for photo in stored:
            if photo.created and not crud.photo_in_use(session, photo.sha256):
                store.remove(photo.path)
        raise
    return row


def _replay(session: Session, inspection_id: str, caller: Principal, response: Response,
            detail: Detail) -> dict[str, object]:
    response.headers[idempotency.REPLAYED_HEADER] = "true"
    row = crud.get_inspection_for(session, inspection_id, caller)
    return shape_answer(crud.inspection_public(row, caller), detail, row.photos)


def _source_for(role: str, claimed: str | None) -> str:
    """Stations and customers are what their key says; only an admin may say either."""
    if role in ("station", "customer"):
        if claimed is not None and claimed != role:
            raise Forbidden(f"a {role} key cannot submit as source {claimed!r}", "source")
        return role
    return claimed or "station"


def _known_category(category: str | None, categories: list[str]) -> str | None:
    if category is not None and categories and category not in categories:
        raise Unprocessable(f"unknown category {category!r}; known: {categories}", "category")
    return category


def _read_uploads(photos: list[UploadFile], settings: Settings, min_side: int,
                  max_photos: int | None = None) -> list[Upload]:
    """Bytes, filename, pixel and per-request decoding limits, checked before anything decodes."""
    max_photos = max_photos or settings.max_photos
    if not 1 <= len(photos) <= max_photos:
        raise Unprocessable(f"send 1 to {max_photos} photos of one item, got {len(photos)}", "photos")
    uploads, costs = [], []
    for index, photo in enumerate(photos):
        data = photo.file.read(settings.max_photo_bytes + 1)  # never more than the limit allows
        check_line(photo.filename, f"photos[{index}].filename", FILENAME_MAX)
        where = photo_where(index, photo.filename)
        check_photo_size(data, where, settings.max_photo_bytes)
        if not data:
            raise Unprocessable(f"{where} is empty", where)
        costs.append(check_photo_pixels(data, where, settings.max_pixels,
                                        settings.max_full_decode_pixels, min_side))
        uploads.append(Upload(data=data, filename=photo.filename))
    check_request_pixels(costs, settings.max_request_pixels)
    return uploads


@router.get("/{inspection_id}", response_model=InspectionPublic, summary="An inspection's answer")
def read_inspection(inspection_id: InspectionId, caller: PrincipalDep, session: SessionDep,
                    detail: Annotated[Detail, Query(description=DETAIL_QUERY)] = "default",
                    ) -> dict[str, object]:
    row = crud.get_inspection_for(session, inspection_id, caller)
    return shape_answer(crud.inspection_public(row, caller), detail, row.photos)


@router.get("/{inspection_id}/photos/{n}", response_class=FileResponse,
            summary="A photo as uploaded")
def read_photo(inspection_id: InspectionId, n: int, caller: PrincipalDep, session: SessionDep,
               store: StoreDep) -> Response:
    photo = crud.get_photo(crud.get_inspection_for(session, inspection_id, caller), n)
    if not store.exists(photo.path):
        raise NotFound(f"photo {n} of inspection {inspection_id} is no longer stored", "n")
    media_type = MEDIA_TYPES.get(PurePosixPath(photo.path).suffix, "application/octet-stream")
    path = store.local_path(photo.path)  # an object store's photo is streamed from memory
    return FileResponse(path, media_type=media_type) if path else \
        Response(store.read(photo.path), media_type=media_type)


@router.get("/{inspection_id}/photos/{n}/heatmap", response_class=Response,
            responses={200: {"content": {"image/png": {}}}},
            summary="Where on the photo: a label's activation map over the photo (PNG)")
def read_heatmap(inspection_id: InspectionId, n: int, caller: PrincipalDep, session: SessionDep,
                 store: StoreDep,
                 label: Annotated[str, Query(max_length=LABEL_MAX, description="e.g. crack, "
                                                                            "`anomaly`, or `unmatched`")],
                 peak: Annotated[float | None, Query(
                     allow_inf_nan=False, description="top of the colour scale at least this "
                     "(puts a comparison pair on one scale)")] = None) -> Response:
    photo = crud.get_photo(crud.get_inspection_for(session, inspection_id, caller), n)
    values = heat_values(photo.predictions, label)
    if not store.exists(photo.path):
        raise NotFound(f"photo {n} of inspection {inspection_id} is no longer stored", "n")
    rgb = decode_photo(store.read(photo.path), min_side=DISPLAY_SIDE, where=f"photo {n}").rgb
    return Response(heatmap_png(rgb, values, peak, label), media_type="image/png")


def heat_values(predictions: dict[str, Any], label: str) -> np.ndarray:
    if label == "unmatched":  # patches the customer's closest photo never showed (case comparison)
        unmatched = predictions.get(UNMATCHED_MAP)
        if unmatched is None:
            raise NotFound("this photo was not compared with the customer's photos", "label")
        return unpack_map(unmatched)
    if label == ANOMALY:
        anomaly_map = predictions.get("anomaly_map")
        if anomaly_map is None:
            raise NotFound("this photo has no anomaly map", "label")
        return unpack_map(anomaly_map)
    cams: dict[str, dict[str, Any]] = predictions.get("cams", {})
    for head in ("damage", *sorted(cams)):
        if label in cams.get(head, {}):
            return unpack_map(cams[head][label])
    known = sorted({name for head in cams.values() for name in head})
    raise Unprocessable(f"no heatmap for label {label!r}; labels with maps: {known}", "label")
